"""Settings for the test suite: PostgreSQL and Redis as in production, fast hashing."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/triggerdesk")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

# Under pytest-xdist each worker gets its own Redis database (the given one, then the ones
# below it): the tests empty theirs. The marker keeps a worker's child processes (live Celery
# workers of the end-to-end tests inherit the environment) on their parent's database.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw") and not os.environ.get("TRIGGERDESK_TEST_REDIS_ASSIGNED"):
    _base, _, _database = os.environ["REDIS_URL"].rpartition("/")
    _number = int(_database or 0) - int(_xdist_worker[2:])
    if _number < 0:
        raise ValueError(f"REDIS_URL's database is too low for xdist worker {_xdist_worker}")
    os.environ["REDIS_URL"] = f"{_base}/{_number}"
    os.environ["TRIGGERDESK_TEST_REDIS_ASSIGNED"] = "1"

from dashboard.project.settings import *  # noqa: E402 (after the Redis choice above)
from dashboard.project.settings import database_from_url  # noqa: E402

DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REDIS_URL = os.environ["REDIS_URL"]
CELERY_BROKER_URL = REDIS_URL
# The end-to-end tests shorten it to see a killed worker's unacknowledged task delivered again.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
}

SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
# Two fixed test keys: the first encrypts, both decrypt.
CREDENTIALS_KEYS = [
    "uA3G1I6d6JmFWdvq2u8n9Oj6lQmYqGm0JcXJc6tq9yE=",
    "bG9jYWwtdGVzdC1rZXktbm90LWZvci1wcm9kdWN0aW8=",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
# A worker process of the end-to-end tests writes its mails into this directory instead: the
# test reads them there (locmem lives in one process).
if os.environ.get("TEST_EMAIL_FILE_PATH"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": os.environ["TEST_EMAIL_FILE_PATH"]},
        }
    }
AXES_FAILURE_LIMIT = 3
LOGIN_USERNAME_FAILURE_LIMIT = 6
# The sandboxes listen on loopback over http; every other test host must pass the public rule.
VENDOR_HOST_ALLOWLIST = ["127.0.0.1", "localhost", "::1"]
# The scale-out test's network namespaces reach the sandbox over a bridge address.
VENDOR_HOST_ALLOWLIST += [h for h in os.environ.get("VENDOR_HOST_ALLOWLIST", "").split(",") if h]

# Serve static files from the app folders; tests do not run collectstatic.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
