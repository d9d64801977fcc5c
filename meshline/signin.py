"""Sign-in throttling for the portal and the admin (django-axes).

Failed sign-ins are counted per (account, address) pair in the database, so that every
web process sees the same count. After MESHLINE_SIGNIN_FAILURE_LIMIT failures the pair is
locked out for MESHLINE_SIGNIN_LOCKOUT_MINUTES: the page says until when, and an operator
unlocks earlier by deleting the attempt in the admin (Axes > Access attempts) or with
``manage.py axes_reset_username <email>``. Counting the pair, not the account alone, keeps
a stranger from locking a colleague out by typing their email wrongly on purpose.
"""

import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.shortcuts import render
from django.utils import timezone


class SignInThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check, for sign-ins that come with an HTTP request.

    ``authenticate()`` without a request (the shell, management commands, the test
    client's ``login``) has no address to count and no form to lock: it is left alone
    instead of failing as Axes' own backend does.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind MESHLINE_PROXY_COUNT trusted reverse
    proxies the address the outermost of them saw (X-Forwarded-For, counted from the
    right; anything further left is client-supplied and could be forged)."""
    hops = settings.MESHLINE_PROXY_COUNT
    if hops:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR")


def locked_out(request, original_response=None, credentials=None):
    """The lockout page (429) for the portal and the admin: what happened, and when to
    try again (each further attempt while locked out starts the wait anew)."""
    cool_off = get_cool_off(request)
    retry_at = timezone.now() + cool_off
    minutes = math.ceil(cool_off.total_seconds() / 60)
    response = render(
        request,
        "registration/locked_out.html",
        {"retry_at": retry_at, "minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
