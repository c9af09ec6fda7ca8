from django.apps import AppConfig


class BatchjobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Batch jobs"

    def ready(self) -> None:
        from batchjobs import operations  # noqa: F401 - registers the run operations
