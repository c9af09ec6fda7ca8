"""One proof run: build the brands, start the stack, run the workload under the seed's faults,
stop the faults, let the system settle, then check the whole history.

`run_proof` returns a report (figures and violations); the tests and `make proofs` print it.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from django.db import connection as database

from tests.factories import PASSWORD

from . import checker, faults, fuzz, workload
from .stack import Stack, wait_until

SETTLE_SECONDS = 420.0
STACK_START_SECONDS = 20.0
METRICS_TOKEN = "proofs-metrics-token"
PROBE_SECONDS = 300.0
ALTCRAFT_TRIGGER_ID = 700
# Small enough that a launch of 150 addresses is several requests (about 40 addresses each).
ALTCRAFT_BODY_LIMIT = 1800


@dataclass
class Report:
    seed: int
    duration: float
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[faults.Happened] = field(default_factory=list)
    violations: list[checker.Violation] = field(default_factory=list)
    histories: list[str] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.violations

    def text(self) -> str:
        lines = [f"seed {self.seed}, {self.duration:.0f} s of faults"]
        for key, value in self.figures.items():
            lines.append(f"  {key}: {json.dumps(value, default=str)}")
        lines.append("  fault timeline (s from start: kind, effect seconds, recovery seconds):")
        for happened in self.timeline:
            recovery = (
                f"{happened.recovery_seconds:.1f}"
                if happened.recovery_seconds is not None
                else "not measured"
            )
            lines.append(
                f"    {happened.began:7.1f} {happened.fault.kind} "
                f"({happened.ended - happened.began:.1f} s) {happened.fault.detail or ''} "
                f"recovered in {recovery}"
            )
        for error in self.fault_errors:
            lines.append(f"  fault error: {error}")
        for violation in self.violations:
            lines.append(f"  VIOLATION {violation.rule}: {violation.detail} {violation.run_ids}")
        lines.extend(self.histories)
        return "\n".join(lines)


def child_environment(database_url: str, directory: Path) -> dict[str, str]:
    """What every process of the stack runs with: the test settings, fast heartbeats, a short
    visibility timeout (a killed worker's messages come back soon), an API limit far above the
    workload (the proof is about faults, not throttling)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.project.test_settings",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "WORKER_HEARTBEAT_INTERVAL": "1",
            "CELERY_VISIBILITY_TIMEOUT": "10",
            "API_RATE_LIMIT_PER_MINUTE": "1000000",
            "API_RATE_LIMIT_BURST": "100000",
            "METRICS_TOKEN": METRICS_TOKEN,
            # The web process stores a launch's list and chunks, a worker reads them to send.
            "ALTCRAFT_UPLOAD_DIR": str(directory / "altcraft-uploads"),
        }
    )
    return env


def build_brands(sandboxes, count: int, *, prefix: str = "chaos") -> list[workload.Brand]:
    """`count` tenants, each with its own Optimove brand, TalkifAI jobs, daily task and Altcraft
    trigger campaign (whose connection's small body limit cuts a launch into several chunks)."""
    from batchjobs.services import batch_job_register
    from campaigns.altcraft_launches.services import trigger_register
    from campaigns.event_generators.services import generator_create
    from dashboard.api.services import api_token_create
    from dashboard.audit.trail import Actor
    from dashboard.models import VendorKind
    from tests.conftest import SANDBOX_SECRETS, make_team
    from tests.factories import VendorConnectionFactory

    brands = []
    for number in range(count):
        slug = f"{prefix}{number}"
        team = make_team(
            f"{prefix.title()} Brand {number}",
            slug,
            {
                field: f"{slug}-{field}"
                for field in ("marketer", "operator", "second_operator", "auditor", "admin")
            },
        )
        tenant = team.tenant
        marketer = Actor(user=team.marketer.user)

        def connection(kind: str, secrets: dict[str, str], *, tenant=tenant, number=number):
            return VendorConnectionFactory(
                tenant=tenant,
                kind=kind,
                name=f"{kind} {number}",
                base_url=sandboxes.url(kind),
                secret_values=secrets,
            )

        brand_name = f"{prefix}-brand-{number}"
        secrets = {"api_key": f"{prefix}-api-{number}", "brand_key": f"{prefix}-brand-key-{number}"}
        sandboxes["optimove_campaigns"].control(
            "add_brand",
            {"brand": brand_name, **secrets, "rate_limit_per_second": 500},
        )
        generator_id = workload.GENERATOR_ID.format(number + (900 if prefix != "chaos" else 0))
        topics = [f"topic-{number}-{index:03d}" for index in range(workload.TOPICS_PER_GENERATOR)]
        topics[-1] = f"{workload.FAILING_TOPIC}-{number}"
        sandboxes["optimove_campaigns"].control(
            "add_event_generator",
            {"brand": brand_name, "event_generator_id": generator_id, "name": "Chaos"},
        )
        generator_create(
            actor=marketer,
            tenant=tenant,
            connection=connection(VendorKind.OPTIMOVE_CAMPAIGNS, secrets),
            external_id=generator_id,
            name=f"{prefix.title()} {number}",
            topics=[(key, key.title()) for key in topics],
            schema=workload.CONTEXT_SCHEMA,
        )
        talkifai = connection(VendorKind.TALKIFAI, SANDBOX_SECRETS["talkifai"])
        job_pks = []
        for job in range(12):
            job_id = f"{prefix}-{number}-{job:02d}"
            sandboxes["talkifai"].control(
                "add_job", {"id": job_id, "status": "pending", "contacts": 10}
            )
            job_pks.append(
                batch_job_register(
                    actor=marketer,
                    tenant=tenant,
                    connection=talkifai,
                    batch_job_id=job_id,
                    name=f"Calls {job_id}",
                ).pk
            )
        daily_tenant = f"{prefix}-daily-{number}"
        daily_key = f"{prefix}-daily-key-{number}"
        sandboxes["optimove_batch"].control(
            "add_key", {"api_key": daily_key, "tenant": daily_tenant}
        )
        connection(VendorKind.OPTIMOVE_BATCH, {"api_key": daily_key})
        altcraft_trigger_id = ALTCRAFT_TRIGGER_ID + number + (900 if prefix != "chaos" else 0)
        sandboxes["altcraft"].control(
            "add_trigger", {"trigger_id": altcraft_trigger_id, "name": f"Chaos {slug}"}
        )
        altcraft = VendorConnectionFactory(
            tenant=tenant,
            kind=VendorKind.ALTCRAFT,
            name=f"altcraft {number}",
            base_url=sandboxes.url("altcraft"),
            secret_values=SANDBOX_SECRETS["altcraft"],
            options={"body_limit_bytes": ALTCRAFT_BODY_LIMIT},
        )
        trigger_register(
            actor=Actor(user=team.admin.user),
            tenant=tenant,
            connection=altcraft,
            trigger_id=altcraft_trigger_id,
            name=f"Chaos cart {number}",
        )

        def token(member, *, tenant=tenant):
            return api_token_create(
                actor=Actor(user=member.user), user=member.user, tenant=tenant, name="proof"
            )[1]

        brands.append(
            workload.Brand(
                slug=slug,
                generator_id=generator_id,
                topic_keys=topics,
                batch_job_pks=job_pks,
                marketer_token=token(team.marketer),
                operator_token=token(team.operator),
                second_operator_token=token(team.second_operator),
                campaigns_brand=brand_name,
                daily_tenant=daily_tenant,
                altcraft_trigger_id=altcraft_trigger_id,
            )
        )
    return brands


def create_schedules(brands, seed: int, *, count: int, within_seconds: float) -> list:
    """Scheduled triggers firing during the proof (the scheduler, under faults, fires each once)."""
    from campaigns.event_generators.models import EventGenerator
    from campaigns.event_generators.services import schedule_create
    from dashboard.audit.trail import Actor
    from dashboard.clock import utc_now
    from dashboard.models import Membership, Role

    created = []
    now = utc_now()
    for index, offset in enumerate(
        workload.schedule_fires(seed, count=count, within_seconds=within_seconds)
    ):
        brand = brands[index % len(brands)]
        generator = EventGenerator.objects.get(tenant__slug=brand.slug)
        marketer = Membership.objects.get(tenant__slug=brand.slug, role=Role.MARKETER).user
        topics = brand.topic_keys[index % 7 : index % 7 + 3]
        created.append(
            schedule_create(
                actor=Actor(user=marketer),
                generator=generator,
                topic_keys=topics,
                context={"ref": f"s{seed}-{index}", "n": len(topics)},
                # The stack starts after this: the first fires come once it is up.
                fire_at=now + offset + timedelta(seconds=STACK_START_SECONDS),
            )
        )
    return created


def terminate_backends(stack: Stack) -> int:
    """pg_terminate_backend of every connection the stack's processes hold (those that come
    through its proxy), mid-transaction or idle; the test process's own are left alone."""
    assert stack.database_proxy is not None
    ports = stack.database_proxy.upstream_ports()
    if not ports:
        return 0
    try:
        with database.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND client_port = ANY(%s)",
                [ports],
            )
            return int(cursor.fetchone()[0])
    finally:
        database.close()  # this thread's connection: the fault thread's, not the test's


def run_proof(
    *,
    seed: int,
    duration: float,
    sandboxes,
    directory: Path,
    database_url: str,
    brands_count: int = 2,
    mean_gap: float = 12.0,
    scale: float = 1.0,
    schedules: int = 12,
) -> Report:
    """Run the proof for `seed` over `duration` seconds of faults; the report of what held."""
    from dashboard.runs.models import Run

    report = Report(seed=seed, duration=duration)
    brands = build_brands(sandboxes, brands_count)
    [fuzz_brand] = build_brands(sandboxes, 1, prefix="fuzz")
    # Every schedule falls due while the faults run, so each fire meets some of them.
    scheduled = create_schedules(
        brands, seed, count=schedules, within_seconds=max(10.0, duration - STACK_START_SECONDS)
    )
    stack = Stack(directory=directory, database_url_direct=database_url, environment={})
    stack.start()
    stack.environment = child_environment(database_url, directory)
    try:
        stack.start_worker()
        stack.start_worker()
        stack.start_beat()
        stack.start_web()
        load = workload.Workload(
            seed=seed,
            brands=brands,
            web_url=stack.web_url,
            threads=4,
            schedules=[(schedule.tenant.slug, schedule.pk) for schedule in scheduled],
        )
        recoveries: list[threading.Thread] = []

        def probe(happened: faults.Happened) -> None:
            """After a fault: how long until a new trigger is sent and settled again."""
            ref = f"probe-{uuid.uuid4().hex[:10]}"
            brand = brands[0]
            intent = workload.Intent(
                "probe",
                brand,
                ref,
                {"topic_keys": [brand.topic_keys[0]], "context": {"ref": ref, "n": 1}},
                f"/api/v1/t/{brand.slug}/event-generators/{brand.generator_id}/run",
                brand.marketer_token,
            )
            load.intents.append(intent)
            started = time.monotonic()
            import requests

            load.send(intent, requests.Session())

            def settled() -> bool:
                try:
                    run = Run.objects.filter(parameters__context__ref=ref).first()
                    return run is not None and (
                        run.state in checker.TERMINAL
                        or (run.state == "outcome_unknown" and run.needs_person)
                    )
                except DatabaseError:
                    database.close()  # reconnect on the next poll
                    return False

            try:
                wait_until(settled, seconds=PROBE_SECONDS, what=f"probe {ref}", interval=0.25)
                happened.recovery_seconds = time.monotonic() - started
            except TimeoutError:
                happened.recovery_seconds = None
            finally:
                database.close()

        def on_fault_over(happened: faults.Happened) -> None:
            thread = threading.Thread(target=probe, args=(happened,), daemon=True)
            thread.start()
            recoveries.append(thread)

        plan = faults.plan(seed, duration=duration, mean_gap=mean_gap, scale=scale)
        runner = faults.FaultRunner(
            stack,
            sandboxes,
            plan,
            terminate_backends=lambda: terminate_backends(stack),
            on_fault_over=on_fault_over,
        )
        fuzzer = fuzz.Fuzzer(
            seed=seed,
            web_url=stack.web_url,
            slug=fuzz_brand.slug,
            token=fuzz_brand.operator_token,
            username=f"{fuzz_brand.slug}-marketer",
            password=PASSWORD,
            generator_id=fuzz_brand.generator_id,
        )
        load.start()
        fuzzer.start()
        runner.start()
        time.sleep(duration)  # the proof's length: faults and load run meanwhile
        runner.stop()
        fuzzer.stop()
        load.stop()
        # The faults stop: every part up again, the vendors well.
        for proxy in (stack.redis_proxy, stack.database_proxy):
            proxy.blocked_until = 0.0
        for sandbox in sandboxes.sandboxes.values():
            sandbox.clear_faults()
        sandboxes["optimove_campaigns"].control("set_rate_limit", {"per_second": 500})
        if not stack.redis.alive():
            stack.start_redis()
        while len(stack.live_workers()) < 2:
            stack.start_worker()
        for extra in stack.live_beats()[1:]:
            extra.kill()
        if not stack.live_beats():
            stack.start_beat()
        if not stack.web.alive():
            stack.start_web()
        settle_started = time.monotonic()
        with contextlib.suppress(TimeoutError):  # the checker reports what did not settle
            wait_until(
                lambda: not checker.open_runs() and not checker.due_schedules(),
                seconds=SETTLE_SECONDS,
                what="every run settled",
                interval=1.0,
            )
        report.figures["settle_seconds"] = round(time.monotonic() - settle_started, 1)
        probes_deadline = time.monotonic() + PROBE_SECONDS
        for thread in recoveries:
            thread.join(timeout=max(0.0, probes_deadline - time.monotonic()))
        found = checker.check(sandboxes, load.intents, scheduled)
        checker.check_metrics(found, stack.web_url, METRICS_TOKEN)
        report.figures["fuzzed_requests"] = dict(fuzzer.sent)
        answered = sum(count for what, count in fuzzer.sent.items() if what.isdigit())
        if not answered:
            found.add("fuzzer_idle", f"the fuzzer got no answer at all: {dict(fuzzer.sent)}")
        for what in fuzzer.server_errors[:10]:
            found.add("server_error", f"bad input answered 500: {what}")
        for problem in fuzz.structural_problems():
            found.add("half_saved", problem)
        report.figures.update(found.figures)
        report.figures["intents"] = dict(load.counts())
        report.figures["intents_unanswered"] = sum(1 for i in load.intents if i.status is None)
        answers = Counter()
        for intent in load.intents:
            answers.update(intent.errors)
        report.figures["retried_answers"] = dict(answers)
        if answers.get("500"):
            # A backing service that cannot be reached is a 503 to retry; a 500 is a defect.
            found.add("server_error", f"{answers['500']} answers were HTTP 500")
        report.figures["faults"] = dict(Counter(h.fault.kind for h in runner.timeline))
        report.figures["recovery_seconds"] = recovery_figures(runner.timeline)
        report.timeline = runner.timeline
        report.violations = found.violations
        report.fault_errors = runner.errors
        run_ids = sorted({pk for v in found.violations for pk in v.run_ids})[:10]
        report.histories = [checker.run_history(pk) for pk in run_ids]
        if not report.ok():
            # Every process's log lines about each violating run (a worker's carry run_id).
            for pk in run_ids:
                for process in [*stack.workers, *stack.beats, stack.web]:
                    lines = process.lines_with(f"run_id={pk}]", f"run_id={pk} ", f"run {pk} ")
                    if lines:
                        report.histories.append(
                            f"--- {process.name} on run #{pk} ---\n" + "\n".join(lines)
                        )
            for process in [*stack.workers, *stack.beats, stack.web]:
                report.histories.append(f"--- {process.name} log tail ---\n{process.tail(30)}")
        return report
    finally:
        stack.stop()


def recovery_figures(timeline: list[faults.Happened]) -> dict[str, list[float]]:
    """min/median/max recovery seconds per fault kind."""
    by_kind: dict[str, list[float]] = {}
    for happened in timeline:
        if happened.recovery_seconds is not None:
            by_kind.setdefault(happened.fault.kind, []).append(happened.recovery_seconds)
    return {
        kind: [round(min(v), 1), round(statistics.median(v), 1), round(max(v), 1)]
        for kind, v in sorted(by_kind.items())
    }
