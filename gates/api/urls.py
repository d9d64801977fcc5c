from deliveries.api.urls import OptionalSlashRouter
from gates.api import views

router = OptionalSlashRouter()
router.register("gates", views.GateViewSet, basename="gate")
router.register("evaluations", views.EvaluationViewSet, basename="evaluation")

urlpatterns = router.urls
