"""A faithful fake of TalkifAI batch calling: start a batch job immediately, read its detail.

Follows shared/vendor-docs/talkifai-start-batch-job.txt: the start answer's exact fields
(`success, message, batchJobId, status, contactsEnqueued, redisJobCancelled, startedAt`), the
behaviour by status (scheduled: cancels the Redis defer job, runs, enqueues every contact;
pending: runs and enqueues; running: 400 `already_running` "Job already running";
completed/failed/cancelled: 400 `invalid_status` "Cannot start <status> job"; unknown id: 404
`job_not_found`; 500 through fault injection).

Defaults (the demo uses them):

- API keys: `sandbox-talkifai-key` (organisation `org_sandbox`, may start jobs) and
  `sandbox-talkifai-readonly-key` (same organisation, may read but not start: 403 `forbidden`).
- Jobs of `org_sandbox`, one per status: `job-scheduled-001` (120 contacts, scheduled one day
  after the sandbox starts), `job-pending-001` (80), `job-running-001` (50, started a minute
  before the sandbox started), `job-completed-001` (200), `job-failed-001` (40),
  `job-cancelled-001` (30).
- A running job completes `run_duration_seconds` (default 600) of sandbox time after it started.
- No rate limit unless `rate_limit_per_minute` is given (the benchmark drives ~500 requests/s).
- Routes and auth, stated here and nowhere else (the sandbox never reads the client's layout,
  so a client that builds another path or header is refused, not silently served):
  `POST /batch/jobs/{batch_job_id}/start`, `GET /batch/jobs/{batch_job_id}`, and the key as
  `Authorization: Bearer <key>` (TalkifAI's public API reference; the doc only says "Your
  TalkifAI API key"). Another deployment's shape can be served by passing the literal
  `start_path`, `detail_path`, `auth_header` and `auth_prefix` to the constructor.

Control actions (`control(action, payload)` or `POST {prefix}/__sandbox__/control/<action>`):

- `add_job` {id?, name?, status="pending", contacts=25, organization_id?, scheduled_at? (ISO) or
  scheduled_in_seconds?, started_seconds_ago?}: a new job (id `job-NNN` when not given);
- `set_job_status` {id, status, scheduled_at?}: put a job in a status, with fitting timestamps;
- `add_key` {key, organization_id="org_sandbox", can_start=true};
- `set_rate_limit` {per_minute: int or null}; `set_run_duration` {seconds}.

`state()` shows every job (status, timestamps, `api_starts`, `scheduled_starts`,
`contacts_enqueued`, `redis_jobs_cancelled`), the totals of those, `starts` per job id, the keys
(last four characters only), the limits and the routes and auth the sandbox serves.

Where the doc is silent, this sandbox chooses:

- Error body: `{"success": false, "error": {"code": "<code>", "message": "<message>"}}`.
  Messages: "Batch job not found", "Job already running", "Cannot start <status> job".
- Success messages: "Cancelled scheduled job, starting immediately" (scheduled, as in TalkifAI's
  public example) and "Starting pending job immediately" (pending).
- `startedAt` and every timestamp: ISO 8601 UTC with a `Z` and whole seconds.
- Auth, checked after routing (an unknown path is a 404 `{"detail": "Not Found"}`, a known path
  with the wrong method a 405, as a FastAPI service answers) and before the job lookup: a
  missing header, another scheme or an unknown key is 401 `unauthorized`; a key without start
  rights is 403 `forbidden` on start. The Bearer scheme name is matched case-insensitively.
- Each key belongs to one organisation; another organisation's job is a 404 `job_not_found`
  (its existence is not revealed).
- Rate limit (when enabled): a fixed 60-second window per API key on the sandbox clock, counting
  start and detail calls; over the limit is 429 `rate_limited` with `Retry-After` (whole seconds
  until the window ends).
- A scheduled job starts by itself at its scheduled time (its Redis defer job fires); a start
  call after that is `already_running`. Pending jobs wait for a start call.
- The request body of a start call is ignored; the job id in the path is percent-decoded.
- Detail answers with the fields of TalkifAI's public "Get Batch Job Detail" reference; contacts
  are synthetic (`+1202555NNNN`), paged by `contactsPage` / `contactsPageSize` (1-500, default
  50, out-of-range values are clamped). Progress is linear over the run duration; every
  processed contact counts as a successful call.
- Fault injection applies per route name (`start_batch_job`, `batch_job_detail`); both routes
  match any path of their method, and the handler then matches the sandbox's own paths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from dashboard.vendors.sandbox import (
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    route,
)

DEFAULT_API_KEY = "sandbox-talkifai-key"
DEFAULT_READONLY_API_KEY = "sandbox-talkifai-readonly-key"
DEFAULT_ORGANIZATION_ID = "org_sandbox"
DEFAULT_RUN_DURATION_SECONDS = 600.0
RATE_LIMIT_WINDOW_SECONDS = 60.0
DEFAULT_CONTACTS_PAGE_SIZE = 50
MAX_CONTACTS_PAGE_SIZE = 500

# The vendor's routes and auth scheme, written out here on purpose: they are the sandbox's own
# statement of the API, independent of the client's defaults, so the client's contract tests
# check its assumptions against something it did not write.
START_PATH = "/batch/jobs/{batch_job_id}/start"
DETAIL_PATH = "/batch/jobs/{batch_job_id}"
AUTH_HEADER = "Authorization"
AUTH_PREFIX = "Bearer "
JOB_ID_PLACEHOLDER = "{batch_job_id}"


class BatchJobStatus(StrEnum):
    """The doc's "Behavior by Status" table."""

    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = frozenset(status.value for status in BatchJobStatus)
FINISHED_STATUSES = frozenset(
    {BatchJobStatus.COMPLETED, BatchJobStatus.FAILED, BatchJobStatus.CANCELLED}
)

DEFAULT_API_KEYS: dict[str, dict[str, Any]] = {
    DEFAULT_API_KEY: {"organization_id": DEFAULT_ORGANIZATION_ID, "can_start": True},
    DEFAULT_READONLY_API_KEY: {"organization_id": DEFAULT_ORGANIZATION_ID, "can_start": False},
}

# Times are relative to the sandbox clock when the jobs are (re)built.
DEFAULT_JOBS: tuple[dict[str, Any], ...] = (
    {
        "id": "job-scheduled-001",
        "name": "Spring renewals (scheduled)",
        "status": "scheduled",
        "contacts": 120,
        "scheduled_in_seconds": 86_400,
    },
    {
        "id": "job-pending-001",
        "name": "Win-back calls (pending)",
        "status": "pending",
        "contacts": 80,
    },
    {
        "id": "job-running-001",
        "name": "Appointment reminders (running)",
        "status": "running",
        "contacts": 50,
        "started_seconds_ago": 60,
    },
    {
        "id": "job-completed-001",
        "name": "January survey (completed)",
        "status": "completed",
        "contacts": 200,
    },
    {
        "id": "job-failed-001",
        "name": "Payment follow-up (failed)",
        "status": "failed",
        "contacts": 40,
    },
    {
        "id": "job-cancelled-001",
        "name": "Holiday promo (cancelled)",
        "status": "cancelled",
        "contacts": 30,
    },
)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, whole seconds, as TalkifAI writes timestamps."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(value: object) -> datetime:
    """A datetime from an ISO 8601 string or datetime (naive is UTC); ValueError otherwise."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class ApiKey:
    """One API key: the organisation it belongs to, and whether it may start jobs."""

    organization_id: str
    can_start: bool = True


@dataclass
class BatchJob:
    """A batch job as the vendor keeps it, plus counters of what really happened to it."""

    id: str
    organization_id: str
    name: str
    status: str
    contacts: int
    created_at: datetime
    description: str = ""
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    redis_job_id: str | None = None  # the ARQ defer job that will start a scheduled job
    redis_jobs_cancelled: int = 0
    api_starts: int = 0  # successful start calls
    scheduled_starts: int = 0  # starts by the defer job at the scheduled time
    contacts_enqueued: int = 0


class TalkifaiSandbox(Sandbox):
    """TalkifAI's batch-calling API: start a job now, read a job's detail (see module doc)."""

    name = "talkifai"

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        api_keys: Mapping[str, Mapping[str, Any] | str] | None = None,
        jobs: Iterable[Mapping[str, Any]] | None = None,
        start_path: str = START_PATH,
        detail_path: str = DETAIL_PATH,
        auth_header: str = AUTH_HEADER,
        auth_prefix: str = AUTH_PREFIX,
        run_duration_seconds: float = DEFAULT_RUN_DURATION_SECONDS,
        rate_limit_per_minute: int | None = None,
    ) -> None:
        super().__init__(clock)
        self.routes = {
            "start_path": start_path,
            "detail_path": detail_path,
            "auth_header": auth_header,
            "auth_prefix": auth_prefix,
        }
        self._start_pattern = path_pattern(start_path)
        self._detail_pattern = path_pattern(detail_path)
        self._configured_keys = dict(DEFAULT_API_KEYS if api_keys is None else api_keys)
        self._configured_jobs = [dict(job) for job in (DEFAULT_JOBS if jobs is None else jobs)]
        self._configured_run_duration = float(run_duration_seconds)
        self._configured_rate_limit = rate_limit_per_minute
        self.reset_state()

    # -- state --------------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Back to the constructor's keys, jobs, run duration and rate limit."""
        with self.lock:
            self.keys: dict[str, ApiKey] = {}
            self.jobs: dict[str, BatchJob] = {}
            self.run_duration_seconds = self._configured_run_duration
            self.rate_limit_per_minute = self._configured_rate_limit
            self._rate_windows: dict[str, tuple[datetime, int]] = {}
            self._throttled_requests = 0
            for key, spec in self._configured_keys.items():
                self._add_key({"key": key, **_key_spec(spec)})
            for spec in self._configured_jobs:
                self._add_job(spec)

    def state(self) -> dict[str, Any]:
        """Jobs with their statuses and real effects (starts, contacts enqueued), keys, limits."""
        with self.lock:
            now = self.clock.now()
            jobs = {}
            for job in self.jobs.values():
                self._advance(job, now)
                jobs[job.id] = self._job_state(job)
            return {
                "jobs": jobs,
                "starts": {job_id: job["api_starts"] for job_id, job in jobs.items()},
                "total_api_starts": sum(job["api_starts"] for job in jobs.values()),
                "total_scheduled_starts": sum(job["scheduled_starts"] for job in jobs.values()),
                "total_contacts_enqueued": sum(job["contacts_enqueued"] for job in jobs.values()),
                "total_redis_jobs_cancelled": sum(
                    job["redis_jobs_cancelled"] for job in jobs.values()
                ),
                # Keys are shown by their last four characters only: state ends up in test output.
                "keys": [
                    {
                        "key_ending": key[-4:],
                        "organization_id": record.organization_id,
                        "can_start": record.can_start,
                    }
                    for key, record in self.keys.items()
                ],
                "run_duration_seconds": self.run_duration_seconds,
                "rate_limit_per_minute": self.rate_limit_per_minute,
                "throttled_requests": self._throttled_requests,
                "routes": dict(self.routes),
            }

    def _job_state(self, job: BatchJob) -> dict[str, Any]:
        return {
            "organization_id": job.organization_id,
            "name": job.name,
            "status": job.status,
            "contacts": job.contacts,
            "scheduled_at": iso_utc(job.scheduled_at),
            "started_at": iso_utc(job.started_at),
            "completed_at": iso_utc(job.completed_at),
            "redis_job_id": job.redis_job_id,
            "redis_jobs_cancelled": job.redis_jobs_cancelled,
            "api_starts": job.api_starts,
            "scheduled_starts": job.scheduled_starts,
            "contacts_enqueued": job.contacts_enqueued,
        }

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Steering: add_job, set_job_status, add_key, set_rate_limit, set_run_duration."""
        if action == "add_job":
            return self._job_state(self._add_job(payload))
        if action == "set_job_status":
            job = self.jobs[payload["id"]]
            self._place(job, payload["status"], self.clock.now(), payload)
            return self._job_state(job)
        if action == "add_key":
            key = self._add_key(payload)
            return {"key_ending": payload["key"][-4:], "organization_id": key.organization_id}
        if action == "set_rate_limit":
            limit = payload.get("per_minute")
            self.rate_limit_per_minute = None if limit is None else int(limit)
            self._rate_windows.clear()
            return {"rate_limit_per_minute": self.rate_limit_per_minute}
        if action == "set_run_duration":
            self.run_duration_seconds = float(payload["seconds"])
            return {"run_duration_seconds": self.run_duration_seconds}
        raise KeyError(action)

    def _add_key(self, spec: Mapping[str, Any]) -> ApiKey:
        key = spec["key"]
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        record = ApiKey(
            organization_id=str(spec.get("organization_id") or DEFAULT_ORGANIZATION_ID),
            can_start=bool(spec.get("can_start", True)),
        )
        self.keys[key] = record
        return record

    def _add_job(self, spec: Mapping[str, Any]) -> BatchJob:
        now = self.clock.now()
        job_id = str(spec.get("id") or f"job-{len(self.jobs) + 1:03d}")
        if job_id in self.jobs:
            raise ValueError(f"job {job_id!r} already exists")
        contacts = int(spec.get("contacts", 25))
        if contacts < 0:
            raise ValueError("contacts must be zero or more")
        job = BatchJob(
            id=job_id,
            organization_id=str(spec.get("organization_id") or DEFAULT_ORGANIZATION_ID),
            name=str(spec.get("name") or job_id),
            description=str(spec.get("description") or ""),
            status=BatchJobStatus.PENDING.value,
            contacts=contacts,
            created_at=now - timedelta(hours=1),
        )
        self._place(job, str(spec.get("status", BatchJobStatus.PENDING.value)), now, spec)
        self.jobs[job_id] = job
        return job

    def _place(self, job: BatchJob, status: str, now: datetime, spec: Mapping[str, Any]) -> None:
        """Put a job in `status` with plausible timestamps (steering, not a vendor action)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; statuses: {sorted(STATUSES)}")
        duration = timedelta(seconds=self.run_duration_seconds)
        job.status = status
        job.redis_job_id = None
        if status == BatchJobStatus.SCHEDULED:
            if "scheduled_at" in spec:
                job.scheduled_at = parse_moment(spec["scheduled_at"])
            else:
                job.scheduled_at = now + timedelta(
                    seconds=float(spec.get("scheduled_in_seconds", 3600))
                )
            job.redis_job_id = f"arq_job_{job.id}"
            job.started_at = job.completed_at = None
        elif status == BatchJobStatus.PENDING:
            job.started_at = job.completed_at = None
        elif status == BatchJobStatus.RUNNING:
            job.started_at = now - timedelta(seconds=float(spec.get("started_seconds_ago", 0)))
            job.completed_at = None
        elif status == BatchJobStatus.COMPLETED:
            job.started_at, job.completed_at = now - duration, now
        elif status == BatchJobStatus.FAILED:
            # Half-way through, so the detail shows some progress before the failure.
            job.started_at, job.completed_at = now - duration / 2, now
        elif status == BatchJobStatus.CANCELLED:
            job.started_at, job.completed_at = None, now

    def _advance(self, job: BatchJob, now: datetime) -> None:
        """Apply what time did to a job since it was last looked at."""
        if (
            job.status == BatchJobStatus.SCHEDULED
            and job.scheduled_at is not None
            and now >= job.scheduled_at
        ):
            # The Redis defer job fires: the job starts by itself at its scheduled time.
            job.status = BatchJobStatus.RUNNING.value
            job.started_at = job.scheduled_at
            job.redis_job_id = None
            job.scheduled_starts += 1
            job.contacts_enqueued += job.contacts
        if job.status == BatchJobStatus.RUNNING and job.started_at is not None:
            ends_at = job.started_at + timedelta(seconds=self.run_duration_seconds)
            if now >= ends_at:
                job.status = BatchJobStatus.COMPLETED.value
                job.completed_at = ends_at

    # -- the vendor API -----------------------------------------------------------------------

    @route("POST", r"/.*", "start_batch_job")
    def start_batch_job(self, request: SandboxRequest) -> SandboxResponse:
        """POST start path: start a scheduled or pending job now."""
        match = self._start_pattern.match(request.path)
        if match is None:
            return self._unrouted(request, self._detail_pattern)
        job, refusal = self._job_for(request, unquote(match.group("batch_job_id")), starting=True)
        if refusal is not None:
            return refusal
        assert job is not None
        if job.status == BatchJobStatus.RUNNING:
            return error_answer(400, "already_running", "Job already running")
        if job.status in FINISHED_STATUSES:
            return error_answer(400, "invalid_status", f"Cannot start {job.status} job")
        now = self.clock.now()
        redis_job_cancelled = (
            job.status == BatchJobStatus.SCHEDULED and job.redis_job_id is not None
        )
        message = (
            "Cancelled scheduled job, starting immediately"
            if job.status == BatchJobStatus.SCHEDULED
            else "Starting pending job immediately"
        )
        if redis_job_cancelled:
            job.redis_jobs_cancelled += 1
        job.redis_job_id = None
        job.status = BatchJobStatus.RUNNING.value
        job.started_at = now
        job.completed_at = None
        job.api_starts += 1
        job.contacts_enqueued += job.contacts
        return SandboxResponse.json(
            200,
            {
                "success": True,
                "message": message,
                "batchJobId": job.id,
                "status": job.status,
                "contactsEnqueued": job.contacts,
                "redisJobCancelled": redis_job_cancelled,
                "startedAt": iso_utc(now),
            },
            effect={
                "started": job.id,
                "contacts_enqueued": job.contacts,
                "redis_job_cancelled": redis_job_cancelled,
            },
        )

    @route("GET", r"/.*", "batch_job_detail")
    def batch_job_detail(self, request: SandboxRequest) -> SandboxResponse:
        """GET detail path: the job's configuration, status, timing and progress."""
        match = self._detail_pattern.match(request.path)
        if match is None:
            return self._unrouted(request, self._start_pattern)
        job, refusal = self._job_for(request, unquote(match.group("batch_job_id")), starting=False)
        if refusal is not None:
            return refusal
        assert job is not None
        return SandboxResponse.json(200, self._detail(job, request))

    def _unrouted(self, request: SandboxRequest, other_pattern: re.Pattern[str]) -> SandboxResponse:
        if other_pattern.match(request.path):
            return SandboxResponse.json(405, {"detail": "Method Not Allowed"})
        return SandboxResponse.json(404, {"detail": "Not Found"})

    def _job_for(
        self, request: SandboxRequest, job_id: str, *, starting: bool
    ) -> tuple[BatchJob | None, SandboxResponse | None]:
        """The caller's job after auth and rate limiting, or the answer refusing the call."""
        key = self._api_key(request)
        record = self.keys.get(key) if key is not None else None
        if record is None:
            message = "Missing API key" if key is None else "Invalid API key"
            return None, error_answer(401, "unauthorized", message)
        throttled = self._throttle(key)
        if throttled is not None:
            return None, throttled
        if starting and not record.can_start:
            return None, error_answer(
                403, "forbidden", "API key is not allowed to start batch jobs"
            )
        job = self.jobs.get(job_id)
        if job is None or job.organization_id != record.organization_id:
            return None, error_answer(404, "job_not_found", "Batch job not found")
        self._advance(job, self.clock.now())
        return job, None

    def _api_key(self, request: SandboxRequest) -> str | None:
        value = request.header(self.routes["auth_header"])
        prefix = self.routes["auth_prefix"]
        if value is None or value[: len(prefix)].lower() != prefix.lower():
            return None
        key = value[len(prefix) :].strip()
        return key or None

    def _throttle(self, key: str) -> SandboxResponse | None:
        if self.rate_limit_per_minute is None:
            return None
        now = self.clock.now()
        window_start, count = self._rate_windows.get(key, (now, 0))
        window_end = window_start + timedelta(seconds=RATE_LIMIT_WINDOW_SECONDS)
        if now >= window_end:
            window_start, window_end, count = (
                now,
                now + timedelta(seconds=RATE_LIMIT_WINDOW_SECONDS),
                0,
            )
        if count >= self.rate_limit_per_minute:
            self._throttled_requests += 1
            wait = max(1, math.ceil((window_end - now).total_seconds()))
            return error_answer(
                429,
                "rate_limited",
                f"Rate limit exceeded. Try again in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )
        self._rate_windows[key] = (window_start, count + 1)
        return None

    def _detail(self, job: BatchJob, request: SandboxRequest) -> dict[str, Any]:
        now = self.clock.now()
        duration = timedelta(seconds=self.run_duration_seconds)
        processed = self._processed(job, now)
        remaining_status = {
            BatchJobStatus.FAILED: "failed",
            BatchJobStatus.CANCELLED: "cancelled",
        }.get(BatchJobStatus(job.status), "pending")
        breakdown = {"completed": processed}
        if job.contacts - processed:
            breakdown[remaining_status] = job.contacts - processed
        page = _query_int(request, "contactsPage", 1, 1, 1_000_000)
        page_size = _query_int(
            request, "contactsPageSize", DEFAULT_CONTACTS_PAGE_SIZE, 1, MAX_CONTACTS_PAGE_SIZE
        )
        first = (page - 1) * page_size
        contacts = [
            synthetic_contact(index, "completed" if index < processed else remaining_status)
            for index in range(first, min(first + page_size, job.contacts))
        ]
        running = job.status == BatchJobStatus.RUNNING and job.started_at is not None
        return {
            "id": job.id,
            "name": job.name,
            "description": job.description,
            "status": job.status,
            "organizationId": job.organization_id,
            "agentId": "agent_sandbox",
            "fromPhoneNumberId": "phone_sandbox",
            "totalContacts": job.contacts,
            "contactsProcessed": processed,
            "successfulCalls": processed,
            "failedCalls": breakdown.get("failed", 0),
            "statusBreakdown": breakdown,
            "scheduledStartTime": iso_utc(job.scheduled_at),
            "actualStartTime": iso_utc(job.started_at),
            "completedAt": iso_utc(job.completed_at),
            "estimatedCompletionTime": iso_utc(job.started_at + duration)
            if running and job.started_at
            else None,
            "createdAt": iso_utc(job.created_at),
            "concurrentCallLimit": 5,
            "retryPolicy": {
                "maxAttempts": 3,
                "retryableStatuses": ["no_answer", "busy", "timeout"],
            },
            "contacts": contacts,
            "contactsTotal": job.contacts,
            "contactsPage": page,
            "contactsPageSize": page_size,
            "contactsHasMore": first + page_size < job.contacts,
        }

    def _processed(self, job: BatchJob, now: datetime) -> int:
        """Contacts called so far: linear over the run duration, frozen when the job ended."""
        if job.status == BatchJobStatus.COMPLETED:
            return job.contacts
        if job.started_at is None:
            return 0
        until = job.completed_at or now
        fraction = (until - job.started_at).total_seconds() / max(self.run_duration_seconds, 1e-9)
        return max(0, min(job.contacts, math.floor(job.contacts * fraction)))


def path_pattern(template: str) -> re.Pattern[str]:
    """A regex matching a route template (without its query), capturing the raw job id segment."""
    path = template.split("?", 1)[0]
    if path.count(JOB_ID_PLACEHOLDER) != 1:
        raise ValueError(f"a route needs {JOB_ID_PLACEHOLDER} exactly once, got {template!r}")
    before, after = path.split(JOB_ID_PLACEHOLDER)
    return re.compile(f"^{re.escape(before)}(?P<batch_job_id>[^/]+){re.escape(after)}$")


def error_answer(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> SandboxResponse:
    """An error in the sandbox's chosen envelope."""
    return SandboxResponse.json(
        status, {"success": False, "error": {"code": code, "message": message}}, headers=headers
    )


def synthetic_contact(index: int, status: str) -> dict[str, Any]:
    """One made-up contact of a job's contact list (no real person's data)."""
    phone = f"+1202555{index % 10_000:04d}"
    called = status == "completed"
    return {
        "id": f"contact_{index + 1:05d}",
        "phoneNumber": phone,
        "contactData": {"phone": phone, "name": f"Contact {index + 1}"},
        "status": status,
        "attemptCount": 1 if called else 0,
        "maxAttempts": 3,
    }


def _key_spec(spec: Mapping[str, Any] | str) -> dict[str, Any]:
    return {"organization_id": spec} if isinstance(spec, str) else dict(spec)


def _query_int(
    request: SandboxRequest, name: str, default: int, smallest: int, largest: int
) -> int:
    values = request.query.get(name)
    try:
        value = int(values[0]) if values else default
    except ValueError:
        value = default
    return max(smallest, min(largest, value))
