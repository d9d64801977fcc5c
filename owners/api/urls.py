from deliveries.api.urls import OptionalSlashRouter
from owners.api import views

router = OptionalSlashRouter()
router.register("owner-map", views.OwnerMapViewSet, basename="owner-map")
router.register("roles", views.RoleViewSet, basename="role")
router.register("tickets", views.TicketViewSet, basename="ticket")

urlpatterns = router.urls
