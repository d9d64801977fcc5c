from django.urls import path

from reporting import views

urlpatterns = [
    path("reporting/", views.reporting, name="reporting"),
    path(
        "reporting/deliverables/<ref:deliverable_id>/",
        views.forensic_report,
        name="forensic-report",
    ),
    path("reporting/exports/<uuid:export_id>/", views.export_download, name="export-download"),
]
