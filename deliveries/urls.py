from django.urls import path

from deliveries import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("deliverables/", views.deliverable_list, name="deliverable-list"),
    path("deliverables/<str:deliverable_id>/", views.deliverable_detail, name="deliverable-detail"),
    path("events/", views.event_list, name="event-list"),
    path("clients/", views.client_list, name="client-list"),
    path("clients/<str:client_id>/", views.client_detail, name="client-detail"),
]
