from deliveries.api.urls import OptionalSlashRouter
from flows.api import views

router = OptionalSlashRouter()
router.register("flows", views.FlowViewSet, basename="flow")
router.register("flow-runs", views.FlowRunViewSet, basename="flow-run")
router.register("changes", views.ChangeViewSet, basename="change")

urlpatterns = router.urls
