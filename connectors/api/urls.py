from connectors.api import views
from deliveries.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("inbound-deliveries", views.InboundDeliveryViewSet, basename="inbound-delivery")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

urlpatterns = router.urls
