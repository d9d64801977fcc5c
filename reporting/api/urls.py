from django.urls import re_path

from deliveries.api.urls import OptionalSlashRouter
from deliveries.api.views import REFERENCE_REGEX
from reporting.api import views

router = OptionalSlashRouter()
router.register("search-performance", views.SearchImportViewSet, basename="search-performance")
router.register("exports", views.ExportViewSet, basename="export")

urlpatterns = [
    *router.urls,
    re_path(
        rf"^deliverables/(?P<deliverable_id>{REFERENCE_REGEX})/forensics/?$",
        views.ForensicsViewSet.as_view({"get": "retrieve"}),
        name="deliverable-forensics",
    ),
    re_path(
        rf"^deliverables/(?P<deliverable_id>{REFERENCE_REGEX})/forensics/pdf/?$",
        views.ForensicsViewSet.as_view({"get": "pdf"}),
        name="deliverable-forensics-pdf",
    ),
]
