from django.urls import path

from reporting import views

urlpatterns = [
    path("reporting/", views.reporting, name="reporting"),
    path(
        "reporting/deliverables/<ref:deliverable_id>/",
        views.forensic_report,
        name="forensic-report",
    ),
    path(
        "reporting/deliverables/<ref:deliverable_id>/report.pdf",
        views.forensic_report_pdf,
        name="forensic-report-pdf",
    ),
    path("reporting/audits/<str:month>/", views.audit_detail, name="audit-detail"),
    path(
        "reporting/audits/<str:month>/<int:position>/review",
        views.audit_review,
        name="audit-review",
    ),
    path(
        "reporting/audits/<str:month>/<int:position>/report.pdf",
        views.audit_report,
        name="audit-report",
    ),
    path("reporting/exports/<uuid:export_id>/", views.export_download, name="export-download"),
]
