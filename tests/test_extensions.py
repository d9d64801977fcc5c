"""The one extension registry: unique names, explicit order, registration at startup only."""

import pytest

from meshline import extensions
from meshline.extensions import DuplicateExtension, ExtensionPoint, LateRegistration


def test_installed_apps_register_their_entries_in_explicit_order():
    assert [e.name for e in extensions.dashboard_panels.entries()] == [
        "deliveries.throughput",
        "owners.backlog",
        "owners.tickets",
        "gates.gates",
        "flows.flows",
        "reporting.attribution",
    ]
    assert [link.label for link in extensions.nav_links] == [
        "Dashboard",
        "Board",
        "My queue",
        "Deliverables",
        "Events",
        "Clients",
        "Gates",
        "Flows",
        "Changes",
        "Incidents",
        "Billing",
        "Rotas",
        "Reporting",
        "Connections",
    ]
    assert [e.name for e in extensions.demo_configure.entries()] == [
        "owners.roles_rotas",
        "gates.gates",
        "billing.settings",
        "connectors.endpoints",
        "flows.templates",
    ]
    # Subscribers hear of an event after the other apps have acted on it.
    assert [e.name for e in extensions.processing_steps.entries()] == [
        "gates.evaluate",
        "billing.overruns",
        "flows.advance_runs",
        "reporting.intake",
        "connectors.subscriptions",
    ]
    assert [e.name for e in extensions.trail_listeners.entries()] == [
        "connectors.subscriptions",
        "flows.incident_rules",
    ]


def test_every_point_is_listed_and_documented():
    points = [v for v in vars(extensions).values() if isinstance(v, ExtensionPoint)]
    assert set(points) == set(extensions.POINTS)
    for point in points:
        assert point.__doc__ and point.__doc__.strip(), point.name


def test_registering_after_startup_is_refused():
    with pytest.raises(LateRegistration, match=r"AppConfig\.ready"):
        extensions.nav_links.register("test.late", extensions.NavLink("Late", "dashboard"))
    assert "test.late" not in [e.name for e in extensions.nav_links.entries()]


def test_a_name_registered_twice_raises():
    point = ExtensionPoint("test_point", "for this test")
    with point.override("test.one", 1):
        with pytest.raises(DuplicateExtension, match=r"test\.one"), point.override("test.one", 2):
            pass
        assert list(point) == [1]
    assert list(point) == []


def test_entries_come_out_by_order_then_name_and_override_removes_its_entry():
    point = ExtensionPoint("test_point", "for this test")
    with (
        point.override("b.second", "B", order=5),
        point.override("a.late", "A", order=9),
        point.override("a.first", "A0", order=5),
    ):
        assert list(point) == ["A0", "B", "A"]
        assert len(point) == 3
    assert list(point) == [] and len(point) == 0
