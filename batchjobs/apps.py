from django.apps import AppConfig


class BatchjobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Batch jobs"
