from django.urls import path

from connectors import views

urlpatterns = [
    path("connections/", views.connections, name="connections"),
    path("connections/endpoints/new/", views.endpoint_create, name="connection-endpoint-new"),
    path(
        "connections/endpoints/<str:endpoint_id>/",
        views.endpoint_detail,
        name="connection-endpoint",
    ),
    path(
        "connections/endpoints/<str:endpoint_id>/rotate/",
        views.endpoint_rotate,
        name="connection-endpoint-rotate",
    ),
    path("connections/inbound/<str:delivery_id>/", views.inbound_detail, name="connection-inbound"),
    path("connections/replay/", views.replay, name="connection-replay"),
    path(
        "connections/outbound/<str:delivery_id>/",
        views.outbound_detail,
        name="connection-outbound",
    ),
    path(
        "connections/subscriptions/new/",
        views.subscription_create,
        name="connection-subscription-new",
    ),
    path(
        "connections/subscriptions/<str:subscription_id>/replay/",
        views.subscription_replay,
        name="connection-subscription-replay",
    ),
    path(
        "connections/subscriptions/<str:subscription_id>/pause/",
        views.subscription_pause,
        name="connection-subscription-pause",
    ),
]
