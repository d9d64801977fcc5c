"""Project-level pages: the organization picker, health and Prometheus metrics."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET

from meshline import metrics as meshline_metrics
from meshline.tenancy import organizations_for

LOOPBACK = {"127.0.0.1", "::1"}


@login_required
def org_picker(request):
    organizations = organizations_for(request.user)
    if len(organizations) == 1:
        return redirect("dashboard", org_slug=organizations[0].slug)
    return render(request, "org_picker.html", {"organizations": organizations})


@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
def metrics(request):
    """Prometheus scrape endpoint: ``Authorization: Bearer <MESHLINE_METRICS_TOKEN>``.

    Whenever a token is configured it is required, from every address, loopback included.
    Without one, only direct loopback connections are answered: that is for development
    (``make demo``). Behind a reverse proxy every client arrives from the proxy's address,
    so with MESHLINE_PROXY_COUNT set the loopback exception is off too, and
    ``check --deploy`` warns while no token is set.
    """
    token = settings.MESHLINE_METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not constant_time_compare(supplied, token):
            return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    elif settings.MESHLINE_PROXY_COUNT or request.META.get("REMOTE_ADDR") not in LOOPBACK:
        return HttpResponse(
            "set MESHLINE_METRICS_TOKEN to scrape from elsewhere\n",
            status=403,
            content_type="text/plain",
        )
    body, content_type = meshline_metrics.render()
    return HttpResponse(body, content_type=content_type)
