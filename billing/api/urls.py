from billing.api import views
from deliveries.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("agreements", views.AgreementViewSet, basename="agreement")
router.register("billable-items", views.BillableItemViewSet, basename="billable-item")
router.register("invoices", views.InvoiceViewSet, basename="invoice")
router.register("disputes", views.DisputeViewSet, basename="dispute")

urlpatterns = router.urls
