from django.apps import AppConfig


class BatchjobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Batch jobs"

    # Imported by the run engine on its first lookup (dashboard/runs/operations.py).
    operation_modules = ("batchjobs.operations",)
