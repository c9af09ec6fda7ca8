"""The campaigns pages, under /t/<tenant_slug>/campaigns/ (included by dashboard.project.urls)."""

from django.urls import include, path

from campaigns.event_generators import views as event_generators

urlpatterns = [
    path("altcraft/", include("campaigns.altcraft_launches.urls")),
    path("", event_generators.campaign_home, name="campaign_home"),
    path("settings/", event_generators.campaign_settings, name="campaign_settings"),
    path("generators/new/", event_generators.generator_create, name="event_generator_create"),
    path("generators/preview/", event_generators.schema_preview, name="schema_preview"),
    path(
        "generators/<int:generator_id>/",
        event_generators.generator_detail,
        name="event_generator_detail",
    ),
    path(
        "generators/<int:generator_id>/send-window/",
        event_generators.generator_send_window,
        name="event_generator_send_window",
    ),
    path(
        "generators/<int:generator_id>/edit/",
        event_generators.generator_edit,
        name="event_generator_edit",
    ),
    path(
        "generators/<int:generator_id>/export/",
        event_generators.generator_export,
        name="event_generator_export",
    ),
    path(
        "generators/<int:generator_id>/trigger/",
        event_generators.trigger,
        name="event_generator_trigger",
    ),
    path(
        "generators/<int:generator_id>/trigger/preview/",
        event_generators.trigger_preview,
        name="event_generator_trigger_preview",
    ),
    path("runs/<int:run_id>/", event_generators.campaign_run_detail, name="campaign_run_detail"),
    path(
        "triggers/<int:group_id>/",
        event_generators.trigger_group_detail,
        name="trigger_group_detail",
    ),
    path(
        "triggers/<int:group_id>/retry/",
        event_generators.trigger_group_retry,
        name="trigger_group_retry",
    ),
    path("schedules/", event_generators.schedule_list, name="campaign_schedule_list"),
    path(
        "schedules/<int:schedule_id>/edit/",
        event_generators.schedule_edit,
        name="campaign_schedule_edit",
    ),
    path(
        "schedules/<int:schedule_id>/cancel/",
        event_generators.schedule_cancel,
        name="campaign_schedule_cancel",
    ),
]
