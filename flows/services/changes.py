"""Governed changes (four-eyes): propose with a diff and a dry run, a second admin
approves and it applies, any admin rolls it back in one step to the version before it.

Versions come from django-simple-history: applying stores the history row before and the
one it wrote; a rollback saves the earlier version again (a new history row, so the
rollback is itself versioned) and is recorded in the trail like every other step.
"""

import copy
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import BillingSettings
from deliveries.services import trail
from flows.models import (
    OPEN_STATES,
    ApprovalPolicy,
    Change,
    ChangeKind,
    ChangeStatus,
    Flow,
    FlowRun,
)
from flows.services import policy_steps, runs
from gates.models import Gate, GateMode
from meshline.models import Membership, Role
from owners.models import ACTIVE_STATUSES, EscalationPolicy, OwnerRole, OwnerRule, Ticket
from owners.services import owner_map
from owners.services.schedules import calendar_spec, deadline


class ChangeError(Exception):
    """A change that cannot be made; ``code`` for machines, ``field`` for forms and the API."""

    def __init__(self, message: str, code: str = "invalid", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


# Codes that mean "not you", not "not now": the API answers them 403, the rest 409.
FORBIDDEN_CODES = {"not_admin", "four_eyes"}

FIELDS = {
    ChangeKind.FLOW: [
        "name",
        "owner_role",
        "trigger_event_type",
        "client_tiers",
        "deliverable_types",
        "payload_conditions",
        "required_fields",
        "milestones",
        "outcome_event_type",
        "due_minutes",
        "due_kind",
        "runbook",
        "affects_billing",
        "affects_privacy",
        "affects_client_sla",
        "essential",
        "is_active",
    ],
    ChangeKind.OWNER_RULE: [
        "owner_role",
        "backup_role",
        "respond_minutes",
        "resolve_minutes",
        "escalation_policy",
        "position",
        "is_active",
    ],
}
FIELDS[ChangeKind.GATE] = [
    "name",
    "event_types",
    "client_tiers",
    "deliverable_types",
    "parameters",
    "mode",
    "playbook",
    "priority",
    "min_evaluations",
    "max_fail_rate",
]
FIELDS[ChangeKind.BILLING_SETTINGS] = [
    "currency",
    "tax_rate",
    "second_approval_above",
    "default_rates",
    "flag_unscoped_work",
    "agreement_terms",
    "invoice_footer",
]
FIELDS[ChangeKind.APPROVAL_POLICY] = list(ApprovalPolicy.REQUIREMENTS)
# "steps" is not a column: the policy's step rows, as one list (flows.services.policy_steps).
STEPS = "steps"
FIELDS[ChangeKind.ESCALATION_POLICY] = ["name", "repeat", STEPS]
MODELS = {
    ChangeKind.FLOW: Flow,
    ChangeKind.OWNER_RULE: OwnerRule,
    ChangeKind.GATE: Gate,
    ChangeKind.BILLING_SETTINGS: BillingSettings,
    ChangeKind.APPROVAL_POLICY: ApprovalPolicy,
    ChangeKind.ESCALATION_POLICY: EscalationPolicy,
}
FOREIGN_KEYS = {
    "owner_role": OwnerRole,
    "backup_role": OwnerRole,
    "escalation_policy": EscalationPolicy,
}


def kind_of(target) -> str:
    return next(kind for kind, model in MODELS.items() if isinstance(target, model))


def _stored(field, value):
    """A value as a JSON document keeps it: decimals as text with the field's places."""
    if isinstance(value, Decimal):
        return f"{value:.{field.decimal_places}f}"
    return value


def values(target, names) -> dict:
    """Field values as stored: foreign keys as their ids, decimals as text, a policy's
    steps as their list (a candidate's proposed one, else the stored rows)."""
    found = {}
    for name in names:
        if name == STEPS:
            proposed = target.__dict__.get("_proposed_steps")
            found[name] = proposed if proposed is not None else policy_steps.current(target)
            continue
        field = target._meta.get_field(name)
        found[name] = _stored(field, getattr(target, field.attname))
    return found


def find_target(organization, kind: str, reference: str):
    """The row a proposal names: a flow's or gate's slug, an owner rule's or escalation
    policy's id; the organization's billing settings and approval policy need none."""
    if kind == ChangeKind.APPROVAL_POLICY:
        return ApprovalPolicy.for_organization(organization)
    if kind == ChangeKind.BILLING_SETTINGS:
        found = BillingSettings.objects.filter(organization=organization).first()
    elif kind in (ChangeKind.OWNER_RULE, ChangeKind.ESCALATION_POLICY):
        found = (
            MODELS[kind].objects.filter(organization=organization, pk=int(reference)).first()
            if reference.isdigit() and len(reference) < 19
            else None
        )
    else:
        found = MODELS[kind].objects.filter(organization=organization, slug=reference).first()
    if found is None:
        raise ChangeError(
            f"No such {kind.replace('_', ' ')}: {reference!r}.", "does_not_exist", "target"
        )
    return found


ROLE_FIELDS = ("owner_role", "backup_role")


def with_role_ids(organization, fields: dict) -> dict:
    """``fields`` with owner and backup roles named by slug turned into ids."""
    resolved = dict(fields)
    for name in ROLE_FIELDS:
        value = resolved.get(name)
        if isinstance(value, str):
            role = OwnerRole.objects.filter(organization=organization, slug=value).first()
            if role is None:
                raise ChangeError(f"No role with the slug {value!r}.", "does_not_exist", name)
            resolved[name] = role.pk
    return resolved


def target_of(change: Change):
    return MODELS[change.kind].objects.get(organization=change.organization_id, pk=change.target_id)


def is_admin(organization, user) -> bool:
    return Membership.objects.filter(organization=organization, user=user, role=Role.ADMIN).exists()


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _candidate(target, fields: dict):
    """The target as it would be with ``fields``, checked as a form would; never saved."""
    allowed = FIELDS[kind_of(target)]
    for name in fields:
        if name not in allowed:
            raise ChangeError(
                f"'{name}' cannot be changed here; changeable: {', '.join(allowed)}.",
                "unknown_field",
                name,
            )
    candidate = copy.copy(target)
    candidate._state = copy.copy(target._state)
    # The related-object cache is a dict: share it and the target would change too.
    candidate._state.fields_cache = dict(target._state.fields_cache)
    for name, value in fields.items():
        if name == STEPS:
            try:
                candidate._proposed_steps = policy_steps.clean(target, value)
            except policy_steps.StepError as exc:
                raise ChangeError(str(exc), "invalid", STEPS) from None
            continue
        model = FOREIGN_KEYS.get(name)
        if model is not None and value is not None and not _is_id(value):
            raise ChangeError(f"{name} is an id (or null).", "invalid", name)
        if model is not None and value is not None:
            related = model.objects.filter(organization=target.organization_id, pk=value).first()
            if related is None:
                raise ChangeError(f"No such {name.replace('_', ' ')}.", "does_not_exist", name)
            setattr(candidate, name, related)
        elif model is not None:
            setattr(candidate, name, None)
        else:
            setattr(candidate, name, value)
    try:
        candidate.full_clean(exclude=["organization"], validate_unique=False)
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        field = None if name == "__all__" else name
        raise ChangeError(" ".join(messages), "invalid", field) from None
    return candidate


def policy_of(organization_id) -> ApprovalPolicy:
    """The organization's approval policy; every requirement on when it has none yet."""
    return ApprovalPolicy.objects.filter(organization=organization_id).first() or ApprovalPolicy()


def needs_approval(target, candidate) -> bool:
    """Whether a second admin must approve, as the organization's approval policy says:
    flows when a billing, privacy or SLA flag is set before or after, owner rules, gates in
    enforce mode before or after, billing settings. Lifting a requirement always does."""
    if isinstance(target, ApprovalPolicy):
        return any(
            getattr(target, name) and not getattr(candidate, name)
            for name in ApprovalPolicy.REQUIREMENTS
        )
    policy = policy_of(target.organization_id)
    if isinstance(target, Flow):
        return policy.flows and (target.needs_approval or candidate.needs_approval)
    if isinstance(target, Gate):
        enforced = GateMode.ENFORCE in (target.mode, candidate.mode)
        return policy.enforced_gates and enforced
    if isinstance(target, BillingSettings):
        return policy.billing_settings
    if isinstance(target, EscalationPolicy):
        return policy.escalation_policies
    return policy.owner_rules


def propose(target, fields: dict, user, *, reason: str = "", at: datetime | None = None) -> Change:
    """Record a proposal; apply it at once only when it needs no second admin."""
    organization = target.organization
    if not is_admin(organization, user):
        raise ChangeError("Only admins propose configuration changes.", "not_admin")
    candidate = _candidate(target, fields)
    kind = kind_of(target)
    before = values(target, fields)
    after = values(candidate, fields)
    changed = {name: value for name, value in after.items() if before[name] != value}
    if not changed:
        raise ChangeError("The proposal changes nothing.", "nothing_changed")
    at = at or timezone.now()
    with transaction.atomic():
        change = Change.objects.create(
            organization=organization,
            kind=kind,
            target_id=target.pk,
            target_label=str(target)[:200],
            before={name: before[name] for name in changed},
            proposed=changed,
            dry_run=dry_run(target, candidate),
            reason=reason,
            requires_approval=needs_approval(target, candidate),
            proposed_by=user,
            proposed_at=at,
        )
        _record(change, "proposed", user, at)
        if not change.requires_approval:
            _apply(change, user, at)
    return change


def _locked(change: Change) -> Change:
    return Change.objects.select_for_update().select_related("organization").get(pk=change.pk)


def approve(change: Change, user, *, note: str = "", at: datetime | None = None) -> Change:
    """A second admin's yes: the change applies now. The proposer cannot approve."""
    at = at or timezone.now()
    with transaction.atomic():
        change = _locked(change)
        _check_decider(change, user)
        if change.proposed_by_id == user.pk:
            raise ChangeError(
                "Four eyes: a second admin must approve, not the proposer.", "four_eyes"
            )
        change.decision_note = note
        _apply(change, user, at)
    return change


def reject(change: Change, user, *, note: str = "", at: datetime | None = None) -> Change:
    at = at or timezone.now()
    with transaction.atomic():
        change = _locked(change)
        _check_decider(change, user)
        change.status = ChangeStatus.REJECTED
        change.decided_by, change.decided_at, change.decision_note = user, at, note
        change.save()
        _record(change, "rejected", user, at, note=note)
    return change


def _check_decider(change: Change, user) -> None:
    if not is_admin(change.organization, user):
        raise ChangeError("Only admins approve or reject changes.", "not_admin")
    if change.status != ChangeStatus.PROPOSED:
        raise ChangeError(f"This change is already {change.status}.", "invalid_status")


def _apply(change: Change, user, at: datetime) -> None:
    model = MODELS[change.kind]
    target = model.objects.select_for_update().get(
        organization=change.organization_id, pk=change.target_id
    )
    if values(target, change.before) != change.before:
        raise ChangeError(
            "The configuration changed since this was proposed; propose it again.", "stale"
        )
    latest = target.history.order_by("-history_id").first()
    if latest is None:  # a row older than its history: give the rollback a version to return to
        target._change_reason = "baseline before a governed change"
        target.save()
        latest = target.history.order_by("-history_id").first()
    for name, value in change.proposed.items():
        if name != STEPS:
            setattr(target, target._meta.get_field(name).attname, value)
    target._change_reason = f"change {change.pk}"
    target.save()
    if STEPS in change.proposed:
        policy_steps.replace(target, change.proposed[STEPS])
    change.previous_history_id = latest.history_id
    change.applied_history_id = target.history.order_by("-history_id").first().history_id
    change.status = ChangeStatus.APPLIED
    change.decided_by, change.decided_at = user, at
    change.save()
    _after(change, target)
    _record(change, "applied", user, at)


def rollback(change: Change, user, *, at: datetime | None = None) -> Change:
    """Restore the version this change replaced, in one step; itself recorded."""
    at = at or timezone.now()
    with transaction.atomic():
        change = _locked(change)
        if not is_admin(change.organization, user):
            raise ChangeError("Only admins roll changes back.", "not_admin")
        if change.status != ChangeStatus.APPLIED:
            raise ChangeError(
                f"Only applied changes roll back; this one is {change.status}.", "invalid_status"
            )
        target = (
            MODELS[change.kind]
            .objects.select_for_update()
            .get(organization=change.organization_id, pk=change.target_id)
        )
        later = Change.objects.filter(
            organization=change.organization_id,
            kind=change.kind,
            target_id=change.target_id,
            status=ChangeStatus.APPLIED,
            applied_history_id__gt=change.applied_history_id,
        )
        # Restoring the version before this change would silently undo a later one.
        if later.exists() or values(target, change.proposed) != change.proposed:
            raise ChangeError(
                "A later change edited this since; roll that one back first.", "superseded"
            )
        # The fields this change touched, as the version before it had them; a field the
        # change did not touch keeps its current value.
        previous = target.history.get(history_id=change.previous_history_id)
        for name in change.proposed:
            if name == STEPS:
                continue  # not a column: restored from what the change replaced, below
            attname = target._meta.get_field(name).attname
            setattr(target, attname, getattr(previous, attname))
        target._change_reason = f"rollback of change {change.pk}"
        target.save()
        if STEPS in change.proposed:
            policy_steps.replace(target, change.before[STEPS])
        change.status = ChangeStatus.ROLLED_BACK
        change.rolled_back_by, change.rolled_back_at = user, at
        change.save()
        _after(change, target)
        _record(change, "rolled_back", user, at)
    return change


def _after(change: Change, target) -> None:
    if change.kind == ChangeKind.FLOW:
        runs.reschedule_open_runs(target)


def _record(change: Change, step: str, user, at: datetime, **extra) -> None:
    trail.record(
        change.organization,
        f"config.{step}",
        key=f"change:{change.pk}:{step}",
        actor_role="user",
        actor_id=user.email or user.username,
        occurred_at=at,
        payload={
            "change_id": str(change.pk),
            "kind": change.kind,
            "target": change.target_label,
            "diff": change.diff(),
            **extra,
        },
    )


# --- dry run ------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def dry_run(target, candidate) -> list[dict]:
    """What would change owner or deadline: open runs (and, for owner rules, the open
    tickets opened under the rule) under the current row versus the proposed one."""
    if isinstance(target, Flow):
        return _flow_dry_run(target, candidate)
    if isinstance(target, OwnerRule):
        return _rule_dry_run(target, candidate)
    # Gates, billing settings and the approval policy move no owner or deadline of an open
    # ticket or run (tickets keep the rule and policy they opened under): they act on what
    # comes next.
    return []


def _flow_dry_run(flow: Flow, candidate: Flow) -> list[dict]:
    items = []
    specs: dict = {}
    for run in FlowRun.objects.filter(
        organization=flow.organization_id, flow=flow, state__in=OPEN_STATES
    ).select_related("deliverable", "client", "organization"):
        if run.client_id not in specs:
            specs[run.client_id] = runs.spec_for(run)
        due_now, _ = runs.schedule(flow, run, specs[run.client_id])
        due_then, _ = runs.schedule(candidate, run, specs[run.client_id])
        owner_now = runs.breach_owner(flow, run)
        owner_then = runs.breach_owner(candidate, run)
        item = {"kind": "run", "id": str(run.pk), "deliverable": run.deliverable.deliverable_id}
        if owner_now != owner_then:
            item["owner"] = [_name(owner_now), _name(owner_then)]
        if due_now != due_then:
            item["due_at"] = [_iso(due_now), _iso(due_then)]
        if len(item) > 3:
            items.append(item)
    return items


def _rule_dry_run(rule: OwnerRule, candidate: OwnerRule) -> list[dict]:
    organization = rule.organization
    rules_now = owner_map.active_rules(organization)
    rules_then = [r for r in rules_now if r.pk != rule.pk] + (
        [candidate] if candidate.is_active else []
    )
    items = []
    for ticket in Ticket.objects.filter(
        organization=organization, status__in=ACTIVE_STATUSES, rule_snapshot__id=rule.pk
    ).select_related("owner_role", "calendar", "deliverable__client", "flow_link__run__flow"):
        deliverable = ticket.deliverable
        keys = (
            ticket.rule_snapshot.get("event_type") or "",
            deliverable.client.tier if deliverable else "",
            deliverable.type if deliverable else "",
        )
        new_rule = owner_map.resolve(organization, *keys, rules=rules_then).rule
        item = {"kind": "ticket", "id": str(ticket.pk), "title": ticket.title}
        flow_owned = hasattr(ticket, "flow_link") and ticket.flow_link.run.flow.owner_role_id
        new_owner = ticket.owner_role if flow_owned or new_rule is None else new_rule.owner_role
        if new_rule is None:
            item["owner"] = [ticket.owner_role.name, None]
        elif new_owner != ticket.owner_role:
            item["owner"] = [ticket.owner_role.name, new_owner.name]
        if new_rule is not None and new_rule.resolve_minutes != ticket.rule_snapshot.get(
            "resolve_minutes"
        ):
            spec = calendar_spec(ticket.calendar)
            item["resolve_due_at"] = [
                _iso(ticket.resolve_due_at),
                _iso(deadline(spec, ticket.opened_at, new_rule.resolve_minutes, "business")),
            ]
        if len(item) > 3:
            items.append(item)
    for run in FlowRun.objects.filter(
        organization=organization, state__in=OPEN_STATES, flow__owner_role__isnull=True
    ).select_related("flow", "deliverable", "client", "organization"):
        owner_now = runs.breach_owner(run.flow, run, rules=rules_now)
        owner_then = runs.breach_owner(run.flow, run, rules=rules_then)
        if owner_now != owner_then:
            items.append(
                {
                    "kind": "run",
                    "id": str(run.pk),
                    "deliverable": run.deliverable.deliverable_id,
                    "owner": [_name(owner_now), _name(owner_then)],
                }
            )
    return items


def _name(role) -> str | None:
    return role.name if role is not None else None


def current_dry_run(change: Change) -> list[dict]:
    """The proposal's dry run against the configuration as it stands now (e.g. after a
    rollback, to show the prior behaviour is back)."""
    target = target_of(change)
    fields = {**values(target, change.proposed), **change.proposed}
    return dry_run(target, _candidate(target, fields))
