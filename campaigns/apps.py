from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from campaigns import operations  # noqa: F401 - registers the run operations
        from campaigns.altcraft_launches import tasks  # noqa: F401 - registers the tasks
