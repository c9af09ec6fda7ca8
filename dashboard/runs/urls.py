"""The run pages, under /t/<tenant_slug>/runs/ (included by dashboard.project.urls)."""

from django.urls import path

from dashboard.runs import views

urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("export.csv", views.run_export, name="run_export"),
    path("<int:run_id>/", views.run_detail, name="run_detail"),
    path("<int:run_id>/approve/", views.run_approve, name="run_approve"),
    path("<int:run_id>/reject/", views.run_reject, name="run_reject"),
    path("<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("<int:run_id>/mark-as-sent/", views.run_mark_as_sent, name="run_mark_as_sent"),
    path("<int:run_id>/send-again/", views.run_send_again, name="run_send_again"),
]
