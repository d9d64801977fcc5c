"""From a vendor's webhook payload to canonical event bodies: pure functions, no database.

Every mapping returns event bodies in the event contract (deliveries.services.ingest checks
them) and raises MappingError with a message the admin can act on. Idempotency keys come
from the vendor's own ids, prefixed with the endpoint, so a delivery replayed after a fix,
or sent twice by the vendor, yields its events exactly once.

- WordPress (``wordpress``): a post payload as the "WP Webhooks" plugin sends it for
  ``post_create`` / ``post_update`` (``post_id``, ``post`` with WordPress's column names,
  ``post_meta``, ``post_permalink``; see tests/connectors/fixtures). A post whose
  ``post_status`` is ``publish`` becomes ``page.published`` (url: the permalink, html: the
  content); any other status yields nothing. The deliverable reference is read at
  ``mapping["deliverable_path"]`` (default ``post_meta.meshline_deliverable_id``).
- Contentful (``contentful``): an entry as Contentful posts it for the topic
  ``ContentManagement.Entry.publish`` (``sys`` with id, revision, updatedAt, contentType;
  ``fields`` per locale) becomes ``page.published``; other topics yield nothing. The
  deliverable reference is read at ``mapping["deliverable_path"]`` (default
  ``fields.meshlineDeliverableId.en-US``) and the page URL built from
  ``mapping["url_template"]``, whose ``{path}`` placeholders are read from the entry, e.g.
  ``https://acme.example/lp/{fields.slug.en-US}``.
- Jira (``jira``): ``jira:issue_created`` and ``jira:issue_updated`` as Jira Cloud posts
  them (``timestamp`` in ms, ``webhookEvent``, ``user``, ``issue`` with ``key`` and
  ``fields``, ``changelog.items``). ``mapping["transitions"]`` maps the status an issue
  moved *to* (the changelog's ``toString``) to ``intake.received``, ``change.requested``
  or ``asset.approved``; ``mapping["created"]`` names the event of a new issue. Anything
  not mapped yields nothing. The deliverable reference is read at
  ``mapping["deliverable_path"]`` (default ``issue.key``).
- Cloudinary (``cloudinary``): an ``upload`` notification becomes ``asset.uploaded``
  (``public_id``, ``bytes``, filename and type); a ``moderation`` notification whose status
  is ``approved`` becomes ``asset.approved``; anything else yields nothing. The deliverable
  reference is the asset's contextual metadata at ``mapping["deliverable_path"]`` (default
  ``context.custom.deliverable_id``), or, with ``mapping["tag_prefix"]`` (e.g.
  ``deliverable:``), the first tag that starts with it.
- Webflow (``webflow``): ``collection_item_published`` (each published CMS item becomes
  ``page.published``; the URL from ``mapping["url_template"]`` with ``{fieldData.slug}``
  placeholders, the reference at ``mapping["deliverable_path"]``, default
  ``fieldData.meshline-deliverable-id``) and ``form_submission`` (a ``crm.touch`` of type
  ``mapping["touch_type"]``, default ``mql``, for the deliverable named in the form's
  ``mapping["form_deliverable_field"]``, default ``deliverable_id``, a hidden field, with the
  contact from ``mapping["form_email_field"]``, default ``email``). Other triggers: nothing.
- Search Console (``search_console``): the ``rows`` of a searchanalytics.query response
  (``keys`` in the order of the query's dimensions, ``mapping["dimensions"]``, default
  ``date,page``; ``clicks``, ``impressions``, ``ctr``, ``position``), forwarded by the
  agency's scheduled job. Each row becomes ``search_export.processed`` for the deliverable
  whose reference stands where ``{ref}`` stands in ``mapping["deliverable_url"]`` (e.g.
  ``https://acme.example/lp/{ref}``: one path segment; anything after the template, such
  as a query string, is allowed). No tenant-written regular expression runs here. A row no
  deliverable matches fails the delivery (fix the template and replay), unless
  ``mapping["unmatched"]`` is ``skip``. The key includes the numbers, so a
  day re-sent with final numbers replaces the early ones (reporting keeps the latest).
  At most ``SEARCH_CONSOLE_MAX_ROWS`` rows a delivery: a day's whole export goes to the
  bulk import instead.
- HubSpot (``hubspot``): contact and deal property changes as ``crm.touch``, the record's
  deliverable learnt from a property its landing page's form sets; see connectors.hubspot.
- Generic (``standard``): ``mapping`` is ``{target: source}``, where target is an envelope
  field (``event_type``, ``deliverable_id``, ``occurred_at``, ``idempotency_key``,
  ``client_id``, ``correlation_id``, ``actor.role``, ``actor.id``) or ``payload.<name>``,
  and source is a dotted path into the payload (``data.items.0.url``) or ``=constant``.
"""

import hashlib
import re
from datetime import UTC, datetime

REQUIRED_TARGETS = ("event_type", "deliverable_id", "occurred_at")
ENVELOPE_TARGETS = {
    "event_type",
    "deliverable_id",
    "client_id",
    "occurred_at",
    "idempotency_key",
    "correlation_id",
    "actor.role",
    "actor.id",
}
WORDPRESS_DELIVERABLE_PATH = "post_meta.meshline_deliverable_id"
# The version of the page.published payload the built-in CMS mappings produce (the
# schema_version gate checks what a connector declares): bump it when their payload changes.
PAYLOAD_SCHEMA_VERSION = 2
CONTENTFUL_DELIVERABLE_PATH = "fields.meshlineDeliverableId.en-US"
CONTENTFUL_PUBLISH = "ContentManagement.Entry.publish"
OPTIONS = {
    "wordpress": {"deliverable_path"},
    "contentful": {"deliverable_path", "url_template"},
    "jira": {"deliverable_path", "created", "transitions"},
    "cloudinary": {"deliverable_path", "tag_prefix"},
    "search_console": {"deliverable_url", "dimensions", "unmatched"},
    "hubspot": {"deliverable_property", "link_touch_type", "stages"},
    "webflow": {
        "deliverable_path",
        "url_template",
        "touch_type",
        "form_deliverable_field",
        "form_email_field",
    },
}
WEBFLOW_DELIVERABLE_PATH = "fieldData.meshline-deliverable-id"
SEARCH_CONSOLE_MAX_ROWS = 500
TOUCH_TYPES = ("visit", "mql", "sql", "opportunity", "closed_won")
CLOUDINARY_DELIVERABLE_PATH = "context.custom.deliverable_id"
JIRA_DELIVERABLE_PATH = "issue.key"
# What a Jira status change may stand for in the event contract.
JIRA_EVENT_TYPES = ("intake.received", "change.requested", "asset.approved")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_MISSING = object()


class MappingError(Exception):
    """The payload cannot be mapped; the message says what is missing or wrong."""


def lookup(data, path: str):
    """The value at a dotted ``path`` (list items by index), or _MISSING."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def check_options(kind: str, options) -> list[str]:
    """Problems with a built-in mapping's options (WordPress, Contentful, Jira)."""
    allowed = OPTIONS[kind]
    if not isinstance(options, dict) or set(options) - allowed:
        return [f"Use an object with only {', '.join(sorted(allowed))} (or {{}} for defaults)."]
    if kind == "jira":
        return _check_jira(options)
    if kind == "hubspot":
        from connectors import hubspot

        return hubspot.check_options(options)
    if kind == "webflow" and options.get("touch_type", "mql") not in TOUCH_TYPES:
        return [f"touch_type is one of {', '.join(TOUCH_TYPES)}."]
    if kind == "search_console":
        return _check_search_console(options)
    if not all(isinstance(value, str) for value in options.values()):
        return ["Each option is a text: a dotted path, or a URL template with {path}s."]
    return []


def _url_pattern(template) -> re.Pattern | None:
    """``https://acme.example/lp/{ref}`` as a matcher whose ``ref`` group is one path
    segment; None unless the template holds ``{ref}`` exactly once."""
    if not isinstance(template, str) or template.count("{ref}") != 1:
        return None
    prefix, suffix = template.split("{ref}")
    return re.compile("^" + re.escape(prefix) + r"(?P<ref>[^/?#]+)" + re.escape(suffix))


def _check_search_console(options: dict) -> list[str]:
    if _url_pattern(options.get("deliverable_url")) is None:
        return [
            "Set deliverable_url with {ref} where the id stands, e.g. https://acme.example/lp/{ref}."
        ]
    dimensions = [d.strip() for d in str(options.get("dimensions", "date,page")).split(",")]
    if "date" not in dimensions or "page" not in dimensions:
        return ["dimensions lists the query's dimensions in order and includes date and page."]
    if options.get("unmatched", "fail") not in ("fail", "skip"):
        return ["unmatched is fail or skip."]
    return []


def _check_jira(options: dict) -> list[str]:
    problems = []
    kinds = ", ".join(JIRA_EVENT_TYPES)
    if not isinstance(options.get("deliverable_path", ""), str):
        problems.append("deliverable_path is a dotted path, e.g. issue.fields.customfield_10042.")
    if "created" in options and options["created"] not in JIRA_EVENT_TYPES:
        problems.append(f"created is one of {kinds}.")
    transitions = options.get("transitions", {})
    if not isinstance(transitions, dict) or not all(
        isinstance(status, str) and event_type in JIRA_EVENT_TYPES
        for status, event_type in transitions.items()
    ):
        problems.append(
            f'transitions maps a Jira status to one of {kinds}, e.g. {{"Done": "asset.approved"}}.'
        )
    return problems


def check_generic(mapping) -> list[str]:
    """Problems with a generic mapping as an admin wrote it (empty when usable)."""
    if not isinstance(mapping, dict):
        return ["The mapping must be a JSON object of target: source path."]
    problems = []
    for target, source in mapping.items():
        if target not in ENVELOPE_TARGETS and not (
            target.startswith("payload.") and len(target) > len("payload.")
        ):
            problems.append(
                f"Unknown target {target!r}: use an envelope field "
                f"({', '.join(sorted(ENVELOPE_TARGETS))}) or payload.<name>."
            )
        if not isinstance(source, str) or not source:
            problems.append(f"The source of {target!r} must be a path or =constant.")
    problems += [f"Map {target!r}." for target in REQUIRED_TARGETS if target not in mapping]
    return problems


def map_generic(endpoint, payload, vendor_id: str) -> list[dict]:
    """One event from ``payload`` through the endpoint's field paths."""
    problems = check_generic(endpoint.mapping)
    if problems:
        raise MappingError(" ".join(problems))
    event: dict = {
        "client_id": endpoint.client.client_id,
        "actor": {"role": "connector", "id": str(endpoint.public_id)},
        "payload": {},
    }
    key_source = vendor_id
    for target, source in endpoint.mapping.items():
        if source.startswith("="):
            value = source[1:]
        else:
            value = lookup(payload, source)
            if value is _MISSING:
                raise MappingError(f"{target}: nothing at {source!r} in the payload.")
        if target == "idempotency_key":
            key_source = str(value)
        elif target.startswith("actor."):
            event["actor"][target[len("actor.") :]] = value
        elif target.startswith("payload."):
            event["payload"][target[len("payload.") :]] = value
        else:
            event[target] = value
    event["idempotency_key"] = f"hook:{endpoint.public_id}:{key_source}"
    return [event]


def _wordpress_time(value) -> str:
    """WordPress's ``*_gmt`` columns: "2026-11-21 10:00:00" in UTC."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        raise MappingError(
            f"post.post_modified_gmt {value!r} is not 'YYYY-MM-DD HH:MM:SS'."
        ) from None


def map_wordpress(endpoint, payload, vendor_id: str) -> list[dict]:
    """A published (or updated, still published) post -> page.published; else nothing."""
    post = lookup(payload, "post")
    if not isinstance(post, dict):
        raise MappingError("No 'post' object in the payload: is this a WP Webhooks post event?")
    if post.get("post_status") != "publish":
        return []
    reference = _reference(
        payload, (endpoint.mapping or {}).get("deliverable_path") or WORDPRESS_DELIVERABLE_PATH
    )
    permalink = lookup(payload, "post_permalink")
    if permalink is _MISSING:
        raise MappingError("No 'post_permalink' in the payload.")
    post_id, modified = post.get("ID"), post.get("post_modified_gmt")
    if post_id is None or not modified:
        raise MappingError("The post has no ID or post_modified_gmt.")
    return [
        {
            "event_type": "page.published",
            "deliverable_id": reference,
            "client_id": endpoint.client.client_id,
            # Post and revision time: the same publish sent twice is one event; an update
            # (a new post_modified_gmt) is a new one.
            "idempotency_key": f"wp:{endpoint.public_id}:{post_id}:{modified}",
            "actor": {"role": "cms", "id": f"wordpress:{post.get('post_author', '')}"},
            "occurred_at": _wordpress_time(modified),
            "payload": {
                "url": permalink,
                "html": post.get("post_content", ""),
                "schema_version": PAYLOAD_SCHEMA_VERSION,
            },
        }
    ]


def _reference(payload, path: str) -> str:
    reference = lookup(payload, path)
    if isinstance(reference, list):  # get_post_meta() without $single gives a list
        reference = reference[0] if reference else _MISSING
    if reference is _MISSING or reference in ("", None):
        raise MappingError(
            f"No deliverable reference at {path!r}: set it in the source, or point the "
            "endpoint's deliverable path at the field that holds it."
        )
    return str(reference)


def _filled(template: str, data, what: str = "item") -> str:
    """``template`` with each ``{path}`` replaced by the value at that path of ``data``."""

    def fill(match) -> str:
        value = lookup(data, match[1])
        if value is _MISSING or isinstance(value, dict | list):
            raise MappingError(f"url_template: nothing usable at {match[1]!r} in the {what}.")
        return str(value)

    return _PLACEHOLDER.sub(fill, template)


def map_contentful(endpoint, payload, vendor_id: str, headers: dict) -> list[dict]:
    """A published entry -> page.published; any other topic yields nothing."""
    if (headers or {}).get("x-contentful-topic", CONTENTFUL_PUBLISH) != CONTENTFUL_PUBLISH:
        return []
    sys = payload.get("sys")
    if not isinstance(sys, dict) or sys.get("type") != "Entry" or not sys.get("id"):
        raise MappingError("No entry 'sys' in the payload: is this an Entry.publish webhook?")
    options = endpoint.mapping or {}
    reference = _reference(payload, options.get("deliverable_path") or CONTENTFUL_DELIVERABLE_PATH)
    template = options.get("url_template")
    if not template:
        raise MappingError(
            "Set the endpoint's url_template, e.g. https://acme.example/lp/{fields.slug.en-US}."
        )

    revision = sys.get("revision", sys.get("version"))
    return [
        {
            "event_type": "page.published",
            "deliverable_id": reference,
            "client_id": endpoint.client.client_id,
            "idempotency_key": f"contentful:{endpoint.public_id}:{sys['id']}:{revision}",
            "actor": {"role": "cms", "id": "contentful"},
            "occurred_at": sys.get("updatedAt") or sys.get("publishedAt"),
            "payload": {
                "url": _filled(template, payload, "entry"),
                "schema_version": PAYLOAD_SCHEMA_VERSION,
            },
        }
    ]


def _jira_payload(event_type: str, issue: dict, user: str, status: str) -> dict:
    fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    if event_type == "asset.approved":
        return {"asset_id": issue["key"], "approved_by": user[:200]}
    if event_type == "change.requested":
        summary = fields.get("summary") or f"{issue['key']} moved to {status}"
        return {"summary": str(summary)[:500]}
    return {"requested_by": user[:200]}


def map_jira(endpoint, payload, vendor_id: str) -> list[dict]:
    """A new issue or a status change -> the configured event; anything else nothing."""
    issue = payload.get("issue")
    if not isinstance(issue, dict) or not issue.get("key") or not issue.get("id"):
        raise MappingError("No 'issue' with an id and key: is this a Jira issue webhook?")
    options = endpoint.mapping or {}
    webhook_event = payload.get("webhookEvent")
    status, change = "", webhook_event
    if webhook_event == "jira:issue_created":
        event_type = options.get("created")
    elif webhook_event == "jira:issue_updated":
        changelog = payload.get("changelog") if isinstance(payload.get("changelog"), dict) else {}
        moved = [
            item
            for item in changelog.get("items") or []
            if isinstance(item, dict) and item.get("field") == "status"
        ]
        if not moved:
            return []
        status = str(moved[-1].get("toString") or "")
        event_type = (options.get("transitions") or {}).get(status)
        change = changelog.get("id") or vendor_id
    else:
        return []
    if not event_type:
        return []
    try:
        occurred = datetime.fromtimestamp(int(payload["timestamp"]) / 1000, tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise MappingError("The payload has no 'timestamp' in milliseconds.") from None
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    who = str(user.get("displayName") or user.get("accountId") or "jira")
    return [
        {
            "event_type": event_type,
            "deliverable_id": _reference(
                payload, options.get("deliverable_path") or JIRA_DELIVERABLE_PATH
            ),
            "client_id": endpoint.client.client_id,
            # The issue and the change (the changelog's id): Jira's retries of a delivery,
            # and the same change under another delivery id, are one event.
            "idempotency_key": f"jira:{endpoint.public_id}:{issue['id']}:{change}"[:200],
            "actor": {"role": "pm_tool", "id": f"jira:{user.get('accountId', '')}"[:200]},
            "occurred_at": occurred.isoformat(),
            "payload": _jira_payload(event_type, issue, who, status),
        }
    ]


def _cloudinary_reference(payload, options: dict) -> str:
    prefix = options.get("tag_prefix")
    if prefix:
        tags = payload.get("tags") if isinstance(payload.get("tags"), list) else []
        for tag in tags:
            if isinstance(tag, str) and tag.startswith(prefix) and tag[len(prefix) :]:
                return tag[len(prefix) :]
        raise MappingError(f"No tag starts with {prefix!r}: tag the asset with its deliverable.")
    return _reference(payload, options.get("deliverable_path") or CLOUDINARY_DELIVERABLE_PATH)


def map_cloudinary(endpoint, payload, vendor_id: str) -> list[dict]:
    """An upload -> asset.uploaded; an approved moderation -> asset.approved; else nothing."""
    kind = payload.get("notification_type")
    approved = kind == "moderation" and payload.get("moderation_status") == "approved"
    if kind != "upload" and not approved:
        return []
    public_id = payload.get("public_id")
    if not public_id:
        raise MappingError("The notification has no public_id.")
    options = endpoint.mapping or {}
    body = {
        "deliverable_id": _cloudinary_reference(payload, options),
        "client_id": endpoint.client.client_id,
        "actor": {"role": "dam", "id": "cloudinary"},
    }
    if approved:
        occurred = payload.get("moderation_updated_at") or payload.get("timestamp")
        return [
            {
                **body,
                "event_type": "asset.approved",
                "idempotency_key": f"cloudinary:{endpoint.public_id}:{vendor_id}"[:200],
                "occurred_at": occurred,
                "payload": {
                    "asset_id": str(public_id)[:200],
                    "approved_by": f"cloudinary {payload.get('moderation_kind', 'moderation')}",
                },
            }
        ]
    size = payload.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int):
        raise MappingError("The upload notification has no size in 'bytes'.")
    name = payload.get("original_filename") or str(public_id).rsplit("/", 1)[-1]
    extension = payload.get("format")
    upload = {
        "asset_id": str(public_id)[:200],
        "size_bytes": size,
        "filename": (f"{name}.{extension}" if extension else str(name))[:300],
    }
    if payload.get("resource_type") and extension:
        upload["mime_type"] = f"{payload['resource_type']}/{extension}"[:100]
    if isinstance(payload.get("version"), int):
        upload["revision"] = payload["version"]
    return [
        {
            **body,
            "event_type": "asset.uploaded",
            "idempotency_key": f"cloudinary:{endpoint.public_id}:{vendor_id}"[:200],
            "occurred_at": payload.get("created_at") or payload.get("timestamp"),
            "payload": upload,
        }
    ]


def map_webflow(endpoint, payload, vendor_id: str) -> list[dict]:
    """Published CMS items -> page.published; a form submission -> crm.touch."""
    trigger, data = payload.get("triggerType"), payload.get("payload")
    if not isinstance(data, dict):
        raise MappingError("No 'payload' object: is this a Webflow webhook?")
    options = endpoint.mapping or {}
    base = {"client_id": endpoint.client.client_id}
    if trigger == "form_submission":
        fields = data.get("data") if isinstance(data.get("data"), dict) else {}
        field = options.get("form_deliverable_field") or "deliverable_id"
        reference = fields.get(field)
        if not reference:
            raise MappingError(
                f"The form has no {field!r} field: add it (hidden) with the deliverable's id."
            )
        if not data.get("id") or not data.get("submittedAt"):
            raise MappingError("The submission has no id or submittedAt.")
        touch = {"touch_id": str(data["id"])[:200], "touch_type": options.get("touch_type", "mql")}
        email = fields.get(options.get("form_email_field") or "email")
        if email:
            touch["contact_id"] = str(email)[:200]
        touch["channel"] = f"webflow form: {data.get('name', '')}"[:100]
        return [
            {
                **base,
                "event_type": "crm.touch",
                "deliverable_id": str(reference),
                "idempotency_key": f"webflow:{endpoint.public_id}:form:{data['id']}"[:200],
                "actor": {"role": "cms", "id": f"webflow:{data.get('siteId', '')}"[:200]},
                "occurred_at": data["submittedAt"],
                "payload": touch,
            }
        ]
    if trigger != "collection_item_published":
        return []
    template = options.get("url_template")
    if not template:
        raise MappingError(
            "Set the endpoint's url_template, e.g. https://acme.example/lp/{fieldData.slug}."
        )
    items = data.get("items") if isinstance(data.get("items"), list) else [data]
    path = options.get("deliverable_path") or WEBFLOW_DELIVERABLE_PATH
    events = []
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("lastPublished"):
            raise MappingError("A published item has no id or lastPublished.")
        if item.get("isDraft") or item.get("isArchived"):
            continue
        events.append(
            {
                **base,
                "event_type": "page.published",
                "deliverable_id": _reference(item, path),
                "idempotency_key": (
                    f"webflow:{endpoint.public_id}:{item['id']}:{item['lastPublished']}"
                )[:200],
                "actor": {"role": "cms", "id": f"webflow:{item.get('siteId', '')}"[:200]},
                "occurred_at": item["lastPublished"],
                "payload": {
                    "url": _filled(template, item),
                    "schema_version": PAYLOAD_SCHEMA_VERSION,
                },
            }
        )
    return events


def map_search_console(endpoint, payload, vendor_id: str) -> list[dict]:
    """Each searchanalytics row -> search_export.processed for the page's deliverable."""
    options = endpoint.mapping or {}
    problems = _check_search_console(options)
    if problems:
        raise MappingError(problems[0])
    rows = payload.get("rows")
    if not isinstance(rows, list):
        raise MappingError("No 'rows' list: forward the searchanalytics.query response.")
    if len(rows) > SEARCH_CONSOLE_MAX_ROWS:
        raise MappingError(
            f"{len(rows)} rows in one delivery: send at most {SEARCH_CONSOLE_MAX_ROWS}, or a "
            "whole day through POST /api/v1/search-performance/import."
        )
    pattern = _url_pattern(options["deliverable_url"])
    dimensions = [d.strip() for d in str(options.get("dimensions", "date,page")).split(",")]
    events, unmatched = [], []
    for row in rows:
        keys = row.get("keys") if isinstance(row, dict) else None
        if not isinstance(keys, list) or len(keys) != len(dimensions):
            raise MappingError(f"A row's keys do not follow the dimensions {dimensions}.")
        by_name = dict(zip(dimensions, keys, strict=True))
        url, day = str(by_name["page"]), str(by_name["date"])
        found = pattern.search(url)
        if found is None or not found["ref"]:
            unmatched.append(url)
            continue
        numbers = {name: row.get(name) for name in ("clicks", "impressions", "ctr", "position")}
        payload_row = {
            "date": day,
            "url": url,
            "impressions": numbers["impressions"],
            "clicks": numbers["clicks"],
            **{k: numbers[k] for k in ("ctr", "position") if numbers[k] is not None},
        }
        fingerprint = hashlib.sha256(
            f"{day}|{url}|{numbers['clicks']}|{numbers['impressions']}|{numbers['position']}".encode()
        ).hexdigest()[:24]
        events.append(
            {
                "event_type": "search_export.processed",
                "deliverable_id": found["ref"],
                "client_id": endpoint.client.client_id,
                "idempotency_key": f"gsc:{endpoint.public_id}:{fingerprint}",
                "actor": {"role": "search_console", "id": "searchanalytics"},
                "occurred_at": f"{day}T00:00:00+00:00",
                "payload": payload_row,
            }
        )
    if unmatched and options.get("unmatched", "fail") != "skip":
        shown = ", ".join(unmatched[:3]) + (" ..." if len(unmatched) > 3 else "")
        raise MappingError(
            f"{len(unmatched)} of {len(rows)} rows match no deliverable ({shown}): fix "
            'deliverable_url and replay, or set "unmatched": "skip".'
        )
    return events


MAPPERS = {
    "wordpress": lambda endpoint, payload, vendor_id, headers: map_wordpress(
        endpoint, payload, vendor_id
    ),
    "contentful": map_contentful,
    "jira": lambda endpoint, payload, vendor_id, headers: map_jira(endpoint, payload, vendor_id),
    "cloudinary": lambda endpoint, payload, vendor_id, headers: map_cloudinary(
        endpoint, payload, vendor_id
    ),
    "webflow": lambda endpoint, payload, vendor_id, headers: map_webflow(
        endpoint, payload, vendor_id
    ),
    "search_console": lambda endpoint, payload, vendor_id, headers: map_search_console(
        endpoint, payload, vendor_id
    ),
    "standard": lambda endpoint, payload, vendor_id, headers: map_generic(
        endpoint, payload, vendor_id
    ),
}


def map_payload(
    endpoint, payload, vendor_id: str, headers: dict | None = None, links: dict | None = None
) -> list[dict]:
    """The canonical event bodies for one delivery of ``endpoint``; MappingError if none.

    ``headers`` are the ones kept with the delivery (Contentful's topic is one); ``links``
    the CRM records' deliverables a HubSpot mapping reads and extends (connectors.hubspot).
    """
    if endpoint.kind == "hubspot":
        from connectors import hubspot

        if not isinstance(payload, list):
            raise MappingError("The payload is not a JSON array of HubSpot events.")
        return hubspot.map_events(endpoint, payload, {} if links is None else links)
    if not isinstance(payload, dict):
        raise MappingError("The payload is not a JSON object.")
    return MAPPERS[endpoint.kind](endpoint, payload, vendor_id, headers or {})
