"""Altcraft pages, under /t/<tenant_slug>/campaigns/altcraft/."""

from django.urls import path

from campaigns.altcraft_launches import views

urlpatterns = [
    path("", views.altcraft_home, name="altcraft_home"),
    path("triggers/register/", views.trigger_register, name="altcraft_trigger_register"),
    path("settings/", views.altcraft_settings, name="altcraft_settings"),
    path("launches/new/", views.launch_new, name="altcraft_launch_new"),
    path("launches/<int:launch_pk>/", views.launch_detail, name="altcraft_launch_detail"),
    path("launches/<int:launch_pk>/mapping/", views.launch_mapping, name="altcraft_launch_mapping"),
    path("launches/<int:launch_pk>/column/", views.launch_column, name="altcraft_launch_column"),
    path("launches/<int:launch_pk>/confirm/", views.launch_confirm, name="altcraft_launch_confirm"),
    path("launches/<int:launch_pk>/approve/", views.launch_approve, name="altcraft_launch_approve"),
    path("launches/<int:launch_pk>/reject/", views.launch_reject, name="altcraft_launch_reject"),
    path("launches/<int:launch_pk>/discard/", views.launch_discard, name="altcraft_launch_discard"),
    path("launches/<int:launch_pk>/retry/", views.launch_retry, name="altcraft_launch_retry"),
]
