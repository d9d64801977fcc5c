from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from connectors import views as connector_views
from meshline import api, views

api_v1 = [
    path("", include("deliveries.api.urls")),
    path("", include("owners.api.urls")),
    path("", include("gates.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("flows.api.urls")),
    path("", include("reporting.api.urls")),
    path("", include("connectors.api.urls")),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="api-schema",
    ),
    # The split view serves its script from docs/?script, so the page needs no inline
    # script under the CSP; Swagger UI sets inline styles, allowed on this page alone.
    path(
        "docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(
                url_name="api-schema", authentication_classes=[], permission_classes=[]
            )
        ),
        name="api-docs",
    ),
]

urlpatterns = [
    path("", views.org_picker, name="org-picker"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", api.not_found),  # after every API route: the JSON 404, not HTML
    path("metrics", views.metrics, name="metrics"),
    path("healthz", views.healthz, name="healthz"),
    # With or without a trailing slash: senders' URL fields differ, and a redirect would
    # turn their POST into nothing.
    re_path(r"^hooks/(?P<endpoint_id>[^/]+)/?$", connector_views.hook, name="hook"),
    path("o/<slug:org_slug>/", include("deliveries.urls")),
    path("o/<slug:org_slug>/", include("owners.urls")),
    path("o/<slug:org_slug>/", include("gates.urls")),
    path("o/<slug:org_slug>/", include("billing.urls")),
    path("keys/", include("billing.public_urls")),
    path("o/<slug:org_slug>/", include("flows.urls")),
    path("o/<slug:org_slug>/", include("reporting.urls")),
    path("o/<slug:org_slug>/", include("connectors.urls")),
]
