"""TriggerDesk settings, read from the environment.

With DATABASE_URL and REDIS_URL unset the app needs no server (SQLite and kombu's filesystem
broker, the zero-setup default of `make demo`); with them set it uses PostgreSQL and Redis.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from dashboard.project import environment

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_str(name: str, default: str = "") -> str:
    """A setting from the environment, or from the file named by `NAME_FILE` (container secrets),
    read by the one reader the production check uses too (environment.read)."""
    if os.environ.get(f"{name}_FILE"):
        value, problem = environment.read(os.environ, name)
        if problem:
            raise ImproperlyConfigured(problem)
        return value
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str) -> list[str]:
    return [item.strip() for item in env_str(name).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Django's DATABASES entry for a postgres:// or sqlite:/// URL."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "triggerdesk",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    if parts.scheme == "sqlite":
        name = unquote(parts.path)
        if name.startswith("/") and parts.netloc == "":
            name = name[1:] if name.startswith("//") else name
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or BASE_DIR / ".demo" / "triggerdesk.sqlite3",
            # Web, worker and beat share one file: wait for the writer instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    raise ValueError(f"DATABASE_URL scheme {parts.scheme!r} is not supported")


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or ("insecure-dev-only-key" if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or ["localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Fernet keys for vendor credentials, newest first; see dashboard/tenancy/crypto.py.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS")

# Where the demo keeps its SQLite file and broker folders; DEMO_DIR moves them (a test's demo
# must not share the repository's .demo/).
DEMO_DIR = Path(os.environ.get("DEMO_DIR") or BASE_DIR / ".demo")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # intcomma and friends: 220,734 rows, not 220734
    "django_htmx",
    "axes",
    # Second factors (dashboard/mfa): TOTP devices with replay protection, recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "dashboard",
    # Before campaigns: its contributions (dashboard/plugins.py) come first, as they always did
    # (the API's daily trigger and batch job paths, the demo's batch jobs).
    "batchjobs",
    "campaigns",
    "dashboard.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a cookie, a query or a form: refuses NUL and lone surrogates with a 400.
    "dashboard.project.middleware.RejectUnstorableInputMiddleware",
    # Requests to /api/ are resolved with the URLconf that adds the API (dashboard/api/urlconf.py).
    "dashboard.project.middleware.AutomationApiUrlconfMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language, or the language cookie); a person's own choice
    # overrides it below, once they are known.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in person's language and time zone (dashboard/preferences/).
    "dashboard.preferences.middleware.PersonalPreferencesMiddleware",
    # Notes a session's last use (at most once a minute) after the view, before the session is
    # saved (dashboard/login_sessions/middleware.py).
    "dashboard.login_sessions.middleware.SessionLastSeenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After sessions, authentication and messages: a person with a second factor proves it
    # after the password (or SSO) step before anything else (dashboard/mfa/middleware.py).
    "dashboard.mfa.middleware.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Django's empty 405 becomes a page with a way back (dashboard/project/errors.py).
    "dashboard.project.errors.MethodNotAllowedPageMiddleware",
    # Last, as django-axes asks: it turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Refuses every password while local passwords are switched off (SSO_LOCAL_PASSWORDS=off),
    # before ModelBackend (and /admin/'s login) can accept one.
    "dashboard.sso.backends.LocalPasswordGate",
    "django.contrib.auth.backends.ModelBackend",
    # Single sign-on (OpenID Connect, mozilla-django-oidc): only the callback's request uses it.
    "dashboard.sso.backends.SingleSignOnBackend",
]

ROOT_URLCONF = "dashboard.project.urls"

# django-ninja is not an installed app, so no process loads it (and pydantic) at start; only the
# API's docs page needs its templates and vendored Swagger UI, found here by path without importing
# it (dashboard/api/endpoints/ninja_api.py).
NINJA_PACKAGE = Path(importlib.util.find_spec("ninja").origin).parent
WSGI_APPLICATION = "dashboard.project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_PACKAGE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # Every template shows times the same way: UTC, and the reader's own time beside.
            "builtins": ["dashboard.templatetags.moments"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.project.context_processors.tenancy",
                "dashboard.project.context_processors.approvals_waiting",
                "dashboard.project.context_processors.sending_paused",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DEMO_DIR / 'triggerdesk.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# English and Russian: a person chooses on their Preferences page; until then, and on the pages
# of people not signed in, the browser's Accept-Language decides. The catalogue lives in
# locale/ (compiled by `make install` and the image; `make messages` updates it).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Our English date formats (dashboard/formats/en/); Russian is Django's own.
FORMAT_MODULE_PATH = ["dashboard.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static", NINJA_PACKAGE / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# Hashed names (css/app.5f13732f59c7.css, from collectstatic's manifest): WhiteNoise then serves
# them as immutable for good, and a new release's files get new names. Without collectstatic
# (and DJANGO_DEBUG off) a page naming a static file fails: the image and `make demo` run it.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
# Second factors (dashboard/mfa): the name an authenticator app shows beside the code.
OTP_TOTP_ISSUER = "TriggerDesk"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True

# Single sign-on with OpenID Connect (dashboard/sso, docs/security.md). On when an issuer and a
# client id are set; the endpoints and keys come from the issuer's discovery document.
SSO_OIDC_ISSUER = env_str("SSO_OIDC_ISSUER").rstrip("/")
SSO_OIDC_CLIENT_ID = env_str("SSO_OIDC_CLIENT_ID")
SSO_OIDC_CLIENT_SECRET = env_str("SSO_OIDC_CLIENT_SECRET")
# offline_access asks for the refresh token the `sso_sync` command uses.
SSO_OIDC_SCOPES = env_str("SSO_OIDC_SCOPES", "openid email profile groups offline_access")
SSO_GROUPS_CLAIM = env_str("SSO_GROUPS_CLAIM", "groups")
SSO_PROVIDER_NAME = env_str("SSO_PROVIDER_NAME", "your company account")
SSO_HTTP_TIMEOUT_SECONDS = env_int("SSO_HTTP_TIMEOUT_SECONDS", 10)
# Off: only single sign-on; password login, password reset and invitations by password refuse.
SSO_LOCAL_PASSWORDS = env_bool("SSO_LOCAL_PASSWORDS", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

# Lock log-ins after repeated failures (django-axes), per user name at one address (5), and per
# user name from anywhere with a higher limit (20); never a whole address, which behind a NAT or
# proxy is everyone. See dashboard/accounts/lockout.py.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
LOGIN_USERNAME_FAILURE_LIMIT = env_int("LOGIN_USERNAME_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_HANDLER = "dashboard.accounts.lockout.LoginLockoutHandler"
AXES_LOCKOUT_CALLABLE = "dashboard.accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
# A login refused because the name is already locked is not counted (axes counts it by default):
# otherwise one address that keeps trying would reach the name-wide limit and lock the name
# everywhere, the owner's correct password from their own desk included.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client's address: REMOTE_ADDR, or behind a reverse proxy the header that proxy sets (e.g.
# X-Forwarded-For, whose last entry is the one the proxy added, or X-Real-IP). Set it only when
# the app can be reached through that proxy alone: anyone else can write the header.
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER", "REMOTE_ADDR")
AXES_CLIENT_IP_CALLABLE = "dashboard.tenancy.scoping.client_ip"
AXES_VERBOSE = False
# The password is never logged, whatever axes would otherwise record.
AXES_SENSITIVE_PARAMETERS = ["password", "api_key", "brand_key", "token", "secret"]

# Email (invitations): SMTP in production, configured from the environment; `make demo` prints
# emails to its web log, reset emails to its worker log (EMAIL_BACKEND=console backend), the
# tests keep them in memory (locmem).
_email_backend = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
MAILERS = {"default": {"BACKEND": _email_backend}}
if _email_backend.endswith(".smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": env_int("EMAIL_TIMEOUT_SECONDS", 10),
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "TriggerDesk <triggerdesk@localhost>")
# An invitation's set-password link works once, for this long.
INVITE_VALID_HOURS = env_int("INVITE_VALID_HOURS", 72)
# A "forgot password" reset link works once, for this long (dashboard/accounts/password_reset.py), and
# at most this many requests an hour are taken per email address and per client address.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_VALID_MINUTES", 60) * 60
PASSWORD_RESET_REQUESTS_PER_EMAIL_PER_HOUR = env_int("PASSWORD_RESET_REQUESTS_PER_EMAIL", 3)
PASSWORD_RESET_REQUESTS_PER_ADDRESS_PER_HOUR = env_int("PASSWORD_RESET_REQUESTS_PER_ADDRESS", 20)

# Celery. Without REDIS_URL the demo uses kombu's filesystem transport: no server at all.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport, repaired so a worker survives a broker restart (dashboard/project/broker.py).
    CELERY_BROKER_TRANSPORT = "dashboard.project.broker:RedisTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task may run or wait (countdowns stay well under it); see docs/engine.md "Workers".
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
else:
    broker_dir = DEMO_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    # kombu's filesystem transport with atomic message files (dashboard/project/broker.py).
    CELERY_BROKER_TRANSPORT = "dashboard.project.broker:FilesystemTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(broker_dir / "out"),
        "data_folder_out": str(broker_dir / "out"),
        "processed_folder": str(broker_dir / "processed"),
        # Without it kombu writes its control exchange files into the working directory.
        "control_folder": str(broker_dir / "control"),
        "store_processed": False,
    }
# Sessions: in the database, read through Redis where there is one (dashboard/accounts/sessions.py); the
# demo without Redis keeps Django's database sessions. The default cache stays per process.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES["sessions"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "triggerdesk",
        # A Redis that does not answer costs a request a second at most: sessions fall back to
        # the database.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    SESSION_ENGINE = "dashboard.accounts.sessions"
    SESSION_CACHE_ALIAS = "sessions"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Acknowledge after the task ran, and hand a task back when its worker dies mid-run: the run's
# state machine (not Celery) makes a second delivery harmless. See docs/engine.md "Workers".
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "send"
# Keep each worker thread's PostgreSQL connection from task to task. Without this, Celery's Django
# fixup closes it before and after every task, so every task paid for a new backend (~20 ms of
# database CPU per run, a third of a run's cost). The fixup reads the name with its prefix
# (app.conf["CELERY_DB_REUSE_MAX"]) and still closes the connection every 2*N tasks;
# dashboard.runs.tasks drops a connection that broke or outlived CONN_MAX_AGE after the task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULE: dict = {}

# LOGGING: see the deployment block at the end (JSON or plain, with request/run context).

# Vendor sandboxes (make demo, tests): where the demo tenant's connections point.
SANDBOX_BASE_URL = os.environ.get("SANDBOX_BASE_URL", "http://127.0.0.1:8100")
# The address links in mails start with (dashboard/runs/notifications.py: no request to derive it
# from in a worker). Mails themselves go through MAILERS (EMAIL_BACKEND, below).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Hosts a vendor connection may call although they are not public, or over plain http: only the
# sandboxes (`make demo` sets 127.0.0.1:<SANDBOX_PORT>). Empty in production. See
# dashboard/vendors/destinations.py.
VENDOR_HOST_ALLOWLIST = env_list("VENDOR_HOST_ALLOWLIST")

# A single run's send (a person's click) goes to the "interactive" queue instead, named by
# dashboard.runs.enqueue at the call: runs.send of a batched operation runs a dispatcher, of a
# single-run one just that run, and only the message knows which. Workers: docs/engine.md.
CELERY_TASK_ROUTES = {
    "runs.send": {"queue": "send"},
    "runs.reconcile": {"queue": "send"},
    "runs.poll": {"queue": "poll"},
    "runs.dispatch_polls": {"queue": "poll"},
    "runs.sweep": {"queue": "poll"},
    "campaigns.fire_due_schedules": {"queue": "send"},
    "recurring.fire_due": {"queue": "send"},
    "audit.verify": {"queue": "poll"},
    "altcraft.expire_uploads": {"queue": "poll"},
    # Housekeeping, never in a send's way (dashboard/accounts/password_reset.py).
    "auth.password_reset_email": {"queue": "poll"},
    # Approval news for a tenant's chat (dashboard/chat_webhooks): a courtesy, never urgent.
    "chat_webhooks.post": {"queue": "poll"},
    # Reading an upload takes seconds to a minute: never in front of a send.
    "altcraft.prepare_launch": {"queue": "poll"},
}
CELERY_BEAT_SCHEDULE = {
    # Every 10 s: a dead worker's run (heartbeat gone) or lost re-check waits at most this long.
    "sweep-runs": {"task": "runs.sweep", "schedule": env_int("SWEEP_INTERVAL_SECONDS", 10)},
    # Scheduled campaigns fire within seconds of their time; the claim in the database (not
    # beat) makes each fire once, whatever restarts.
    "fire-campaign-schedules": {
        "task": "campaigns.fire_due_schedules",
        "schedule": env_int("CAMPAIGN_SCHEDULE_INTERVAL_SECONDS", 5),
    },
    # Recurring schedules likewise: the fire row, unique per schedule and time, makes each
    # fire once across beat restarts and two beats (dashboard/recurring/services.py).
    "fire-recurring-schedules": {
        "task": "recurring.fire_due",
        "schedule": env_int("RECURRING_SCHEDULE_INTERVAL_SECONDS", 5),
    },
    # Nightly: verify the audit trail appended since the last checkpoint, and re-check cheaply
    # that the rows verified before are all still there (see dashboard.audit.trail.audit_verify).
    "verify-audit": {
        "task": "audit.verify",
        "schedule": crontab(hour=env_int("AUDIT_VERIFY_HOUR_UTC", 2), minute=15),
    },
    # Weekly, an hour after Sunday's nightly run (03:30 UTC by default): re-read every row, the
    # only check that finds a row verified before and then edited in place with its hash kept.
    "verify-audit-full": {
        "task": "audit.verify",
        "schedule": crontab(
            day_of_week="sun", hour=(env_int("AUDIT_VERIFY_HOUR_UTC", 2) + 1) % 24, minute=30
        ),
        "kwargs": {"full": True},
    },
    "altcraft-expire-uploads": {"task": "altcraft.expire_uploads", "schedule": 600},
}
# Altcraft launches: uploaded lists, encrypted at rest (campaigns/altcraft_launches/storage.py);
# the web process and the workers must share this directory.
ALTCRAFT_UPLOAD_DIR = Path(os.environ.get("ALTCRAFT_UPLOAD_DIR", BASE_DIR / ".uploads"))
ALTCRAFT_UPLOAD_MAX_BYTES = env_int("ALTCRAFT_UPLOAD_MAX_BYTES", 256 * 1024 * 1024)
RUN_MAX_SEND_ATTEMPTS = env_int("RUN_MAX_SEND_ATTEMPTS", 5)

# --- Deployment: production checks, security headers, logs, metrics (docs/operations.md "Production
# settings"). With DJANGO_ENV=production the app refuses to start while a required setting is
# missing or malformed, and the secure defaults below switch on.
from django.utils.csp import CSP  # noqa: E402

from dashboard.observability.logs import logging_config  # noqa: E402
from dashboard.project.environment import refuse_to_start_unless_complete  # noqa: E402

refuse_to_start_unless_complete()
PRODUCTION = os.environ.get("DJANGO_ENV", "").strip().lower() == "production"

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Probes and the scraper talk plain HTTP to the container, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
# Behind a TLS-terminating proxy: the header it sets, e.g. HTTP_X_FORWARDED_PROTO. Only set it
# when the proxy always overwrites that header, or a client could claim https.
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"].strip().upper(), "https")

# Content-Security-Policy (Django's built-in middleware): scripts and styles from this origin
# only, no inline script, handler or style. htmx's indicator style is off (htmx-config meta in
# base.html) and lives in app.css; htmx's eval features are off too.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
)
# After authentication, so the request's log lines name the user.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "dashboard.observability.logs.RequestContextMiddleware",
)


# Logs: one JSON object per line in production (LOG_FORMAT=json), with request id, tenant, user
# and run id; Celery keeps this configuration instead of installing its own handlers.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "plain").strip().lower()
LOGGING = logging_config(
    log_format=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO").strip().upper()
)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it is off (404).
METRICS_TOKEN = env_str("METRICS_TOKEN")

# The automation API (dashboard/api): requests per minute per token (a token bucket in Redis,
# with a burst), and the longest a `?wait=` long poll holds a request.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600)
API_RATE_LIMIT_BURST = env_int("API_RATE_LIMIT_BURST", 120)
API_WAIT_MAX_SECONDS = env_int("API_WAIT_MAX_SECONDS", 30)
# The per-tenant webhook when a run ends (dashboard/api/webhooks.py).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
CELERY_TASK_ROUTES["api.webhooks_dispatch"] = {"queue": "poll"}
CELERY_TASK_ROUTES["api.webhook_deliver"] = {"queue": "poll"}
CELERY_BEAT_SCHEDULE["dispatch-webhooks"] = {
    "task": "api.webhooks_dispatch",
    "schedule": env_int("WEBHOOK_DISPATCH_SECONDS", 10),
}
# How long the API remembers an Idempotency-Key's request (24 h, as Stripe documents); beat
# deletes older records every hour (dashboard.api.services.idempotency_records_expire). The run
# a key made keeps the key for good, so a retry after that still makes no second run.
API_IDEMPOTENCY_RETENTION_HOURS = env_int("API_IDEMPOTENCY_RETENTION_HOURS", 24)
CELERY_TASK_ROUTES["api.idempotency_records_expire"] = {"queue": "poll"}
CELERY_BEAT_SCHEDULE["expire-api-idempotency-records"] = {
    "task": "api.idempotency_records_expire",
    "schedule": 3600,
}

# Passkeys (dashboard/mfa/passkeys.py): the relying party id (the site's domain) and the origins
# a browser may sign from. Unset, both come from the request's host (fine behind a proxy that
# sets Host and X-Forwarded-Proto); set them where the app has several host names.
MFA_PASSKEY_RP_ID = env_str("MFA_PASSKEY_RP_ID")
MFA_PASSKEY_ORIGINS = [
    origin.strip() for origin in env_str("MFA_PASSKEY_ORIGINS").split(",") if origin.strip()
]
