from django.urls import path

from flows import views

urlpatterns = [
    path("flows/", views.flow_list, name="flow-list"),
    path("flows/install", views.flow_install, name="flow-install"),
    path("flows/<slug:flow_slug>/", views.flow_detail, name="flow-detail"),
    path("flows/<slug:flow_slug>/propose", views.flow_propose, name="flow-propose"),
    path("incidents/", views.incident_list, name="incident-list"),
    path("incidents/declare", views.incident_declare, name="incident-declare"),
    path("incidents/<str:incident_id>/end", views.incident_end, name="incident-end"),
    path("reviews/<int:review_id>/done", views.review_complete, name="review-complete"),
    path("assurance/<str:check_id>/confirm", views.assurance_confirm, name="assurance-confirm"),
    path("changes/", views.change_list, name="change-list"),
    path("changes/approval-policy", views.approval_policy, name="approval-policy"),
    path("changes/<str:change_id>/", views.change_detail, name="change-detail"),
    path("changes/<str:change_id>/approve", views.change_approve, name="change-approve"),
    path("changes/<str:change_id>/reject", views.change_reject, name="change-reject"),
    path("changes/<str:change_id>/rollback", views.change_rollback, name="change-rollback"),
]
