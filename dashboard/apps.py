import logging

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "TriggerDesk"

    def ready(self) -> None:
        # Refuse to start, with a clear message, rather than store vendor keys unencrypted.
        if not settings.CREDENTIALS_KEYS and not settings.DEBUG:
            raise ImproperlyConfigured(
                "CREDENTIALS_KEYS is not set. TriggerDesk encrypts vendor credentials with Fernet "
                "keys from this setting and will not start without one. Generate a key with "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"` and set CREDENTIALS_KEYS (comma-separated, '
                "newest first) or CREDENTIALS_KEYS_FILE."
            )
        if not settings.SECRET_KEY:
            raise ImproperlyConfigured("SECRET_KEY is not set (or set SECRET_KEY_FILE).")
        # In ready(), not at the top: these read settings and models, which the app registry
        # has loaded only now.
        from dashboard.vendors.destinations import allow_list

        try:
            allow_list()  # a typo in it must stop the start, not the first vendor call
        except ValueError as error:
            raise ImproperlyConfigured(str(error)) from None
        from dashboard.accounts import signals  # noqa: F401 - connects the login audit receivers
        from dashboard.login_sessions import signals as session_signals  # noqa: F401 - records
        from dashboard.project.errors import QuietPermissionDenied  # in ready(), as above

        # Here rather than in LOGGING, so it holds whatever LOGGING the deployment configures.
        logging.getLogger("django.request").addFilter(QuietPermissionDenied())
