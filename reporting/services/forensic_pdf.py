"""The forensic report of one deliverable as a PDF, drawn from the same dict the JSON API
returns (``forensics.report``), so the file says what the API says, line by line, with the
ids of the rows behind each line. Dated with the deliverable's latest event, so two renders
of an unchanged trail are the same bytes."""

from datetime import datetime

from meshline.pdf import NEXT_LINE, Document, when


def filename(report: dict) -> str:
    return f"forensics-{report['deliverable']['deliverable_id']}.pdf"


def _dated(report: dict, fallback: datetime) -> datetime:
    if report["events"]:
        return datetime.fromisoformat(report["events"][-1]["occurred_at"])
    return fallback


def render(report: dict, created: datetime) -> bytes:
    """``created``: when the deliverable was created (the date of a report with no events)."""
    d = report["deliverable"]
    pdf = Document(f"Forensic report {d['deliverable_id']}", _dated(report, created))
    pdf.heading(
        f"Forensic report: {d['deliverable_id']}" + (f" ({d['title']})" if d["title"] else ""), 15
    )
    pdf.paragraph(
        f"Client {d['client']} ({d['client_id']}) · {d['type']} · {d['state']}"
        + (f" · {d['url']}" if d["url"] else "")
    )
    pdf.paragraph(
        f"Attribution: {report['attribution_model']}, {report['window_days']}-day window. "
        "Every line names the row it comes from."
    )
    pdf.heading(f"Events ({len(report['events'])})")
    if report["events"]:
        pdf.rows(
            ["Occurred", "Type", "Actor", "Event id", "Content digest"],
            [
                [
                    when(e["occurred_at"]),
                    e["event_type"],
                    e["actor"],
                    e["id"],
                    e["content_digest"][:16],
                ]
                for e in report["events"]
            ],
            (22, 26, 32, 70, 40),
            size=8,
        )
    _section(
        pdf,
        "Gate history",
        ["Evaluated", "Gate", "Outcome", "Evaluation id", "Reasons"],
        [
            [
                when(g.get("evaluated_at")),
                g.get("gate"),
                g.get("outcome"),
                g.get("id"),
                "; ".join(g.get("reasons") or []),
            ]
            for g in report["gate_evaluations"]
        ],
        (22, 28, 16, 70, 54),
    )
    _section(
        pdf,
        "Tickets",
        ["Opened", "Title", "Status", "SLA", "Ticket id"],
        [
            [
                when(t["opened_at"]),
                t["title"],
                t["status"],
                "open" if t["sla_met"] is None else ("met" if t["sla_met"] else "missed"),
                t["id"],
            ]
            for t in report["tickets"]
        ],
        (22, 60, 18, 14, 70),
    )
    _section(
        pdf,
        "Search performance",
        ["Day", "URL", "Impressions", "Clicks", "Position"],
        [
            [
                s["date"],
                s["url"],
                s["impressions"],
                s["clicks"],
                f"{s['position']:.1f}" if s["position"] is not None else "—",
            ]
            for s in report["search_performance"]
        ],
        (22, 88, 22, 18, 20),
        align_right=(2, 3, 4),
    )
    _section(
        pdf,
        "CRM touches",
        ["Occurred", "Type", "Touch id", "Contact", "Event id"],
        [
            [when(t["occurred_at"]), t["touch_type"], t["touch_id"], t["contact_id"], t["event_id"]]
            for t in report["crm_touches"]
        ],
        (22, 20, 38, 34, 70),
    )
    _section(
        pdf,
        "Revenue and attribution",
        ["Date", "Reference", "Amount", "This deliverable's share by model", "Event id"],
        [
            [
                r["date"],
                r["reference"],
                f"{r['amount']} {r['currency']}",
                "; ".join(
                    f"{m}: {s['amount']} ({s['share']})" for m, s in sorted(r["shares"].items())
                ),
                r["event_id"],
            ]
            for r in report["revenue"]
        ],
        (20, 26, 26, 44, 70),
    )
    pdf.heading("Attributed revenue")
    pdf.paragraph(
        " · ".join(f"{model}: {amount}" for model, amount in report["attributed_revenue"].items())
    )
    pdf.style(8)
    pdf.multi_cell(
        0,
        4,
        pdf.text(
            "Event digests are SHA-256 over each event's canonical form; the full digests and "
            "every field are in the JSON report (GET /api/v1/deliverables/<id>/forensics)."
        ),
        align="L",
        **NEXT_LINE,
    )
    return bytes(pdf.output())


def _section(pdf: Document, title: str, header, rows, widths, align_right=()) -> None:
    pdf.heading(f"{title} ({len(rows)})")
    if rows:
        pdf.rows(header, rows, widths, align_right=align_right, size=8)
    else:
        pdf.paragraph("None.")
