"""The checker: what the vendors saw (the sandboxes' own records) against what the database says,
over the whole history of a proof run. Every violation names the run or the vendor action it
is about, so the report can print that run's history.

Properties (issue 23):
- none stuck: every run is terminal, or before a person as outcome unknown with its evidence
  (an attempt row), once the faults stopped and the deadlines passed;
- no vendor action twice: one execution per (request ref, topic) at Optimove, one start per
  TalkifAI job, one TriggerDaily per tenant and UTC day, one trigger group per schedule and per
  Idempotency-Key;
- nothing lost: every topic of an answered trigger has its run; every run the vendor acted on
  is recorded as sent (an attempt row) and none that says "succeeded" is unknown to the vendor;
- Altcraft launches and imports: every address reached Altcraft at most once and every request
  (a bulk launch, or an import task) was exactly one chunk of a launch of its kind, sent once,
  by a run with an attempt row; no chunk is lost (each has its run, and a chunk whose run
  succeeded is in the ledger with all its addresses or profiles);
- cancels: a cancelled run never reached its vendor (Optimove execution, Altcraft request, a
  cancelled schedule's trigger); a cancel answered 200 withdrew what it names, one answered 409
  `too_late` (or a launch's `chunks_too_late`) left it to be sent: the answers tell the truth;
- the audit chains verify; the metrics agree with the database.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count

from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import TERMINAL_STATES, RunState

TERMINAL = TERMINAL_STATES
EVENT_GENERATOR = Operation.OPTIMOVE_RUN_EVENT_GENERATOR


@dataclass
class Violation:
    rule: str
    detail: str
    run_ids: list[int] = field(default_factory=list)


@dataclass
class Findings:
    violations: list[Violation] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, rule: str, detail: str, run_ids: list[int] | None = None) -> None:
        self.violations.append(Violation(rule, detail, run_ids or []))


# How late past its time a run's automatic re-check may come before the run counts as stuck
# (the sweeper catches an overdue one every few seconds; a worker may be busy).
RECHECK_GRACE_SECONDS = 60


def open_runs() -> list[Run]:
    """Runs neither terminal nor before a person nor waiting for their automatic re-check at a
    time still to come: what "settled" waits for (nothing open past its deadline)."""
    from dashboard.clock import utc_now

    return list(
        Run.objects.exclude(state__in=TERMINAL)
        .exclude(state=RunState.OUTCOME_UNKNOWN, needs_person=True)
        .exclude(state__in=[RunState.AWAITING_APPROVAL, RunState.DRAFT])
        .exclude(
            state=RunState.OUTCOME_UNKNOWN,
            reconcile_after__gt=utc_now() - timedelta(seconds=RECHECK_GRACE_SECONDS),
        )
        .only("id", "state")
    )


def waiting_for_recheck() -> list[Run]:
    """Runs whose outcome the engine will ask the vendor again at a set time (TriggerDaily:
    after Optimove's 10-minute window), not yet past it: open, but not stuck."""
    return list(
        Run.objects.filter(state=RunState.OUTCOME_UNKNOWN, needs_person=False)
        .exclude(pk__in=[run.pk for run in open_runs()])
        .only("id", "reconcile_after")
    )


def due_schedules() -> list:
    """Schedules whose time has come that have not fired (nor failed to) yet."""
    from campaigns.event_generators.models import ScheduledTrigger
    from dashboard.clock import utc_now

    return list(ScheduledTrigger.objects.filter(state="scheduled", fire_at__lte=utc_now()))


def check(sandboxes, intents, schedules) -> Findings:
    """Every property over the finished proof; `intents` are the workload's, `schedules` the
    ScheduledTrigger rows it created."""
    findings = Findings()
    # The fuzzer's tenant is left out: a fuzzed value may be a valid trigger (tests/chaos/fuzz.py).
    runs = list(Run.objects.exclude(tenant__slug__startswith="fuzz"))
    by_state = Counter(run.state for run in runs)
    findings.figures["runs"] = len(runs)
    findings.figures["runs_by_state"] = dict(sorted(by_state.items()))
    attempted = set(RunAttempt.objects.values_list("run_id", flat=True).distinct())

    # -- none stuck --------------------------------------------------------------------------
    stuck = open_runs()  # the fuzzer's runs too: nothing of anyone's may stay open
    findings.figures["stuck"] = len(stuck)
    if stuck:
        findings.add(
            "stuck", f"{len(stuck)} runs still open after settling", [r.pk for r in stuck][:20]
        )
    unknown = [r for r in runs if r.state == RunState.OUTCOME_UNKNOWN and r.pk not in attempted]
    if unknown:
        findings.add("evidence", "outcome unknown without an attempt row", [r.pk for r in unknown])
    findings.figures["waiting_for_their_recheck"] = len(waiting_for_recheck())
    findings.figures["before_a_person"] = sum(
        1 for r in runs if r.state == RunState.OUTCOME_UNKNOWN and r.needs_person
    )

    # -- Optimove campaigns: one execution per (ref, topic) -----------------------------------
    executions = [
        e
        for e in sandboxes["optimove_campaigns"].state()["executions"]
        if not e["brand"].startswith("fuzz")
    ]
    seen = Counter((e["context"].get("ref"), e["topic_key"]) for e in executions)
    duplicates = {pair: count for pair, count in seen.items() if count > 1}
    campaign_runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        if run.operation == EVENT_GENERATOR:
            context = run.parameters.get("context") or {}
            campaign_runs[(context.get("ref"), run.parameters.get("topic_key"))].append(run)
    for pair, count in duplicates.items():
        findings.add(
            "duplicate",
            f"Optimove ran {pair} {count} times",
            [r.pk for r in campaign_runs.get(pair, [])],
        )
    for pair, pair_runs in campaign_runs.items():
        if len(pair_runs) > 1:
            findings.add(
                "duplicate_run", f"{len(pair_runs)} runs for {pair}", [r.pk for r in pair_runs]
            )
    for pair in seen:
        pair_runs = campaign_runs.get(pair, [])
        if not pair_runs:
            findings.add("lost", f"Optimove ran {pair}, no run records it")
        elif not any(r.pk in attempted for r in pair_runs):
            findings.add(
                "unrecorded",
                f"Optimove ran {pair} without an attempt row",
                [r.pk for r in pair_runs],
            )
        elif any(r.state == RunState.CANCELLED for r in pair_runs):
            findings.add("sent_but_cancelled", f"Optimove ran {pair}", [r.pk for r in pair_runs])
    for pair, pair_runs in campaign_runs.items():
        for run in pair_runs:
            if run.state == RunState.SUCCEEDED and pair not in seen:
                findings.add("phantom", f"run succeeded, Optimove never ran {pair}", [run.pk])
    findings.figures["optimove_executions"] = len(executions)
    # Of the runs before a person, how many Optimove had in fact run (what the person will find).
    unknown_pairs = [
        pair
        for pair, pair_runs in campaign_runs.items()
        if any(r.state == RunState.OUTCOME_UNKNOWN for r in pair_runs)
    ]
    findings.figures["unknown_that_the_vendor_ran"] = sum(1 for p in unknown_pairs if p in seen)
    findings.figures["unknown_that_the_vendor_never_saw"] = sum(
        1 for p in unknown_pairs if p not in seen
    )
    duplicate_sends = sum(count - 1 for count in duplicates.values())

    # -- every topic of an answered trigger has its run -----------------------------------------
    for intent in intents:
        if intent.kind not in ("trigger", "probe") or intent.status not in (200, 201):
            continue
        ref = intent.body["context"]["ref"]
        missing = [t for t in intent.body["topic_keys"] if (ref, t) not in campaign_runs]
        if missing:
            findings.add("lost", f"intent {intent.key}: no run for {len(missing)} topics")

    # -- TalkifAI: one start per job -------------------------------------------------------------
    starts = sandboxes["talkifai"].state()["starts"]
    talkifai_runs = defaultdict(list)
    for run in runs:
        if run.operation == Operation.TALKIFAI_START_BATCH_JOB:
            talkifai_runs[run.parameters.get("batch_job_id")].append(run)
    for job_id, count in starts.items():
        if count > 1:
            duplicate_sends += count - 1
            findings.add(
                "duplicate",
                f"TalkifAI started {job_id} {count} times",
                [r.pk for r in talkifai_runs.get(job_id, [])],
            )
        recorded = any(r.pk in attempted for r in talkifai_runs.get(job_id, []))
        if count and not recorded and job_id.startswith("chaos-"):
            findings.add("unrecorded", f"TalkifAI started {job_id} without an attempt row")
    findings.figures["talkifai_starts"] = sum(starts.values())

    # -- TriggerDaily: once per tenant and UTC day ------------------------------------------------
    triggered = Counter()
    for record in sandboxes["optimove_batch"].received_on("trigger_daily"):
        if record.effect and record.effect.get("triggered"):
            triggered[(record.effect.get("tenant"), record.at[:10])] += 1
    for key, count in triggered.items():
        if count > 1:
            duplicate_sends += count - 1
            findings.add("duplicate", f"TriggerDaily ran {count} times for {key}")
    daily_attempted = {
        run.tenant.slug
        for run in Run.objects.filter(operation=Operation.OPTIMOVE_TRIGGER_DAILY).select_related(
            "tenant"
        )
        if run.pk in attempted
    }
    for daily_tenant, _day in triggered:
        slug = str(daily_tenant).replace("-daily-", "")  # chaos-daily-0: tenant chaos0's key
        if slug.startswith("chaos") and slug not in daily_attempted:
            findings.add("unrecorded", f"TriggerDaily ran for {slug} without an attempt row")
    findings.figures["daily_triggers"] = sum(triggered.values())

    from dashboard.clock import utc_now

    # -- schedules: each fired once ---------------------------------------------------------------
    for schedule in schedules:
        schedule.refresh_from_db()
        if schedule.state == "scheduled" and schedule.fire_at <= utc_now():
            findings.add("stuck", f"schedule #{schedule.pk} was due and never fired")
    findings.figures["schedules"] = len(schedules)

    duplicate_sends += check_altcraft(findings, sandboxes, intents, attempted)
    check_cancels(findings, intents, seen)

    # -- the audit chains --------------------------------------------------------------------------
    from dashboard.audit.trail import audit_verify

    report = audit_verify(full=True)
    problems = list(getattr(report, "problems", []) or [])
    if problems:
        findings.add("audit", f"{len(problems)} audit problems: {problems[:3]}")
    findings.figures["duplicates"] = duplicate_sends + sum(
        len(v) - 1 for v in campaign_runs.values() if len(v) > 1
    )
    findings.figures["lost"] = sum(1 for v in findings.violations if v.rule in ("lost", "phantom"))
    return findings


def api_key(key: str) -> str:
    """The key the API hands a service for a request's Idempotency-Key (api/endpoints/common)."""
    return "api:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


ADDRESS = re.compile(r"^([ai][0-9a-f]{12})-(\d{4})@example\.com$")
# The sandbox's route each kind of launch sends its chunks to, and the address of one item of a
# request there: a bulk launch's items are {"email": …}, an import's {"data": {"email": …}}.
ALTCRAFT_ROUTES = {
    "start_batch": ("start_batch", lambda item: item.get("email")),
    "import": ("import_and_start_batch_task", lambda item: (item.get("data") or {}).get("email")),
}
INTENT_KINDS = {"altcraft": "start_batch", "altcraft_import": "import"}


def listed(intent) -> list:
    """What a launch or import intent asked to send: its recipients, or its rows."""
    return intent.body.get("recipients") or intent.body.get("rows") or []


def check_altcraft(findings: Findings, sandboxes, intents, attempted: set[int]) -> int:
    """The Altcraft sandbox's ledger (bulk launches' requests and import tasks) against the
    launches and their chunks; the duplicate sends it found (addresses or chunks Altcraft
    received more than once)."""
    from campaigns.altcraft_launches.models import AltcraftChunk, AltcraftLaunch, LaunchState

    # The API keeps a digest of the request's Idempotency-Key (the workload's `ref`).
    by_key = {
        launch.idempotency_key: launch
        for launch in AltcraftLaunch.objects.filter(tenant__slug__startswith="chaos")
    }
    launches = {
        intent.key: by_key[api_key(intent.key)]
        for intent in intents
        if intent.kind in INTENT_KINDS and api_key(intent.key) in by_key
    }
    chunks: dict[int, list[AltcraftChunk]] = defaultdict(list)
    for chunk in AltcraftChunk.objects.filter(
        launch__tenant__slug__startswith="chaos"
    ).select_related("run"):
        chunks[chunk.launch_id].append(chunk)

    def chunk_of(launch: AltcraftLaunch, index: int) -> AltcraftChunk | None:
        row = index + 2  # the header is row 1; the workload's lists have no blank or repeated row
        return next((c for c in chunks[launch.pk] if c.first_row <= row <= c.last_row), None)

    addresses: Counter = Counter()
    sent_chunks: Counter = Counter()
    requests: Counter = Counter()
    for kind, (route, address_of) in ALTCRAFT_ROUTES.items():
        for received in sandboxes["altcraft"].received_on(route):
            if not received.processed:
                continue
            try:
                items = json.loads(received.body).get("data") or []
            except (ValueError, AttributeError):
                continue
            parsed = [
                ADDRESS.match(str(address_of(item) or ""))
                for item in items
                if isinstance(item, dict)
            ]
            parsed = [match for match in parsed if match]
            if not parsed:
                continue  # not the workload's (the fuzzer's tenant)
            requests[kind] += 1
            addresses.update(match.group(0) for match in parsed)
            ref = parsed[0].group(1)
            launch = launches.get(ref)
            if launch is None:
                findings.add(
                    "lost", f"Altcraft received launch {ref}'s addresses; no launch records it"
                )
                continue
            if launch.kind != kind:
                findings.add("chunking", f"launch #{launch.pk} ({launch.kind}) reached {route}")
                continue
            found = {chunk_of(launch, int(match.group(2))) for match in parsed}
            if len(found) != 1 or None in found:
                findings.add(
                    "chunking", f"an Altcraft request of launch #{launch.pk} is not one chunk"
                )
                continue
            [chunk] = found
            sent_chunks[chunk.pk] += 1
            run_ids = [chunk.run_id] if chunk.run_id else []
            if len(parsed) != chunk.item_count:
                findings.add(
                    "lost",
                    f"launch #{launch.pk} chunk {chunk.number}: Altcraft got {len(parsed)} of "
                    f"{chunk.item_count} addresses",
                    run_ids,
                )
            if chunk.run is None or chunk.run_id not in attempted:
                findings.add(
                    "unrecorded", f"Altcraft got launch #{launch.pk} chunk {chunk.number}", run_ids
                )
            elif chunk.run.state == RunState.CANCELLED:
                findings.add(
                    "sent_but_cancelled",
                    f"Altcraft got launch #{launch.pk} chunk {chunk.number}",
                    run_ids,
                )
    duplicates = 0
    for address, count in addresses.items():
        if count > 1:
            duplicates += count - 1
            findings.add("duplicate", f"Altcraft received {address} {count} times")
    for chunk_pk, count in sent_chunks.items():
        if count > 1:
            findings.add("duplicate", f"Altcraft received chunk #{chunk_pk} {count} times")

    # Nothing lost: each answered launch has its chunks for every recipient, each with its run,
    # and a chunk whose run succeeded is in the ledger.
    for intent in intents:
        if intent.kind not in INTENT_KINDS or intent.status not in (200, 201):
            continue
        launch = launches.get(intent.key)
        if launch is None:
            findings.add("lost", f"launch {intent.key} was answered, no launch records it")
            continue
        if launch.state not in (LaunchState.SENDING, LaunchState.DISCARDED):
            findings.add("stuck", f"launch #{launch.pk} is {launch.state}")
            continue
        if launch.state == LaunchState.DISCARDED:
            continue  # cancelled before it was confirmed: nothing of it may be sent (above)
        if launch.kind != INTENT_KINDS[intent.kind]:
            findings.add("lost", f"intent {intent.key} made launch #{launch.pk} ({launch.kind})")
        items = sum(chunk.item_count for chunk in chunks[launch.pk])
        if items != len(listed(intent)):
            findings.add(
                "lost",
                f"launch #{launch.pk}: chunks hold {items} of {len(listed(intent))} recipients",
            )
        for chunk in chunks[launch.pk]:
            if chunk.run is None:
                findings.add("lost", f"launch #{launch.pk} chunk {chunk.number} has no run")
            elif chunk.run.state == RunState.SUCCEEDED and chunk.pk not in sent_chunks:
                findings.add(
                    "phantom",
                    f"launch #{launch.pk} chunk {chunk.number} succeeded, Altcraft never got it",
                    [chunk.run_id],
                )
    # The workload's rows are all valid: an import refused for anything but a trigger with no
    # remembered mapping yet (a true answer) is a finding.
    answers: Counter = Counter()
    for intent in intents:
        if intent.kind == "altcraft_import":
            code = intent.answer.get("code", "") if isinstance(intent.answer, dict) else ""
            answers[f"{intent.status} {code}".strip()] += 1
            if intent.status == 422 and code != "no_mapping":
                findings.add("refused", f"import {intent.key} answered 422 {code}: {intent.answer}")
    findings.figures["altcraft_import_answers"] = dict(sorted(answers.items()))
    kinds = Counter(launch.kind for launch in launches.values())
    findings.figures["altcraft_launches"] = kinds["start_batch"]
    findings.figures["altcraft_imports"] = kinds["import"]
    findings.figures["altcraft_chunks"] = {
        kind: sum(len(chunks[launch.pk]) for launch in launches.values() if launch.kind == kind)
        for kind in ALTCRAFT_ROUTES
    }
    findings.figures["altcraft_requests"] = dict(requests)
    findings.figures["altcraft_addresses"] = len(addresses)
    return duplicates


def check_cancels(findings: Findings, intents, optimove_seen: Counter) -> None:
    """Every cancel's answer against what happened: 200 withdrew it (never at the vendor),
    409 `too_late` left it to be sent."""
    from campaigns.altcraft_launches.models import AltcraftChunk
    from campaigns.event_generators.models import ScheduledTrigger

    def cancelled_by_person(run: Run | None) -> bool:
        return (
            run is not None and run.state == RunState.CANCELLED and run.failure_code == "cancelled"
        )

    outcomes: Counter = Counter()
    for intent in intents:
        if not intent.kind.startswith("cancel_"):
            continue
        answer = intent.answer if isinstance(intent.answer, dict) else {}
        outcomes[f"{intent.kind} {intent.status}"] += 1
        if intent.status is None:
            continue
        if intent.kind == "cancel_run":
            run = Run.objects.filter(pk=intent.target["run"]).first()
            if intent.status == 200 and not cancelled_by_person(run):
                findings.add(
                    "cancel_untrue", f"cancel {intent.key} said cancelled", [intent.target["run"]]
                )
            if intent.status == 409 and cancelled_by_person(run):
                findings.add(
                    "cancel_untrue", f"cancel {intent.key} said too late", [intent.target["run"]]
                )
        elif intent.kind == "cancel_launch" and intent.status == 200:
            by_number = {
                chunk.number: chunk
                for chunk in AltcraftChunk.objects.filter(
                    launch_id=intent.target["launch"]
                ).select_related("run")
            }
            for number in answer.get("chunks_cancelled", []):
                chunk = by_number.get(number)
                if chunk is None or not cancelled_by_person(chunk.run):
                    findings.add("cancel_untrue", f"cancel {intent.key}: chunk {number} sent")
            for late in answer.get("chunks_too_late", []):
                chunk = by_number.get(late["chunk"])
                if chunk is not None and cancelled_by_person(chunk.run):
                    findings.add("cancel_untrue", f"cancel {intent.key}: chunk {late} cancelled")
        elif intent.kind == "cancel_schedule":
            schedule = ScheduledTrigger.objects.get(pk=intent.target["schedule"])
            ref = schedule.context.get("ref")
            executed = any(pair[0] == ref for pair in optimove_seen)
            if intent.status == 200 and (schedule.state != "cancelled" or executed):
                findings.add(
                    "cancel_untrue",
                    f"schedule #{schedule.pk} cancelled, yet {schedule.state}, executed={executed}",
                )
            if intent.status == 409 and schedule.state == "cancelled":
                findings.add("cancel_untrue", f"schedule #{schedule.pk}: said too late")
    findings.figures["cancels"] = dict(sorted(outcomes.items()))


def run_history(run_id: int) -> str:
    """One run's story for a violation report: its row, attempts and audit timeline."""
    from dashboard.models import AuditEvent

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return f"run #{run_id}: gone"
    lines = [
        f"run #{run.pk} {run.operation} state={run.state} needs_person={run.needs_person} "
        f"attempts={run.attempt_count} vendor_reference={run.vendor_reference!r} "
        f"failure={run.failure_code!r} {run.failure_message[:120]!r}",
        f"  updated_at={run.updated_at:%H:%M:%S.%f} next_attempt_at={run.next_attempt_at} "
        f"next_poll_at={run.next_poll_at} reconcile_after={run.reconcile_after}",
    ]
    for attempt in RunAttempt.objects.filter(run=run).order_by("id"):
        lines.append(
            f"  attempt #{attempt.pk} status={attempt.status_code} outcome={attempt.outcome!r} "
            f"class={attempt.failure_class!r}"
        )
    for event in AuditEvent.objects.filter(object_type="run", object_id=str(run.pk)).order_by("id"):
        lines.append(f"  {event.created_at:%H:%M:%S.%f} {event.action} {event.summary}")
    return "\n".join(lines)


def check_metrics(findings: Findings, web_url: str, token: str) -> None:
    """The web process's /metrics (what an alert reads) agree with the database: runs by state."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    answer = requests.get(
        f"{web_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    if answer.status_code != 200:
        findings.add("metrics", f"/metrics answered {answer.status_code}")
        return
    scraped: Counter = Counter()
    for family in text_string_to_metric_families(answer.text):
        if family.name == "triggerdesk_runs":
            for sample in family.samples:
                scraped[sample.labels["state"]] += int(sample.value)
    database = Counter(dict(Run.objects.values_list("state").annotate(n=Count("id"))))
    findings.figures["metrics_agree"] = scraped == database
    if scraped != database:
        findings.add("metrics", f"/metrics says {dict(scraped)}, the database {dict(database)}")
