from rest_framework.routers import SimpleRouter

from deliveries.api import views


class OptionalSlashRouter(SimpleRouter):
    """``/api/v1/events`` as the contract spells it, and ``/api/v1/events/`` alike."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("events", views.EventViewSet, basename="event")
router.register("clients", views.ClientViewSet, basename="client")
router.register("deliverables", views.DeliverableViewSet, basename="deliverable")
router.register("event-types", views.EventTypeViewSet, basename="event-type")

urlpatterns = router.urls
