"""The owner map: which rule wins and why, what the map misses, versions, and snapshots."""

from datetime import timedelta

import pytest

from owners.models import EscalationStep, OwnerRule, WaitKind
from owners.services import escalation, owner_map
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db

KEYS = ("page.published", "enterprise", "landing_page")


@pytest.fixture
def roles(in_a):
    return {
        "seo": make_role(in_a, "seo", "SEO Delivery Owner"),
        "creative": make_role(in_a, "creative", "Creative Ops Lead"),
        "am": make_role(in_a, "am", "Account Manager"),
    }


def test_most_specific_rule_wins_whatever_the_order(in_a, roles):
    make_rule(in_a, roles["am"], position=1)  # catch-all, best position
    make_rule(in_a, roles["creative"], event_type="page.published", position=2)
    specific = make_rule(
        in_a,
        roles["seo"],
        event_type="page.published",
        client_tier="enterprise",
        deliverable_type="landing_page",
        position=999,
    )

    resolution = owner_map.resolve(in_a, *KEYS)

    assert resolution.rule == specific
    assert [r.specificity for r in resolution.candidates] == [3, 1, 0]


def test_rule_with_a_key_that_differs_does_not_match(in_a, roles):
    make_rule(in_a, roles["seo"], event_type="page.published", client_tier="standard")
    catch_all = make_rule(in_a, roles["am"])

    assert owner_map.resolve(in_a, *KEYS).rule == catch_all


def test_ties_fall_to_position_then_id(in_a, roles):
    first_by_id = make_rule(in_a, roles["seo"], event_type="page.published", position=5)
    second_by_id = make_rule(in_a, roles["creative"], event_type="page.published", position=5)
    assert owner_map.resolve(in_a, *KEYS).rule == first_by_id

    better_position = make_rule(in_a, roles["am"], client_tier="enterprise", position=4)
    assert owner_map.resolve(in_a, *KEYS).rule == better_position

    # Deterministic: the answer does not depend on the order the rules are handed over.
    rules = owner_map.active_rules(in_a)
    for ordering in (rules, list(reversed(rules))):
        assert owner_map.resolve(in_a, *KEYS, rules=ordering).rule == better_position
    assert second_by_id in owner_map.resolve(in_a, *KEYS).candidates


def test_inactive_rules_are_ignored(in_a, roles):
    make_rule(in_a, roles["seo"], event_type="page.published", is_active=False)
    fallback = make_rule(in_a, roles["am"])

    resolution = owner_map.resolve(in_a, *KEYS)

    assert resolution.rule == fallback
    assert len(resolution.candidates) == 1


def test_no_matching_rule_says_so(in_a, roles):
    make_rule(in_a, roles["seo"], event_type="asset.uploaded")

    resolution = owner_map.resolve(in_a, *KEYS)

    assert resolution.rule is None
    assert "No active rule matches" in resolution.reasons[0]
    assert resolution.as_dict()["rule"] is None


def test_dry_run_reasons_name_the_winner_and_each_loser(in_a, roles):
    catch_all = make_rule(in_a, roles["am"])
    tie_loser = make_rule(in_a, roles["creative"], event_type="page.published", position=50)
    winner = make_rule(in_a, roles["seo"], event_type="page.published", position=10)

    resolution = owner_map.resolve(in_a, *KEYS)
    reasons = resolution.reasons

    assert reasons[0].startswith(f"Rule #{winner.pk} ")
    assert "1 specific key" in reasons[0]
    [tie_reason] = [r for r in reasons if f"Rule #{tie_loser.pk} " in r]
    assert "as specific" in tie_reason and "(10 vs 50" in tie_reason
    [less_reason] = [r for r in reasons if f"Rule #{catch_all.pk} " in r]
    assert "less specific" in less_reason
    as_dict = resolution.as_dict()
    assert as_dict["rule"]["id"] == winner.pk
    assert [c["id"] for c in as_dict["candidates"]] == [winner.pk, tie_loser.pk, catch_all.pk]


def test_warns_about_a_rule_whose_keys_duplicate_a_better_one(in_a, roles):
    make_rule(in_a, roles["am"])
    kept = make_rule(in_a, roles["seo"], event_type="page.published", position=1)
    shadowed = make_rule(in_a, roles["creative"], event_type="page.published", position=2)

    problems = owner_map.warnings(in_a)

    assert len(problems) == 1
    assert f"Rule #{shadowed.pk}" in problems[0] and "can never match" in problems[0]
    assert f"rule #{kept.pk}" in problems[0]


def test_warns_about_an_unregistered_event_type(in_a, roles):
    make_rule(in_a, roles["am"])
    typo = make_rule(in_a, roles["seo"], event_type="page.publishd")

    problems = owner_map.warnings(in_a)

    assert len(problems) == 1
    assert f"Rule #{typo.pk}" in problems[0] and "'page.publishd'" in problems[0]
    assert "not registered" in problems[0]


def test_warns_about_uncovered_combinations_until_a_catch_all_exists(in_a, roles):
    make_rule(in_a, roles["seo"], event_type="page.published")

    problem, lag_incidents = owner_map.warnings(in_a)
    assert "have no owner" in problem
    # Internal (Meshline-written) types are not expected to have owners...
    assert "ticket.opened" not in problem and "page.published/" not in problem
    # ... except backlog incidents, which Meshline routes through the map.
    assert "No rule routes 'processing.lagging'" in lag_incidents

    make_rule(in_a, roles["am"])
    assert owner_map.warnings(in_a) == []


def test_a_rule_for_backlog_incidents_is_not_called_unregistered(in_a, roles):
    make_rule(in_a, roles["seo"])
    make_rule(in_a, roles["am"], event_type="processing.lagging")

    assert owner_map.warnings(in_a) == []


def test_uncovered_count_shrinks_with_a_partial_rule(in_a, roles):
    make_rule(in_a, roles["seo"], event_type="page.published")
    before, _lag_incidents = owner_map.warnings(in_a)
    make_rule(in_a, roles["am"], client_tier="enterprise")
    after, _lag_incidents = owner_map.warnings(in_a)

    count = int(before.split()[0])
    assert int(after.split()[0]) == count - (count // 3)  # every enterprise combination


def test_rule_edits_are_versioned_and_can_be_reverted(in_a, roles):
    rule = make_rule(in_a, roles["seo"], event_type="page.published", respond_minutes=60)
    assert rule.history.count() == 1

    rule.respond_minutes = 15
    rule.owner_role = roles["creative"]
    rule.save()
    assert rule.history.count() == 2
    latest, original = rule.history.all()  # newest first
    assert (latest.respond_minutes, original.respond_minutes) == (15, 60)

    original.instance.save()

    rule.refresh_from_db()
    assert rule.respond_minutes == 60
    assert rule.owner_role == roles["seo"]
    assert rule.history.count() == 3
    assert owner_map.resolve(in_a, *KEYS).rule.owner_role == roles["seo"]


def test_ticket_keeps_its_rule_and_policy_after_both_are_edited(in_a, roles, open_ticket):
    policy = make_policy(
        in_a,
        steps=[(30, WaitKind.WALL, "notify_primary"), (60, WaitKind.WALL, "notify_primary")],
    )
    rule = make_rule(in_a, roles["seo"], policy, event_type="page.published", respond_minutes=60)
    t0 = MONDAY_10_BERLIN
    ticket = open_ticket("incident:before-edit")
    due = (ticket.respond_due_at, ticket.resolve_due_at, ticket.next_escalation_at)
    assert due == (
        t0 + timedelta(minutes=60),
        t0 + timedelta(minutes=240),
        t0 + timedelta(minutes=30),
    )

    rule.respond_minutes = 5
    rule.resolve_minutes = 10
    rule.owner_role = roles["creative"]
    rule.save()
    EscalationStep.objects.filter(policy=policy).update(wait_minutes=999)
    policy.repeat = 3
    policy.save()

    ticket.refresh_from_db()
    assert (ticket.respond_due_at, ticket.resolve_due_at, ticket.next_escalation_at) == due
    assert ticket.owner_role == roles["seo"]
    assert ticket.rule_snapshot["respond_minutes"] == 60
    assert ticket.rule_snapshot["owner_role"] == roles["seo"].pk
    assert [s["wait_minutes"] for s in ticket.policy_snapshot["steps"]] == [30, 60]

    # Escalation follows the snapshot: the second step still waits 60 minutes, and the
    # policy ends after two steps (the snapshot's repeat=0, not the edited 3).
    escalated_at = t0 + timedelta(minutes=30)
    assert escalation.escalate_due_tickets(in_a, now=escalated_at) == 1
    ticket.refresh_from_db()
    assert ticket.next_escalation_at == escalated_at + timedelta(minutes=60)
    assert escalation.escalate_due_tickets(in_a, now=ticket.next_escalation_at) == 1
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2 and ticket.next_escalation_at is None

    # A ticket opened after the edit gets the new rule.
    fresh = open_ticket("incident:after-edit")
    assert fresh.owner_role == roles["creative"]
    assert fresh.respond_due_at == t0 + timedelta(minutes=5)
    assert fresh.next_escalation_at == t0 + timedelta(minutes=999)


def test_other_organizations_rules_never_resolve(in_a, roles, org_b):
    from django_scopes import scope

    with scope(organization=org_b):
        other = make_role(org_b, "seo", "B's SEO")
        make_rule(org_b, other, event_type="page.published")
    assert owner_map.resolve(in_a, *KEYS).rule is None
    assert OwnerRule.objects.count() == 0
