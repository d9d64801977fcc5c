from urllib.parse import quote, unquote

from django.urls import path, register_converter

from deliveries import views


class ReferenceConverter:
    """A client or deliverable reference as one path segment, whatever it contains.

    References follow a documented pattern since ingest enforces it, but rows stored before
    may hold '/', '..', '%', spaces or any Unicode: with ``<str:>`` reversing their URL
    raised NoReverseMatch and every page linking to one was a 500. Valid references keep
    their plain URL; anything else is percent-encoded into the segment.
    """

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        value = unquote(value)
        if "\x00" in value:  # no reference holds NUL (PostgreSQL cannot store it): a 404
            raise ValueError("NUL in a reference")
        return value

    def to_url(self, value: str) -> str:
        segment = quote(value, safe=":")
        return segment.replace(".", "%2E") if segment in {".", ".."} else segment


register_converter(ReferenceConverter, "ref")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("deliverables/", views.deliverable_list, name="deliverable-list"),
    path("deliverables/<ref:deliverable_id>/", views.deliverable_detail, name="deliverable-detail"),
    path("events/", views.event_list, name="event-list"),
    path("events/<str:event_id>/retry/", views.event_retry, name="event-retry"),
    path("clients/", views.client_list, name="client-list"),
    path("clients/<ref:client_id>/", views.client_detail, name="client-detail"),
]
