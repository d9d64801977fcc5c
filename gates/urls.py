from django.urls import path

from gates import views

urlpatterns = [
    path("gates/", views.gate_list, name="gate-list"),
    path(
        "evaluations/<uuid:evaluation_id>/artifacts/<str:name>",
        views.artifact,
        name="artifact",
    ),
]
