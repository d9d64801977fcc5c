"""Where the tenant scope is entered for the portal, and helpers that use it.

Portal URLs name the organization (``/o/<org_slug>/...``). The middleware resolves it, checks
the signed-in user's membership, and runs the whole view (template rendering included)
inside ``django_scopes.scope(organization=...)`` and the organization's time zone. Outsiders get 404, not 403: the existence
of another tenant is not theirs to learn. The Django admin runs with scopes disabled and
filters by the user's administered organizations itself (meshline.admin.TenantAdmin).
"""

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseBadRequest
from django.urls import Resolver404, resolve
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from meshline import extensions, telemetry
from meshline.models import Membership, Organization


def _has_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in query.lists())


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.organization = None
        request.membership = None
        if _has_nul(request.GET) and not request.path_info.startswith("/api/"):
            # PostgreSQL text cannot hold NUL: a filter passing one on would be a 500. The
            # API answers its own JSON 400 (meshline.api.refuse_nul_in_query).
            return HttpResponseBadRequest(
                "Query parameters must not contain NUL characters.", content_type="text/plain"
            )
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if match.namespace == "admin" or match.app_name == "admin":
            with scopes_disabled():
                return self.get_response(request)
        org_slug = match.kwargs.get("org_slug")
        if org_slug is None:
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = (
            Membership.objects.select_related("organization")
            .filter(user=request.user, organization__slug=org_slug)
            .first()
        )
        if membership is None:
            raise Http404("No such organization")
        request.organization = membership.organization
        request.membership = membership
        telemetry.tag_organization(membership.organization)
        # Dates and times render, and forms parse them, in the organization's zone.
        with (
            scope(organization=membership.organization),
            timezone.override(membership.organization.zone),
        ):
            return self.get_response(request)


def organization_context(request):
    """Template context: the current organization, the user's role in it, the portal nav."""
    organization = getattr(request, "organization", None)
    nav = []
    if organization is not None:
        nav = list(extensions.nav_links)
    return {
        "organization": organization,
        "membership": getattr(request, "membership", None),
        "portal_nav": nav,
    }


def organizations_for(user) -> list[Organization]:
    """The organizations a user can open, for the organization picker."""
    if not user.is_authenticated:
        return []
    return list(Organization.objects.filter(memberships__user=user).order_by("name"))
