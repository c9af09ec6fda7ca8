"""The recurring schedules' calendar at scale: server time of the tenant calendar (week and
month) with 1,000 recurring schedules.

Usage: .venv/bin/python bench/bench_calendar.py [--schedules 1000] [--repeat 30]

Creates its own database `<DATABASE_URL's database>_bench_calendar`, migrates it, creates one
tenant with an Optimove campaigns connection (a blackout date on it), an event generator and
`--schedules` enabled recurring schedules, and drops the database at the end. The rules vary
(minute, hour, weekdays and zone differ from one schedule to the next: 720 distinct rules per
thousand, the calendar's worst case, since it computes fires once per distinct rule and zone).
Server time is measured in-process through Django's test client (URL routing, middleware,
queries, template rendering), after one warm-up request per view, this week and this month and
the following ones in turn. It prints min / median / p95 / max per view, the p95 over the
200 ms budget, and `FIGURE` lines for bench/run_all.py (`--only calendar`); it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from stack import (
    DEFAULT_DATABASE_URL,
    _drop_database,
    _recreate_database,
    _with_database,
    bench_database_name,
    median,
    percentile,
    print_figure,
)

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 200.0
ZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo", "UTC")
WEEKDAYS = ("*", "1-5", "1,3,5", "0,6", "2")


def cron_of(index: int) -> tuple[str, str]:
    """The rule and zone of schedule `index`: minutes, hours, weekdays and zones vary."""
    minute = (index * 7) % 60
    hour = 6 + index % 12
    weekdays = WEEKDAYS[index % len(WEEKDAYS)]
    return f"{minute} {hour} * * {weekdays}", ZONES[index % len(ZONES)]


def populate(schedules: int) -> str:
    """One tenant (its slug) with an admin, a connection with a blackout date, a generator and
    `schedules` enabled recurring schedules (bulk-created: creating is not what is measured)."""
    from django.contrib.auth import get_user_model

    from campaigns.event_generators.models import EventGenerator
    from dashboard.clock import utc_now
    from dashboard.models import Membership, Role, Tenant, VendorConnection, VendorKind
    from dashboard.recurring import cron
    from dashboard.recurring.models import RecurringSchedule
    from dashboard.send_windows.models import BlackoutDate

    tenant = Tenant.objects.create(name="Calendar bench", slug="calendar")
    user = get_user_model().objects.create_user(username="calendar-admin", password="x" * 20)
    Membership.objects.create(user=user, tenant=tenant, role=Role.ADMIN)
    connection = VendorConnection.objects.create(
        tenant=tenant,
        kind=VendorKind.OPTIMOVE_CAMPAIGNS,
        name="Optimove",
        base_url="https://api.example.com",
    )
    BlackoutDate.objects.create(
        connection=connection, day=(utc_now() + timedelta(days=2)).date(), reason="Holiday"
    )
    generator = EventGenerator.objects.create(
        tenant=tenant, connection=connection, external_id="bench", name="Bench generator"
    )
    now = utc_now()
    rows = []
    for index in range(schedules):
        expression, zone = cron_of(index)
        rule = cron.rule_check(expression=expression, time_zone=zone, now=now)
        rows.append(
            RecurringSchedule(
                tenant=tenant,
                name=f"Schedule {index:04d}",
                target_kind="event_generator",
                parameters={"generator": generator.pk, "topics": ["t"], "context": {}},
                target_label=f"Event generator {generator.name}, topics t",
                connection=connection,
                cron=rule.expression,
                time_zone=zone,
                next_fire_at=rule.next_after(now),
                created_by=user,
                created_by_label=user.username,
                requested_by=user,
                requested_by_label=user.username,
            )
        )
    RecurringSchedule.objects.bulk_create(rows, batch_size=500)
    return tenant.slug


def measure(client, url: str, repeat: int) -> tuple[list[float], list[float]]:
    """(server times, CPU times of this process) per request, in milliseconds."""
    client.get(url)  # warm-up: templates and rules parsed
    timings, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if response.status_code != 200:
            sys.exit(f"{url} answered {response.status_code}")
    return timings, cpu


def report(name: str, timings: list[float], cpu: list[float], fires: int) -> None:
    p95 = percentile(timings, 0.95)
    print(
        f"{name}: {fires:,} fires shown or counted; server time min {min(timings):.0f} ms, "
        f"median {median(timings):.0f} ms, p95 {p95:.0f} ms, max {max(timings):.0f} ms; "
        f"p95 / {BUDGET_MS:.0f} ms budget = {p95 / BUDGET_MS:.2f}; this process's CPU "
        f"time median {median(cpu):.0f} ms, p95 {percentile(cpu, 0.95):.0f} ms "
        f"(load-independent; load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    print_figure(f"calendar_{name}_p95_ms", p95)
    print_figure(f"calendar_{name}_budget_ratio", p95 / BUDGET_MS)
    print_figure(f"calendar_{name}_cpu_p95_ms", percentile(cpu, 0.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--profile", action="store_true", help="Print where one month request spends its time."
    )
    options = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    name = bench_database_name(base_url) + "_calendar"
    url = _with_database(base_url, name)
    _recreate_database(base_url, name)
    try:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            # The production settings with static files served from the app folders, as the
            # other benchmarks run them (no collectstatic).
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
            "ALLOWED_HOSTS": "testserver,localhost",
            "DJANGO_DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-calendar-not-secret"),
            "LOG_LEVEL": "WARNING",
        }
        if not env.get("CREDENTIALS_KEYS"):
            from cryptography.fernet import Fernet

            env["CREDENTIALS_KEYS"] = Fernet.generate_key().decode()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.test import Client

        from dashboard.recurring.selectors import tenant_calendar

        slug = populate(options.schedules)
        client = Client()
        client.force_login(get_user_model().objects.get(username="calendar-admin"))
        from dashboard.models import Tenant

        tenant = Tenant.objects.get(slug=slug)
        print(
            f"{options.schedules:,} recurring schedules of one tenant; {options.repeat} requests a view"
        )
        if options.profile:
            import cProfile
            import pstats

            url = f"/t/{slug}/recurring/calendar/?view=month&zone=Europe/Berlin"
            client.get(url)
            profiler = cProfile.Profile()
            profiler.runcall(client.get, url)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        for view in ("week", "month"):
            fires = tenant_calendar(tenant=tenant, view=view, zone_name="Europe/Berlin").total
            timings, cpu = measure(
                client,
                f"/t/{slug}/recurring/calendar/?view={view}&zone=Europe/Berlin",
                options.repeat,
            )
            report(view, timings, cpu, fires)
    finally:
        from django.db import connections

        connections.close_all()
        _drop_database(base_url, name)


if __name__ == "__main__":
    main()
