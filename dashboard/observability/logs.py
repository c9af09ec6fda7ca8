"""Structured logs: one JSON object per line, with the request, tenant, user, run and task.

The context lives in contextvars, set by RequestContextMiddleware for a web request and by
Celery's task signals in a worker; the request id and tenant travel from the web to the worker in
the task's headers, so one id follows a click to the vendor call it caused. Values under a
secret-looking name are replaced by "[redacted]", and so are bearer tokens and API key headers in
messages: the code never logs a secret on purpose, and this catches one that slips in.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import logging.config
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("request_id", "tenant", "user", "run_id", "task_id", "task")
_context: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"triggerdesk_log_{name}", default=None) for name in CONTEXT_FIELDS
}

SECRET_NAME = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|brand[_-]?key|authorization|cookie|credential|"
    r"session|csrf",
    re.IGNORECASE,
)
SECRET_IN_TEXT = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:x-api-key|x-brand-key|api[_-]?key|token|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]+"
    ),
]
REDACTED = "[redacted]"
REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# The attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    *CONTEXT_FIELDS,
}


def bind(**values: Any) -> dict[str, contextvars.Token]:
    """Set context fields for what follows in this thread or task; returns tokens for unbind."""
    return {name: _context[name].set(value) for name, value in values.items()}


def unbind(tokens: dict[str, contextvars.Token]) -> None:
    for name, token in tokens.items():
        _context[name].reset(token)


def current() -> dict[str, Any]:
    """The context fields set now (None ones left out)."""
    return {name: var.get() for name, var in _context.items() if var.get() is not None}


def redact_text(text: str) -> str:
    for pattern in SECRET_IN_TEXT:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def redact(value: Any, name: str = "") -> Any:
    """A copy of `value` with every secret-named entry and secret-looking text replaced."""
    if name and SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, dict):
        return {key: redact(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class ContextFilter(logging.Filter):
    """Puts the current context on every record (for the plain format too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, _context[name].get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = _context[name].get()
            if value is not None:
                entry[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = redact(value, name)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The human format, with the context appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        text = redact_text(super().format(record))
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        return f"{text} [{context}]" if context else text


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING for this format ('json' or 'plain') and root level."""
    formatter = (
        {"()": "dashboard.observability.logs.JsonFormatter"}
        if log_format == "json"
        else {
            "()": "dashboard.observability.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "dashboard.observability.logs.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            # gunicorn's own loggers go through the same handler (`--access-logfile` stays off:
            # RequestContextMiddleware logs each request with its id).
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
        },
    }


def gunicorn_logging_config(django_logging: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: Django's LOGGING, so the arbiter's and workers' own lines
    (start-up, worker boots and exits, errors) have the app's format and level.

    gunicorn turns its access log on whenever `logconfig_dict` is set; its lines stay below the
    level here, since RequestContextMiddleware logs each request with its id (a line it would
    log at WARNING or above would still come out in the app's format).
    """
    config = copy.deepcopy(django_logging)
    config["loggers"]["gunicorn.access"] = {
        "level": "WARNING",
        "handlers": ["console"],
        "propagate": False,
    }
    return config


def connect_celery_logging() -> None:
    """Make Celery's processes log through Django's LOGGING instead of their own set-up.

    Answering Celery's `setup_logging` signal keeps Celery from installing its handlers and
    from setting the root level to the worker's `--loglevel` (WARNING unless given): LOG_LEVEL
    decides, so a worker logs its runs (with run_id and request_id) at INFO. Python warnings go
    through logging too. Under LOG_FORMAT=json the worker's start-up banner (plain text on
    stdout) is replaced by one log line with the same facts.
    """
    import celery
    from celery import signals

    @signals.setup_logging.connect(weak=False)
    @signals.celeryd_init.connect(weak=False)  # earlier: before the worker's privilege warning
    def configure_from_django(**_: Any) -> None:
        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)
        logging.captureWarnings(True)

    @signals.celeryd_after_setup.connect(weak=False)
    def log_start_up(sender: str = "", instance: Any = None, **_: Any) -> None:
        from django.conf import settings

        if instance is None or getattr(settings, "LOG_FORMAT", "plain") != "json":
            return
        instance.quiet = True  # the banner is printed right after this signal, unless quiet
        pool = instance.pool_cls
        logging.getLogger("triggerdesk.worker").info(
            "worker %s starting",
            sender,
            extra={
                "hostname": sender,
                "queues": sorted(instance.app.amqp.queues.consume_from or {}),
                "pool": pool if isinstance(pool, str) else pool.__module__,
                "concurrency": instance.concurrency,
                "celery_version": celery.__version__,
            },
        )


request_logger = logging.getLogger("triggerdesk.request")


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID from the proxy if well-formed, else a new one),
    binds it with the user and the tenant for the request's log lines, answers it in the
    X-Request-ID header and logs one line per request (method, path without query and with a
    link's one-time token redacted, status, duration)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        incoming = request.META.get(REQUEST_ID_HEADER, "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # tenant, run_id and user are reset too: process_view (or tenant_view) sets them, and
        # the reset at the end must not leave them to the next request this thread serves.
        tokens = bind(request_id=request_id, user=None, tenant=None, run_id=None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if _context["user"].get() is None:
                # No view named the user (a middleware answered first, or no URL matched).
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    bind(user=user.get_username())
            if not request.path.startswith(("/healthz", "/readyz", "/static/")):
                path = getattr(request, "log_path", request.path)
                request_logger.info(
                    "%s %s %s",
                    request.method,
                    path,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "path": path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
        finally:
            unbind(tokens)
        return response

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        # A tenant view names its user itself, once it has loaded it with the membership (one
        # query for both, see dashboard.tenancy.scoping); loading it here would cost a query of its own.
        if not getattr(view_func, "binds_log_user", False):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                bind(user=user.get_username())
        # The one-time token of an invitation or a password-reset link stays out of the logs.
        token = view_kwargs.get("token")
        if isinstance(token, str) and token:
            request.log_path = request.path.replace(token, REDACTED)
        if "tenant_slug" in view_kwargs:
            bind(tenant=view_kwargs["tenant_slug"])
        if "run_id" in view_kwargs:
            bind(run_id=view_kwargs["run_id"])


RUN_TASKS = {"runs.send", "runs.reconcile", "runs.poll"}
_task_tokens: dict[str, dict[str, contextvars.Token]] = {}


def connect_task_signals() -> None:
    """Carry request id and tenant into a task's headers; bind them, the task and the run in the
    worker while the task runs."""
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def add_context_headers(headers: dict | None = None, **kwargs: Any) -> None:
        if headers is None:
            return
        for name in ("request_id", "tenant", "user"):
            value = _context[name].get()
            if value is not None:
                headers.setdefault(f"triggerdesk_{name}", value)

    @signals.task_prerun.connect(weak=False)
    def bind_task_context(
        task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
    ) -> None:
        request = getattr(task, "request", None)

        def header(name: str) -> Any:
            value = getattr(request, f"triggerdesk_{name}", None)
            if value is None:
                value = (getattr(request, "headers", None) or {}).get(f"triggerdesk_{name}")
            return value

        run_id = (kwargs or {}).get("run_id")
        if run_id is None and getattr(task, "name", "") in RUN_TASKS and args:
            run_id = args[0]
        _task_tokens[task_id] = bind(
            task_id=task_id,
            task=getattr(task, "name", None),
            run_id=run_id,
            request_id=header("request_id"),
            tenant=header("tenant"),
            user=header("user"),
        )

    @signals.task_postrun.connect(weak=False)
    def unbind_task_context(task_id: str = "", **_: Any) -> None:
        tokens = _task_tokens.pop(task_id, None)
        if tokens:
            try:
                unbind(tokens)
            except ValueError:  # another context (thread pool): clear instead
                for name in tokens:
                    _context[name].set(None)
