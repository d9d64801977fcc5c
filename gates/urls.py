from django.urls import path

from gates import views

urlpatterns = [
    path("gates/", views.gate_list, name="gate-list"),
    path("artifacts/<int:artifact_id>/", views.artifact, name="artifact"),
]
