"""What the run engine needs from each kind of vendor call.

Each vendor app registers its operations (batchjobs: TriggerDaily, TalkifAI; campaigns: Optimove
event generators, Altcraft). The engine stays vendor-agnostic: it validates parameters, asks for
rate-limit rules, sends, polls and reconciles through this interface, and decides state changes
from the failure class of what the vendor client raised.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils.translation import gettext_lazy

from dashboard import plugins
from dashboard.approval_policies.evaluation import ApprovalFacts

if TYPE_CHECKING:
    from dashboard.models import Membership, VendorConnection
    from dashboard.runs.models import Run
    from dashboard.vendors.http import Exchange


@dataclass(frozen=True)
class RateRule:
    """At most `limit` requests per `period_seconds` for the vendor account named by `key`.

    `window` rules (TriggerDaily's one request per 10 minutes) hold a key for the whole period.
    `sliding` rules are for a vendor that counts requests as they arrive over a sliding period
    (Optimove campaigns: 500 per second per brand): each request holds a place from the moment
    it is allowed until `period_seconds` after its answer came back, so no delay between our
    grant and the vendor's count (a starved thread, a slow network, a vendor that reads its
    queue late) can put more than `limit` requests into any period at the vendor. The others
    are token buckets (our own API's per-token limit).
    """

    key: str
    limit: int
    period_seconds: float
    window: bool = False
    burst: int | None = None
    sliding: bool = False
    # How long a place is held when its answer is never reported (the holder died): the longest
    # a request can take, so that the place still covers the request's arrival.
    longest_request_seconds: float = 120.0


@dataclass(frozen=True)
class SendResult:
    """The vendor took the call. `accepted` means it works on asynchronously: poll it."""

    exchange: Exchange
    outcome: str
    accepted: bool = False
    vendor_reference: str = ""
    vendor_status: str = ""
    progress: int | None = None
    audience_size: int | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PollResult:
    exchange: Exchange
    vendor_status: str
    terminal: bool = False
    succeeded: bool = False
    progress: int | None = None
    audience_size: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    failure_code: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class ReconcileResult:
    """What asking the vendor again proved about an earlier send whose outcome was unknown."""

    exchange: Exchange | None
    went_through: (
        bool | None
    )  # True: it did; False: it did not (and nothing was done); None: can't tell
    outcome: str
    sent_now: bool = False  # the reconciling call itself was the one that did it


@dataclass(frozen=True)
class ConnectionCheck:
    """The answer of a connection test: whether it passed and, in plain words, what was checked
    (and what could not be). Never carries a secret."""

    ok: bool
    checked: str


def reachability_check(connection: VendorConnection, vendor: str) -> ConnectionCheck:
    """DNS, TCP and TLS to the connection's host, no request sent: for a vendor without a call
    that changes nothing, so the credentials stay unchecked (and the answer says so)."""
    # Here, not at the top: a page that only looks operations up must not load requests.
    from dashboard.vendors.http import reach

    reached = reach(connection.base_url)
    if not reached.reached:
        return ConnectionCheck(False, reached.description)
    return ConnectionCheck(
        True,
        f"{reached.description} {vendor} has no read-only call, so the credentials were not "
        "checked (no request was sent).",
    )


class RunOperation:
    """Base class for one kind of vendor call."""

    name: ClassVar[str]
    vendor_kind: ClassVar[str]
    # Asynchronous vendors answer "accepted" and are polled to a terminal status.
    polls: ClassVar[bool] = False
    # Retry a 5xx answer (only where the vendor docs say so: a 5xx may hide an action done).
    retry_server_errors: ClassVar[bool] = False
    # Reconcile an unknown outcome by asking the vendor again, without a person.
    reconciles_automatically: ClassVar[bool] = False
    # How long a send may take before the sweeper presumes its worker died (seconds).
    max_send_seconds: ClassVar[float] = 120.0
    # How long to keep polling before a person must look.
    poll_deadline_seconds: ClassVar[float] = 6 * 3600
    # Above 1, runs of one connection are sent and polled in batches of up to this many
    # (dashboard.runs.dispatch): for high-volume calls under a token-bucket rate limit only.
    batch_size: ClassVar[int] = 1
    # Failure code -> (headline, advice) in plain words, for the pages that explain a run.
    failure_explanations: ClassVar[dict[str, tuple[str, str]]] = {}

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        """Validated, normalised parameters; raise django ValidationError for bad input."""
        raise NotImplementedError

    def describe(self, parameters: dict[str, Any]) -> str:
        """The run's parameters in one line, ids included: the technical line a person reads
        under the run's title (and the fallback title of a run recorded without one)."""
        return ", ".join(f"{key}={value}" for key, value in parameters.items())

    def title(self, run: Run) -> str:
        """The run's readable name, from the names people gave what it acts on ("Match Start
        Notifications → Arsenal"), for an unsaved run being requested: its connection,
        parameters and UTC day are set. The run keeps it, so a later rename changes nothing."""
        return self.describe(run.parameters)

    def titles(self, runs: list[Run]) -> list[str]:
        """`title` of each of `runs` (unsaved, of one connection), in order. Override it where a
        title reads names from the database, to read them for all the runs at once."""
        return [self.title(run) for run in runs]

    def rate_rules(self, connection: VendorConnection, secrets: dict[str, str]) -> list[RateRule]:
        return []

    def pre_send_problem(self, run: Run) -> str:
        """A reason not to send this run now at all (checked by the worker before sending)."""
        return ""

    def approval_problem(self, run: Run, membership: Membership) -> str:
        """A reason `membership` cannot approve this run now, whichever page or command asks.

        Checked under the run's row lock, after the four-eyes rule, the state and the expiry.
        """
        return self.pre_send_problem(run)

    def approval_facts(
        self, parameters: list[dict[str, Any]], connection: VendorConnection
    ) -> ApprovalFacts:
        """What the approval policies judge of a request: the runs of these cleaned parameter
        sets, requested together (one for run_submit, a group's topics for run_submit_many).
        Count only what is known before sending (recipients in a file, topics); leave the rest
        None, so no condition on it holds."""
        return ApprovalFacts()

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        """Make the vendor call; raise a VendorError subclass when it does not succeed."""
        raise NotImplementedError

    def poll(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> PollResult:
        raise NotImplementedError

    def reconcile(
        self, connection: VendorConnection, secrets: dict[str, str], run: Run
    ) -> ReconcileResult:
        raise NotImplementedError

    # What the automatic re-check of an unknown outcome will do, in plain words, for the run
    # page, the daily page and the commands (which say when).
    reconcile_plan: ClassVar[str] = gettext_lazy(
        "TriggerDesk asks the vendor whether it went through."
    )

    def check_connection(
        self, connection: VendorConnection, secrets: dict[str, str]
    ) -> ConnectionCheck:
        """Prove the connection works with a call that changes nothing at the vendor (a read);
        never a send. The default only reaches the host: override it where the vendor has a read.
        """
        return reachability_check(connection, connection.get_kind_display())

    def duplicate_refusal(self, error: Exception) -> str:
        """When the vendor refused a send because the same thing is already done or under way
        ("already triggered today", "already running"): the outcome that proves, after an
        earlier call that may have reached the vendor, that the earlier call went through.
        "" for every other refusal. Such a refusal is never a fault of the connection."""
        return ""


_registry: dict[str, RunOperation] = {}
# Reentrant: importing an app's operation modules under it registers operations, which takes it.
_registry_lock = threading.RLock()
_apps_loaded = False


def register_operation(operation: RunOperation) -> RunOperation:
    """Make `operation` known to the engine under its name (a later one of the name replaces it)."""
    with _registry_lock:
        _registry[operation.name] = operation
    return operation


def _load_app_operations() -> None:
    # Each app names the modules that register its operations (AppConfig.operation_modules);
    # they are imported on the first lookup rather than at start, so a process that never runs an
    # operation (a page, verify_audit, an export) does not load every vendor client, requests and
    # cryptography with them.
    global _apps_loaded
    if _apps_loaded:
        return
    with _registry_lock:
        if _apps_loaded:
            return
        plugins.contributed_modules("operation_modules")
        _apps_loaded = True


def operation_for(name: str) -> RunOperation:
    """The registered operation named `name`; LookupError when no app registers one."""
    _load_app_operations()
    try:
        return _registry[name]
    except KeyError:
        raise LookupError(f"No run operation named {name!r} is registered.") from None


def registered_operations() -> dict[str, RunOperation]:
    """Every registered operation by name."""
    _load_app_operations()
    return dict(_registry)


def connection_check_for(kind: str) -> RunOperation:
    """The operation whose `check_connection` tests a connection of `kind` (the first registered
    for that kind; the base reachability check when no app registers one)."""
    for operation in registered_operations().values():
        if operation.vendor_kind == kind:
            return operation
    return RunOperation()


def account_key(*parts: str) -> str:
    """A short, stable name for a vendor account, derived from its credentials without revealing
    them (rate limits belong to the vendor's account, not to our connection row)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()
MAX_CACHED_CLIENTS = 128


def cached_client(key: tuple, build: Any) -> Any:
    """One vendor client per connection configuration per process, so connections are pooled.

    `key` must change whenever anything the client was built from changes (URL, options,
    secrets); the cache lives in process memory only.
    """
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= MAX_CACHED_CLIENTS:
                _clients.pop(next(iter(_clients)))
            client = _clients[key] = build()
        return client


def connection_fingerprint(connection: VendorConnection, secrets: dict[str, str]) -> tuple:
    return (
        connection.pk,
        connection.base_url,
        repr(sorted(connection.options.items())),
        hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest(),
    )
