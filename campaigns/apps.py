from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    # Imported by the run engine on its first lookup (dashboard/runs/operations.py).
    operation_modules = ("campaigns.operations",)
