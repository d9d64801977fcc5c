"""An escalation policy's steps as one governed value: a list of step dicts, the shape
``EscalationStep.snapshot()`` gives (position, wait_minutes, wait_kind, action, target_role,
people, webhook). A proposal carries the whole list; applying it (or rolling it back)
replaces the policy's steps with it. Tickets already open keep the policy they opened
under (their snapshot): only tickets opened afterwards follow the new steps."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from owners.models import EscalationStep, OwnerRole, WebhookEndpoint

STEP_KEYS = ("position", "wait_minutes", "wait_kind", "action", "target_role", "people", "webhook")


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


class StepError(ValueError):
    """A proposed step list that is not valid; the message names the step and the field."""


def current(policy) -> list[dict]:
    return [step.snapshot() for step in policy.steps.prefetch_related("people")]


def clean(policy, steps) -> list[dict]:
    """The steps, checked as the admin's step form would and normalised; StepError if not."""
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise StepError("steps is a list of objects (position, wait_minutes, action, ...).")
    organization = policy.organization_id
    members = set(
        get_user_model()
        .objects.filter(memberships__organization=organization)
        .values_list("pk", flat=True)
    )
    cleaned = []
    for index, raw in enumerate(steps, start=1):
        unknown = set(raw) - set(STEP_KEYS)
        if unknown:
            raise StepError(f"Step {index}: unknown keys {', '.join(sorted(unknown))}.")
        role = raw.get("target_role")
        webhook = raw.get("webhook")
        people = raw.get("people") or []
        ids = [value for value in (role, webhook) if value is not None]
        if not isinstance(people, list) or not all(_is_id(value) for value in [*ids, *people]):
            raise StepError(f"Step {index}: target_role, webhook and people are ids.")
        if (
            role is not None
            and not OwnerRole.objects.filter(organization=organization, pk=role).exists()
        ):
            raise StepError(f"Step {index}: no such target_role.")
        if (
            webhook is not None
            and not WebhookEndpoint.objects.filter(organization=organization, pk=webhook).exists()
        ):
            raise StepError(f"Step {index}: no such webhook.")
        if not set(people) <= members:
            raise StepError(f"Step {index}: people are ids of this organization's members.")
        step = EscalationStep(
            organization_id=organization,
            policy=policy,
            position=raw.get("position", index),
            wait_minutes=raw.get("wait_minutes", 30),
            wait_kind=raw.get("wait_kind", "business"),
            action=raw.get("action", ""),
            target_role_id=role,
            webhook_id=webhook,
        )
        try:
            step.full_clean(exclude=["policy", "organization"])
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise StepError(f"Step {index}: {name}: {' '.join(messages)}") from None
        cleaned.append(
            {
                "position": step.position,
                "wait_minutes": step.wait_minutes,
                "wait_kind": step.wait_kind,
                "action": step.action,
                "target_role": step.target_role_id,
                "people": sorted(people),
                "webhook": step.webhook_id,
            }
        )
    return sorted(cleaned, key=lambda step: step["position"])


def replace(policy, steps: list[dict]) -> None:
    """Make ``steps`` the policy's steps (the old ones are deleted, in their history)."""
    policy.steps.all().delete()
    for raw in steps:
        step = EscalationStep.objects.create(
            organization_id=policy.organization_id,
            policy=policy,
            position=raw["position"],
            wait_minutes=raw["wait_minutes"],
            wait_kind=raw["wait_kind"],
            action=raw["action"],
            target_role_id=raw["target_role"],
            webhook_id=raw["webhook"],
        )
        if raw["people"]:
            step.people.set(raw["people"])
