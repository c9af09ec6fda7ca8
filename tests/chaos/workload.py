"""The proofs' workload: what many people and pipelines do at once, over the HTTP API.

Every request is one *intent* with its own Idempotency-Key, retried with the same key and body
after a dropped connection, a timeout or a 5xx (what a careful client does, as Stripe's clients
do). Its content is drawn from a seeded generator, so a seed names the same workload again; the
interleaving of the client threads is not reproducible, the checker does not depend on it.

Kinds of intent:
- `trigger`: an event generator for 1-300 topics (one run each, one trigger group), through
  `POST event-generators/<id>/run`; the context carries the intent's `ref`, so the vendor's own
  record of each execution names the intent and topic it came from;
- `talkifai`: start a TalkifAI batch job now (an operator, `POST batch-jobs/<id>/start`);
- `daily`: request the daily trigger and have another operator approve it (once per tenant);
- `altcraft`: an Altcraft bulk launch for 1-150 recipients (a list, or rows of a CRM export
  with the `column` to send), cut into several requests (chunks) by the connection's small body
  limit; every address names its launch (`<ref>-<index>@example.com`), so the sandbox's ledger
  says which chunk of which launch each request was;
- `altcraft_import`: an Altcraft profile import + launch of 1-150 rows (`POST altcraft/imports`:
  rows of profiles and their column mapping, or now and then the trigger's remembered one), cut
  into several requests too, each a vendor task polled to its result; its addresses name it
  as a launch's do (`<ref>-<index>@example.com`, the ref starting with "i");
- `schedule`: a scheduled trigger (the scheduler fires it, under two beats at times);
- `approve`: an operator approves a run that waits for approval (the daily trigger);
- `cancel_run` / `cancel_launch`: right after a trigger, launch or import is answered, now and
  then its requester's operator cancels one of its runs, or the whole launch (an import is one
  too), racing the workers;
- `cancel_schedule`: an operator cancels a scheduled trigger, before or after its time.
A cancel is answered truthfully: 200 when it withdrew the run (or it was cancelled already), 409
`too_late` with the run's state when a worker had it first; the checker holds it to that.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests

GENERATOR_ID = "44444444-abcd-abcd-abcd-{:012d}"
TOPICS_PER_GENERATOR = 300
FAILING_TOPIC = "fail-topic"  # the sandbox fails any topic key containing "fail"
CONTEXT_SCHEMA = {
    "type": "object",
    "properties": {"ref": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["ref"],
    "additionalProperties": False,
}
REQUEST_TIMEOUT = 15.0
# How long a client keeps retrying one intent through faults before giving up on it (it then
# counts as "not answered": the checker still verifies what, if anything, it made).
RETRY_SECONDS = 120.0
# The share of answered triggers and launches an operator cancels at once (racing the workers).
CANCEL_SHARE = 0.2
# The column mapping of the workload's imports: the address is the profile's email.
IMPORT_MAPPING = {
    "columns": {
        "email": {"to": "field", "name": "email"},
        "first_name": {"to": "field", "name": "_fname"},
        "city": {"to": "ignore"},
    }
}
LAUNCH_KINDS = ("altcraft", "altcraft_import")


@dataclass
class Brand:
    """One tenant of the proof: its slug, tokens and what it can trigger."""

    slug: str
    generator_id: str
    topic_keys: list[str]
    batch_job_pks: list[int]
    marketer_token: str
    operator_token: str
    second_operator_token: str
    campaigns_brand: str
    daily_tenant: str
    altcraft_trigger_id: int


@dataclass
class Intent:
    kind: str
    brand: Brand
    key: str
    body: dict[str, Any]
    path: str
    token: str
    attempts: int = 0
    status: int | None = None  # the last answer's HTTP status (None: never answered)
    answer: dict[str, Any] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    # What a cancel is about: {"run": id} / {"launch": id} / {"schedule": id}, and for a launch
    # or trigger the intent it cancels (`of`, its key).
    target: dict[str, Any] = field(default_factory=dict)


class Workload:
    """Draws intents from `seed` and sends them from `threads` client threads until stopped."""

    def __init__(
        self,
        *,
        seed: int,
        brands: list[Brand],
        web_url: str,
        threads: int = 4,
        schedules: list[tuple[str, int]] | None = None,
    ) -> None:
        self.random = random.Random(seed)
        self.brands = brands
        self.web_url = web_url
        self.threads = threads
        self.intents: list[Intent] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.workers: list[threading.Thread] = []
        self.started_jobs: set[int] = set()
        self.daily_requested: set[str] = set()
        self.decided: set[int] = set()
        # (tenant slug, schedule id) of the proof's scheduled triggers: some get cancelled.
        self.schedules = list(schedules or [])
        self.first = self.opening()

    # -- drawing intents ---------------------------------------------------------------------

    def opening(self) -> list[tuple[str, Brand]]:
        """What the clients do first, so that even a short proof has every kind: per tenant a
        launch from a list, one from a CRM export and an import, each of several chunks, and one
        schedule cancelled well before its time."""
        first: list[tuple[str, Brand]] = []
        for brand in self.brands:
            first += [("altcraft_list", brand), ("altcraft_export", brand), ("import", brand)]
        if self.schedules:
            first.append(("cancel_schedule", self.brands[0]))
        return first

    def next_intent(self) -> Intent | None:
        with self.lock:
            if self.first:
                kind, brand = self.first.pop(0)
                if kind == "cancel_schedule":
                    return self._cancel_schedule(self.schedules.pop())  # the latest to fire
                if kind == "import":
                    return self._import_intent(brand, count=150, mapped=True)
                return self._altcraft_intent(brand, export=kind == "altcraft_export", count=150)
            brand = self.random.choice(self.brands)
            roll = self.random.random()
            if roll < 0.06 and brand.slug not in self.daily_requested:
                self.daily_requested.add(brand.slug)
                return self._intent(
                    "daily",
                    brand,
                    "daily-trigger",
                    {"files_uploaded_attested": True},
                    brand.marketer_token,
                )
            if 0.16 <= roll < 0.18 and self.schedules:
                return self._cancel_schedule(
                    self.schedules.pop(self.random.randrange(len(self.schedules)))
                )
            if 0.18 <= roll < 0.32:
                return self._altcraft_intent(
                    brand,
                    export=self.random.random() < 0.5,
                    count=self.random.choice([1, 3, 12, 40, 40, 80, 150]),
                )
            if 0.32 <= roll < 0.39:
                return self._import_intent(
                    brand,
                    count=self.random.choice([1, 3, 12, 40, 80, 150]),
                    mapped=self.random.random() < 0.7,
                )
            free_jobs = [pk for pk in brand.batch_job_pks if pk not in self.started_jobs]
            if roll < 0.16 and free_jobs:
                job = self.random.choice(free_jobs)
                self.started_jobs.add(job)
                return self._intent(
                    "talkifai", brand, f"batch-jobs/{job}/start", {}, brand.operator_token
                )
            # Mostly small triggers, now and then a campaign to hundreds of topics at once.
            count = self.random.choice([1, 1, 2, 3, 5, 10, 20, 40, 40, 120, 300])
            topics = self.random.sample(brand.topic_keys, min(count, len(brand.topic_keys)))
            ref = f"r{uuid.UUID(int=self.random.getrandbits(128)).hex[:12]}"
            return self._intent(
                "trigger",
                brand,
                f"event-generators/{brand.generator_id}/run",
                {"topic_keys": topics, "context": {"ref": ref, "n": len(topics)}},
                brand.marketer_token,
                key=ref,
            )

    def _altcraft_intent(self, brand: Brand, *, export: bool, count: int) -> Intent:
        """A bulk launch; its addresses name it (`<ref>-<index>@example.com`)."""
        ref = f"a{uuid.UUID(int=self.random.getrandbits(128)).hex[:12]}"
        emails = [altcraft_address(ref, index) for index in range(count)]
        body: dict[str, Any] = {"trigger": brand.altcraft_trigger_id}
        if export:  # rows of a CRM export: only the `column` is sent
            body["column"] = "email"
            body["recipients"] = [
                {"first_name": f"Person {index}", "email": email, "city": "Riga"}
                for index, email in enumerate(emails)
            ]
        else:
            body["recipients"] = emails
        return self._intent(
            "altcraft", brand, "altcraft/launches", body, brand.marketer_token, key=ref
        )

    def _import_intent(self, brand: Brand, *, count: int, mapped: bool) -> Intent:
        """A profile import + launch; its addresses name it (`<ref>-<index>@example.com`).
        Unless `mapped`, the trigger's remembered mapping is used (a 422 `no_mapping` while no
        import of it has been read yet: a true answer, nothing made)."""
        ref = f"i{uuid.UUID(int=self.random.getrandbits(128)).hex[:12]}"
        body: dict[str, Any] = {
            "trigger": brand.altcraft_trigger_id,
            "rows": [
                {"email": altcraft_address(ref, index), "first_name": f"P{index}", "city": "Riga"}
                for index in range(count)
            ],
        }
        if mapped:
            body["mapping"] = IMPORT_MAPPING
        return self._intent(
            "altcraft_import", brand, "altcraft/imports", body, brand.marketer_token, key=ref
        )

    def _cancel_schedule(self, schedule: tuple[str, int]) -> Intent:
        slug, schedule_id = schedule
        owner = next(brand for brand in self.brands if brand.slug == slug)
        return self._intent(
            "cancel_schedule",
            owner,
            f"schedules/{schedule_id}/cancel",
            {},
            owner.operator_token,
            target={"schedule": schedule_id},
        )

    def _intent(
        self, kind, brand, path, body, token, *, key: str | None = None, target=None
    ) -> Intent:
        key = key or f"{kind}-{uuid.UUID(int=self.random.getrandbits(128)).hex[:16]}"
        intent = Intent(kind, brand, key, body, f"/api/v1/t/{brand.slug}/{path}", token)
        intent.target = target or {}
        self.intents.append(intent)
        return intent

    def cancel_after(self, intent: Intent) -> Intent | None:
        """Now and then an operator cancels what was just asked for, racing the workers: one run
        of a trigger, or the whole of a launch."""
        answer = intent.answer if isinstance(intent.answer, dict) else {}
        if intent.status not in (200, 201):
            return None
        with self.lock:
            if self.random.random() >= CANCEL_SHARE:
                return None
            if intent.kind in LAUNCH_KINDS and "id" in answer:
                return self._intent(
                    "cancel_launch",
                    intent.brand,
                    f"altcraft/launches/{answer['id']}/cancel",
                    {},
                    intent.brand.operator_token,
                    target={"launch": int(answer["id"]), "of": intent.key},
                )
            runs = answer.get("runs") or []
            if intent.kind == "trigger" and runs:
                run = self.random.choice(runs)
                return self._intent(
                    "cancel_run",
                    intent.brand,
                    f"runs/{run['id']}/cancel",
                    {},
                    intent.brand.operator_token,
                    target={"run": int(run["id"]), "of": intent.key},
                )
        return None

    # -- sending -------------------------------------------------------------------------------

    def send(self, intent: Intent, session: requests.Session) -> None:
        """POST the intent until it is answered (2xx or 4xx) or RETRY_SECONDS pass."""
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            intent.attempts += 1
            try:
                response = session.post(
                    self.web_url + intent.path,
                    json=intent.body,
                    headers={
                        "Authorization": f"Bearer {intent.token}",
                        "Idempotency-Key": intent.key,
                    },
                    timeout=REQUEST_TIMEOUT,
                )
            except requests.RequestException as error:
                intent.errors[type(error).__name__] += 1
                time.sleep(0.5)
                continue
            intent.status = response.status_code
            if response.status_code >= 500 or response.status_code == 429:
                intent.errors[str(response.status_code)] += 1
                time.sleep(float(response.headers.get("Retry-After", "0.5") or 0.5))
                continue
            try:
                intent.answer = response.json()
            except ValueError:
                intent.answer = {"text": response.text[:200]}
            return

    def decide(self, session: requests.Session, brand: Brand, run_id: int, approve: bool) -> None:
        """Another operator approves (or rejects) a run that waits for approval."""
        path = f"/api/v1/t/{brand.slug}/runs/{run_id}"
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            try:
                run = session.get(
                    self.web_url + path,
                    headers={"Authorization": f"Bearer {brand.second_operator_token}"},
                    timeout=REQUEST_TIMEOUT,
                )
                if run.status_code >= 500:
                    time.sleep(0.5)
                    continue
                body = run.json()
                if body.get("state") != "awaiting_approval":
                    return
                action = "approve" if approve else "reject"
                payload = {"parameters_hash": body["parameters_hash"]} if approve else {}
                answer = session.post(
                    f"{self.web_url}{path}/{action}",
                    json=payload,
                    headers={"Authorization": f"Bearer {brand.second_operator_token}"},
                    timeout=REQUEST_TIMEOUT,
                )
                if answer.status_code < 500:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)

    def _client(self) -> None:
        session = requests.Session()
        while not self.stop_event.is_set():
            intent = self.next_intent()
            if intent is None:
                return
            self.send(intent, session)
            cancel = self.cancel_after(intent)
            if cancel is not None:
                self.send(cancel, session)
            run = intent.answer if isinstance(intent.answer, dict) else {}
            if intent.status in (200, 201) and run.get("state") == "awaiting_approval":
                self.decide(session, intent.brand, int(run["id"]), approve=True)
            # A person's pace, not a benchmark's: keeps the proof about faults, not load.
            self.stop_event.wait(self.random.uniform(0.05, 0.4))

    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(target=self._client, name=f"client-{number}", daemon=True)
            thread.start()
            self.workers.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.workers:
            thread.join(timeout=RETRY_SECONDS + REQUEST_TIMEOUT + 5)

    def counts(self) -> Counter:
        return Counter(intent.kind for intent in self.intents)


def altcraft_address(ref: str, index: int) -> str:
    """The `index`th recipient (or profile) of the launch or import `ref`: the ledger's items
    name their launch."""
    return f"{ref}-{index:04d}@example.com"


def schedule_fires(seed: int, *, count: int, within_seconds: float) -> list[timedelta]:
    """When the proof's scheduled triggers fire, from the start: seeded, spread over the run."""
    drawn = random.Random(seed * 7919 + 1)
    return sorted(
        timedelta(seconds=drawn.uniform(5, max(6.0, within_seconds))) for _ in range(count)
    )
