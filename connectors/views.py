"""The webhook receiver (``POST /hooks/<endpoint>``) and the portal's Connections pages.

The receiver is thin: services.receive verifies, stores raw and answers. Portal pages read
the same models; admins create endpoints, rotate secrets, edit mappings and replay dead
letters, everyone else reads.
"""

import json
import re
import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connectors import mapping, services
from connectors.filters import InboundDeliveryFilter
from connectors.models import (
    VENDOR_SECRET_KINDS,
    ConnectorKind,
    InboundDelivery,
    InboundEndpoint,
    InboxState,
    OutboundDelivery,
    RejectedDelivery,
    Subscription,
)
from connectors.services import outages
from deliveries.models import Client, Event
from meshline import outbound
from meshline.ids import uuid_or_404
from meshline.models import Role
from meshline.outbound import mask_secret

LOG_SIZE = 50
EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


@csrf_exempt
def hook(request, endpoint_id: str):
    """POST /hooks/<endpoint public id>: verify, store raw, answer 202 (or a specific 4xx)."""
    if request.method != "POST":
        answer = services.Answer.error(405, "method_not_allowed", "Webhooks are POSTed.")
    else:
        try:
            public_id = uuid.UUID(endpoint_id)
        except ValueError:
            answer = services.Answer.error(
                404, "unknown_endpoint", "No webhook endpoint has this id."
            )
        else:
            # A declared oversize body is refused before it is read.
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            oversize = declared > settings.MESHLINE_HOOK_MAX_BYTES
            answer = services.receive(
                public_id,
                request.headers,
                b"" if oversize else request.body,
                content_type=request.content_type or "",
                declared_size=declared,
                path=request.path,
                uri=request.build_absolute_uri(),
            )
    return JsonResponse(answer.body, status=answer.status)


# --- portal -----------------------------------------------------------------------------------


def _require_admin(request) -> None:
    if request.membership.role != Role.ADMIN:
        raise PermissionDenied("Only an organization admin manages connections.")


def connections(request, org_slug):
    """Endpoints with their health, subscriptions with backlog and breaker, dead letters and
    the delivery logs (inbound searchable by vendor delivery id)."""
    organization = request.organization
    now = timezone.now()
    health = services.endpoint_health(organization, now - timedelta(days=1))
    endpoints = [
        {"endpoint": endpoint, "health": health.get(endpoint.pk, {})}
        for endpoint in InboundEndpoint.objects.filter(organization=organization).select_related(
            "client"
        )
    ]
    backlog = services.subscription_backlog(organization)
    subscriptions = [
        {"subscription": s, "backlog": backlog.get(s.pk, 0)}
        for s in Subscription.objects.filter(organization=organization).select_related("client")
    ]
    inbound = InboundDelivery.objects.filter(organization=organization).select_related("endpoint")
    filterset = InboundDeliveryFilter(request.GET, queryset=inbound)
    query = request.GET.get("q", "").strip()
    context = {
        "endpoints": endpoints,
        "subscriptions": subscriptions,
        "outages": outages.open_outages(organization),
        "dead": inbound.filter(state=InboxState.DEAD)[:LOG_SIZE],
        "inbound": filterset.qs[:LOG_SIZE],
        "outbound": OutboundDelivery.objects.filter(organization=organization).select_related(
            "subscription", "event"
        )[:LOG_SIZE],
        "rejections": RejectedDelivery.objects.filter(organization=organization).select_related(
            "endpoint"
        )[:LOG_SIZE],
        "query": query,
        "state": request.GET.get("state", ""),
        "states": InboxState.choices,
        "is_admin": request.membership.role == Role.ADMIN,
    }
    return render(request, "connectors/connections.html", context)


class EndpointForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ConnectorKind.choices)
    client = forms.ModelChoiceField(queryset=Client.objects.none())
    vendor_secret = forms.CharField(
        required=False,
        max_length=100,  # InboundEndpoint.secret's length
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        label="The tool's own secret",
        help_text="Only for a tool that signs with a secret of its own (Cloudinary: the "
        "account's API secret). Every other kind gets a secret from Meshline.",
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["client"].queryset = Client.objects.filter(organization=organization)

    def clean(self):
        data = super().clean()
        kind, secret = data.get("kind"), data.get("vendor_secret")
        if kind in VENDOR_SECRET_KINDS and not secret:
            self.add_error(
                "vendor_secret", f"{ConnectorKind(kind).label} signs with its own secret: enter it."
            )
        elif kind and kind not in VENDOR_SECRET_KINDS and secret:
            self.add_error("vendor_secret", "Meshline issues this kind's secret: leave this empty.")
        return data


@never_cache
def endpoint_create(request, org_slug):
    """An admin creates an endpoint; the page after shows its URL and secret, once."""
    _require_admin(request)
    form = EndpointForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        endpoint, secret = services.create_endpoint(
            request.organization,
            name=form.cleaned_data["name"],
            kind=form.cleaned_data["kind"],
            client=form.cleaned_data["client"],
            secret=form.cleaned_data["vendor_secret"],
        )
        return _show_secret(request, endpoint, secret)
    return render(request, "connectors/endpoint_form.html", {"form": form})


def _show_secret(request, endpoint, secret):
    return render(
        request,
        "connectors/endpoint_secret.html",
        {
            "endpoint": endpoint,
            "secret": secret,
            "vendor_secret": endpoint.kind in VENDOR_SECRET_KINDS,
            "hook_url": request.build_absolute_uri(reverse("hook", args=[endpoint.public_id])),
        },
    )


def _endpoint(request, endpoint_id) -> InboundEndpoint:
    return get_object_or_404(
        InboundEndpoint.objects.select_related("client"),
        organization=request.organization,
        public_id=uuid_or_404(endpoint_id),
    )


class MappingForm(forms.Form):
    mapping = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False)

    def __init__(self, *args, kind, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind

    def clean_mapping(self):
        text = self.cleaned_data["mapping"].strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if self.kind == ConnectorKind.STANDARD:
            problems = mapping.check_generic(value)
        else:
            problems = mapping.check_options(self.kind, value)
        if problems:
            raise forms.ValidationError(problems)
        return value


class PreviewForm(forms.Form):
    payload = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), label="Try this payload")


@never_cache
def endpoint_detail(request, org_slug, endpoint_id):
    """An endpoint: URL, masked secret, mapping (admins edit it) and the live preview."""
    endpoint = _endpoint(request, endpoint_id)
    mapping_form = MappingForm(
        initial={"mapping": json.dumps(endpoint.mapping, indent=2)}, kind=endpoint.kind
    )
    preview_form, result = PreviewForm(), None
    if request.method == "POST":
        if request.POST.get("action") == "preview":
            preview_form = PreviewForm(request.POST)
            if preview_form.is_valid():
                result = services.preview(endpoint, preview_form.cleaned_data["payload"])
        else:
            _require_admin(request)
            mapping_form = MappingForm(request.POST, kind=endpoint.kind)
            if mapping_form.is_valid():
                endpoint.mapping = mapping_form.cleaned_data["mapping"]
                endpoint.save(update_fields=["mapping"])
                messages.success(request, "Mapping saved. Replay dead letters to apply it.")
                return redirect("connection-endpoint", org_slug, endpoint.public_id)
    return render(
        request,
        "connectors/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "masked_secret": mask_secret(endpoint.secret),
            "vendor_secret": endpoint.kind in VENDOR_SECRET_KINDS,
            "hook_url": request.build_absolute_uri(reverse("hook", args=[endpoint.public_id])),
            "mapping_form": mapping_form,
            "preview_form": preview_form,
            "result": result,
            "result_json": json.dumps(result.events, indent=2) if result else "",
            "is_admin": request.membership.role == Role.ADMIN,
        },
    )


@require_POST
@never_cache
def endpoint_rotate(request, org_slug, endpoint_id):
    """A new secret, shown once; the old one verifies for the overlap window."""
    _require_admin(request)
    endpoint = _endpoint(request, endpoint_id)
    new = ""
    if endpoint.kind in VENDOR_SECRET_KINDS:
        new = request.POST.get("vendor_secret", "").strip()
        if not new or len(new) > 100:
            messages.error(
                request, "Enter the new secret from the tool (at most 100 characters) to rotate."
            )
            return redirect(
                "connection-endpoint", org_slug=org_slug, endpoint_id=endpoint.public_id
            )
    secret = endpoint.rotate_secret(timezone.now(), new=new)
    return _show_secret(request, endpoint, secret)


def inbound_detail(request, org_slug, delivery_id):
    """One received webhook: raw payload, headers, state, the events it became."""
    delivery = get_object_or_404(
        InboundDelivery.objects.select_related("endpoint"),
        organization=request.organization,
        public_id=uuid_or_404(delivery_id),
    )
    try:
        pretty = json.dumps(json.loads(delivery.body), indent=2)
    except ValueError:
        pretty = delivery.body
    events = Event.objects.filter(
        organization=request.organization, pk__in=delivery.event_ids
    ).select_related("deliverable")
    return render(
        request,
        "connectors/inbound_detail.html",
        {
            "delivery": delivery,
            "pretty": pretty,
            "events": events,
            "is_admin": request.membership.role == Role.ADMIN,
        },
    )


@require_POST
def replay(request, org_slug):
    """Replay one dead letter (``delivery``) or all of them."""
    _require_admin(request)
    public_id = request.POST.get("delivery")
    count = services.replay(
        request.organization, public_id=uuid_or_404(public_id) if public_id else None
    )
    messages.success(request, f"Replaying {count} dead letter(s).")
    return redirect("connections", org_slug)


def outbound_detail(request, org_slug, delivery_id):
    """One outbound delivery and every attempt: status, latency, the receiver's answer."""
    delivery = get_object_or_404(
        OutboundDelivery.objects.select_related("subscription", "event"),
        organization=request.organization,
        public_id=uuid_or_404(delivery_id),
    )
    return render(
        request,
        "connectors/outbound_detail.html",
        {"delivery": delivery, "attempts": delivery.attempt_log.all()},
    )


@require_POST
def subscription_pause(request, org_slug, subscription_id):
    """Pause or resume (``paused`` = 1 / 0) a subscription."""
    _require_admin(request)
    subscription = get_object_or_404(
        Subscription,
        organization=request.organization,
        public_id=uuid_or_404(subscription_id),
    )
    services.set_paused(subscription, request.POST.get("paused") == "1")
    return redirect("connections", org_slug)


class SubscriptionForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.URLField(max_length=500, assume_scheme="https", validators=[outbound.validate_url])
    event_types = forms.CharField(
        help_text="Comma-separated, e.g. ticket.opened, gate.failed, page.published."
    )
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False)
    ordered = forms.BooleanField(
        required=False,
        label="In order per deliverable",
        help_text="Hold a deliverable's later events while an earlier one is being retried.",
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["client"].queryset = Client.objects.filter(organization=organization)

    def clean_event_types(self):
        names = [n.strip() for n in self.cleaned_data["event_types"].split(",") if n.strip()]
        bad = [n for n in names if not EVENT_TYPE_RE.fullmatch(n)]
        if bad or not names:
            raise forms.ValidationError(
                "Name one or more event types as dotted lower-case words"
                + (f" (not {', '.join(bad)})." if bad else ".")
            )
        return names


@never_cache
def subscription_create(request, org_slug):
    """An admin subscribes a URL; the page after shows the signing secret, once."""
    _require_admin(request)
    form = SubscriptionForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        subscription = Subscription.objects.create(
            organization=request.organization, **form.cleaned_data
        )
        return render(
            request, "connectors/subscription_secret.html", {"subscription": subscription}
        )
    return render(request, "connectors/subscription_form.html", {"form": form})


class ReplayRangeForm(forms.Form):
    since = forms.DateTimeField(label="From")
    until = forms.DateTimeField(label="Until")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'From' must be before 'Until'.")
        return data


@require_POST
def subscription_replay(request, org_slug, subscription_id):
    """Send a subscription's deliveries of a time range again (times in the org's zone)."""
    _require_admin(request)
    subscription = get_object_or_404(
        Subscription,
        organization=request.organization,
        public_id=uuid_or_404(subscription_id),
    )
    form = ReplayRangeForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("connections", org_slug)
    count = services.replay_outbound(
        subscription, form.cleaned_data["since"], form.cleaned_data["until"]
    )
    messages.success(request, f"Sending {count} delivery(ies) of {subscription.name} again.")
    return redirect("connections", org_slug)
