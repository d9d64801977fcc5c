from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows and governance"

    def ready(self) -> None:
        from flows import demo as flows_demo
        from flows import views
        from flows.models import AssuranceCheck, FlowTicketLink
        from flows.services import incidents, runs
        from meshline import extensions as ext

        # After gates (20): a flow reads the event once the gates have judged it.
        ext.processing_steps.register("flows.advance_runs", runs.on_batch_processed, order=30)
        ext.trail_listeners.register("flows.incident_rules", incidents.on_trail_appended)
        ext.ticket_sources.register(
            "flows.link",
            ext.TicketSource(
                "flow_link",
                ("flow_link__run__flow", "flow_link__run__deliverable"),
                FlowTicketLink.public_ids,
            ),
        )
        ext.ticket_sources.register(
            "flows.assurance",
            ext.TicketSource(
                "assurance_check", ("assurance_check__person",), AssuranceCheck.public_ids
            ),
        )
        ext.queue_sections.register(
            "flows.assurance",
            ext.Section("flows/partials/queue_assurance.html", views.queue_section),
        )
        ext.trail_sections.register("flows.flow_runs", runs.trail_section)
        ext.deliverable_sections.register(
            "flows.runs",
            ext.Section("flows/partials/deliverable_runs.html", runs.portal_section),
            order=30,
        )
        ext.dashboard_panels.register(
            "flows.flows",
            ext.Section("flows/partials/flows_panel.html", views.flows_panel),
            order=30,
        )
        ext.demo_configure.register("flows.templates", flows_demo.configure, order=30)
        ext.demo_events.register("flows.leads_and_briefs", flows_demo.demo_events)
        ext.demo_after_events.register("flows.runs", flows_demo.after_events, order=30)
        ext.nav_links.register("flows.flows", ext.NavLink("Flows", "flow-list"), order=37)
        ext.nav_links.register("flows.changes", ext.NavLink("Changes", "change-list"), order=38)
        ext.nav_links.register(
            "flows.incidents", ext.NavLink("Incidents", "incident-list"), order=39
        )
