"""Owners: roles, the owner map, calendars, rotas, escalation policies, tickets, notifications.

Configuration rows (roles, rules, calendars, rotas, policies) are versioned with
django-simple-history. A ticket snapshots the rule and policy that applied when it opened,
so later edits never change tickets already running.

Each sub-domain is its own module; everything is re-exported here, so ``from owners.models
import Ticket`` (and the migrations' ``owners.models.validate_timezone``) keep working.
"""

from meshline.models import validate_timezone
from owners.models.backlog import BacklogIncident
from owners.models.calendars import BusinessCalendar, Holiday, parse_working_hours
from owners.models.escalation import EscalationPolicy, EscalationStep, StepAction, WaitKind
from owners.models.notifications import (
    ChannelKind,
    DeliveryStatus,
    Notification,
    NotificationAttempt,
    NotificationChannel,
    WebhookEndpoint,
)
from owners.models.owner_map import OwnerRule
from owners.models.roles import OwnerRole
from owners.models.rotas import Frequency, Rota, RotaLayer, RotaOverride
from owners.models.tickets import (
    ACTIVE_STATUSES,
    Priority,
    Ticket,
    TicketSource,
    TicketStatus,
    overdue_q,
)

__all__ = [
    "ACTIVE_STATUSES",
    "BacklogIncident",
    "BusinessCalendar",
    "ChannelKind",
    "DeliveryStatus",
    "EscalationPolicy",
    "EscalationStep",
    "Frequency",
    "Holiday",
    "Notification",
    "NotificationAttempt",
    "NotificationChannel",
    "OwnerRole",
    "OwnerRule",
    "Priority",
    "Rota",
    "RotaLayer",
    "RotaOverride",
    "StepAction",
    "Ticket",
    "TicketSource",
    "TicketStatus",
    "WaitKind",
    "WebhookEndpoint",
    "overdue_q",
    "parse_working_hours",
    "validate_timezone",
]
