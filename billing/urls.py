from django.urls import path

from billing import views

urlpatterns = [
    path("billing/", views.queue, name="billing-queue"),
    path("billing/items/<str:item_id>/", views.item_detail, name="billing-item"),
    path("billing/items/<str:item_id>/approve", views.item_approve, name="billing-item-approve"),
    path("billing/items/<str:item_id>/reject", views.item_reject, name="billing-item-reject"),
    path("billing/items/<str:item_id>/adjust", views.item_adjust, name="billing-item-adjust"),
    path("billing/items/<str:item_id>/dispute", views.item_dispute, name="billing-item-dispute"),
    path("billing/report", views.finance_report, name="billing-report"),
    path("billing/report.csv", views.finance_report_csv, name="billing-report-csv"),
    path("billing/disputes/", views.dispute_list, name="billing-disputes"),
    path("billing/disputes/<str:dispute_id>/", views.dispute_detail, name="billing-dispute"),
    path(
        "billing/disputes/<str:dispute_id>/decide",
        views.dispute_decide,
        name="billing-dispute-decide",
    ),
    path(
        "billing/disputes/<str:dispute_id>/evidence.zip",
        views.dispute_evidence,
        name="billing-dispute-evidence",
    ),
    path("billing/agreements/", views.agreement_list, name="billing-agreements"),
    path(
        "billing/agreements/<str:agreement_id>/",
        views.agreement_detail,
        name="billing-agreement",
    ),
    path(
        "billing/agreements/<str:agreement_id>/pdf",
        views.agreement_pdf,
        name="billing-agreement-pdf",
    ),
    path("billing/invoices/", views.invoice_list, name="billing-invoices"),
    path("billing/invoices/export", views.invoice_export, name="billing-invoice-export"),
    path("billing/invoices/new", views.invoice_create, name="billing-invoice-create"),
    path("billing/invoices/<str:invoice_id>/", views.invoice_detail, name="billing-invoice"),
    path(
        "billing/invoices/<str:invoice_id>/finalize",
        views.invoice_finalize,
        name="billing-invoice-finalize",
    ),
    path(
        "billing/invoices/<str:invoice_id>/credit",
        views.invoice_credit,
        name="billing-invoice-credit",
    ),
    path("billing/invoices/<str:invoice_id>/csv", views.invoice_csv, name="billing-invoice-csv"),
    path("billing/invoices/<str:invoice_id>/pdf", views.invoice_pdf, name="billing-invoice-pdf"),
]
