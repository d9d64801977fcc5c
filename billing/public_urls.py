"""Unauthenticated on purpose: the public halves of agreement signing keys."""

from django.urls import path

from billing import views

urlpatterns = [path("<slug:key_id>.pem", views.public_key, name="signing-key-pem")]
