from django.urls import path

from owners import views

urlpatterns = [
    path("board/", views.board, name="board"),
    path("tickets/", views.ticket_list, name="ticket-list"),
    path("tickets/<str:ticket_id>/", views.ticket_detail, name="ticket-detail"),
    path(
        "tickets/<str:ticket_id>/acknowledge", views.ticket_acknowledge, name="ticket-acknowledge"
    ),
    path("tickets/<str:ticket_id>/reassign", views.ticket_reassign, name="ticket-reassign"),
    path("tickets/<str:ticket_id>/resolve", views.ticket_resolve, name="ticket-resolve"),
    path("tickets/<str:ticket_id>/cancel", views.ticket_cancel, name="ticket-cancel"),
    path("me/", views.my_queue, name="my-queue"),
    path("rotas/", views.rota_overview, name="rotas"),
]
