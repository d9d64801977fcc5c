from django.urls import path

from deliveries import views

urlpatterns = [
    path("", views.deliverable_list, name="deliverable-list"),
    path("deliverables/<str:deliverable_id>/", views.deliverable_detail, name="deliverable-detail"),
    path("clients/", views.client_list, name="client-list"),
]
