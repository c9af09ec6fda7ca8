"""The batchjobs pages, under /t/<tenant_slug>/batch/ (included by dashboard.project.urls)."""

from django.urls import path

from batchjobs import views

urlpatterns = [
    path("daily/", views.daily_trigger, name="daily_trigger"),
    path("daily/request/", views.daily_trigger_request, name="daily_trigger_request"),
    path("daily/files-landed/", views.daily_files_landed, name="daily_files_landed"),
    path("daily/<int:run_id>/approve/", views.daily_trigger_approve, name="daily_trigger_approve"),
    path("daily/<int:run_id>/reject/", views.daily_trigger_reject, name="daily_trigger_reject"),
    path(
        "daily/<int:run_id>/withdraw/",
        views.daily_trigger_withdraw,
        name="daily_trigger_withdraw",
    ),
    path("daily/<int:run_id>/change/", views.daily_trigger_change, name="daily_trigger_change"),
    path("jobs/", views.batch_job_list, name="batch_job_list"),
    path("jobs/register/", views.batch_job_register, name="batch_job_register"),
    path("jobs/<int:batch_job_pk>/row/", views.batch_job_row, name="batch_job_row"),
    path("jobs/<int:batch_job_pk>/start/", views.batch_job_start, name="batch_job_start"),
    path("jobs/<int:batch_job_pk>/remove/", views.batch_job_remove, name="batch_job_remove"),
]
