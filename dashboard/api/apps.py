from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The automation API (/api/v1/): tokens, JSON endpoints, idempotency records."""

    name = "dashboard.api"
    label = "api"
    verbose_name = "Automation API"
