"""Resolving the owner map: which rule owns an event, and why; and what the map misses."""

from dataclasses import dataclass, field

from deliveries.models import DeliverableType, Tier
from deliveries.registry import types_for
from owners.models import BacklogIncident, OwnerRule


@dataclass
class Resolution:
    """The winning rule (or None) with the reasoning an admin can read."""

    rule: OwnerRule | None
    reasons: list[str] = field(default_factory=list)
    candidates: list[OwnerRule] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "rule": self.rule.snapshot() if self.rule else None,
            "reasons": self.reasons,
            "candidates": [
                {"id": r.pk, "rule": str(r), "specificity": r.specificity, "position": r.position}
                for r in self.candidates
            ],
        }


def active_rules(organization) -> list[OwnerRule]:
    return list(
        OwnerRule.objects.filter(organization=organization, is_active=True).select_related(
            "owner_role", "backup_role", "escalation_policy"
        )
    )


def resolve(
    organization, event_type: str, client_tier: str, deliverable_type: str, rules=None
) -> Resolution:
    """Most specific matching rule; ties by position, then id. Deterministic by construction."""
    rules = active_rules(organization) if rules is None else rules
    matching = sorted(
        (r for r in rules if r.matches(event_type, client_tier, deliverable_type)),
        key=OwnerRule.sort_key,
    )
    if not matching:
        return Resolution(
            None,
            [
                f"No active rule matches event type '{event_type}', tier '{client_tier}', "
                f"deliverable type '{deliverable_type}'. Add a rule, or a catch-all with every key blank."
            ],
        )
    winner = matching[0]
    reasons = [f"Rule #{winner.pk} ({winner}) matches with {winner.specificity} specific key(s)."]
    for other in matching[1:]:
        if other.specificity < winner.specificity:
            reasons.append(
                f"Rule #{other.pk} also matches but is less specific ({other.specificity} key(s))."
            )
        else:
            reasons.append(
                f"Rule #{other.pk} is as specific; rule #{winner.pk} wins on position "
                f"({winner.position} vs {other.position}, then lower id)."
            )
    return Resolution(winner, reasons, matching)


def warnings(organization) -> list[str]:
    """Rules that can never win, and canonical combinations no rule covers."""
    rules = active_rules(organization)
    problems: list[str] = []
    seen: dict[tuple, OwnerRule] = {}
    for rule in sorted(rules, key=OwnerRule.sort_key):
        keys = (rule.event_type, rule.client_tier, rule.deliverable_type)
        if keys in seen:
            problems.append(
                f"Rule #{rule.pk} ({rule}) can never match: rule #{seen[keys].pk} has the same "
                f"keys and wins on position."
            )
        else:
            seen[keys] = rule
    known_types = {name for name, t in types_for(organization).items() if not t.internal}
    routed = known_types | {BacklogIncident.EVENT_TYPE}  # Meshline's own, routed by the map
    for rule in rules:
        if rule.event_type and rule.event_type not in routed:
            problems.append(
                f"Rule #{rule.pk} ({rule}) names event type '{rule.event_type}', "
                "which is not registered: it can never match."
            )
    uncovered = [
        (event_type, tier, dtype)
        for event_type in sorted(known_types)
        for tier in Tier.values
        for dtype in DeliverableType.values
        if not any(r.matches(event_type, tier, dtype) for r in rules)
    ]
    if uncovered:
        sample = ", ".join("/".join(c) for c in uncovered[:5])
        problems.append(
            f"{len(uncovered)} combination(s) of event type, tier and deliverable type have no "
            f"owner, e.g. {sample}. Add a catch-all rule (all keys blank)."
        )
    if not any(r.matches(BacklogIncident.EVENT_TYPE, "", "") for r in rules):
        problems.append(
            f"No rule routes '{BacklogIncident.EVENT_TYPE}': a processing backlog incident "
            "would open no ticket. Add a rule for it to your operator role."
        )
    return problems
