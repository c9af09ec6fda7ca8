"""History pages at scale: server time of the run history, audit list, daily page and live
fragments on a generated history, side by side with the Django admin's Run changelist; the CSV
export's and verify_audit's time and peak memory.

Usage: .venv/bin/python bench/bench_history.py [--runs 1000000] [--audit 1000000] [--repeat 20]
       [--database-url postgres://postgres@127.0.0.1:5432/td_bench_history] [--skip-export]
       [--skip-verify] [--export-runs 1000000]

The database (default: DATABASE_URL's database with "_bench_history" appended) is created,
migrated and filled with `generate_history` when it holds fewer runs than --runs. Server time
is measured in-process through Django's test client (URL routing, middleware, queries,
template rendering), as the issue measured it. It prints its figures; it asserts nothing.

The CSV export is measured on its own database ("_bench_export" appended), generated the same way
with one tenant holding all --export-runs runs: the goal is the export of a whole tenant's
history (issue 24: ten million runs), and the main history puts 60% of its runs in its largest
tenant. `make bench` (bench/run_all.py) runs it at issue 24's scale: 10,000,000 runs and
10,000,000 audit events, and an export of 10,000,000 runs.
Goals: p95 <= 50 ms per page and fragment; run history >= 10x faster than the admin changelist;
the export streaming in flat memory (its growth over the process before it is printed);
verify_audit --full <= 12 s per million events (120 s for ten million) and <= 150 MB.

Each headline figure is also printed on a `FIGURE <name> <value>` line, which bench/run_all.py
(`--only history`) summarises over its runs: the worst p95 of each group of pages (first page,
10,000 rows deep, filters, live fragments...), the admin's time over ours, the export's and
verify_audit's time and peak RSS, and how many rows were measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from stack import print_figure

ROOT = Path(__file__).resolve().parent.parent
GOAL_P95_MS = 50.0
GOAL_ADMIN_RATIO = 10.0
GOAL_RSS_MB = 150.0
GOAL_VERIFY_SECONDS_PER_MILLION = 12.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def bench_database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/td")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_bench_history"))


def export_database_url(history_url: str) -> str:
    parts = urlsplit(history_url)
    return urlunsplit(
        parts._replace(path=parts.path.removesuffix("_bench_history") + "_bench_export")
    )


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


# Peak RSS is read from the child's own VmHWM, not getrusage's ru_maxrss: Linux carries the
# parent's RSS at the fork into the child's ru_maxrss across exec, so every child of this
# (100+ MB) process reported at least that, whatever it did itself.
PEAK_RSS = """
def peak_rss_kb(field="VmHWM"):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
"""

MANAGE_CHILD = (
    PEAK_RSS
    + """
import resource, runpy, sys
sys.argv = ["manage.py", *sys.argv[1:]]
try:
    runpy.run_path("manage.py", run_name="__main__")
finally:
    print("PEAK_RSS_KB", peak_rss_kb())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("CPU_SECONDS", usage.ru_utime + usage.ru_stime)
"""
)


def manage(env: dict, *arguments: str, check: bool = True) -> tuple[float, float, str]:
    """Run manage.py in a child; (seconds, that child's peak RSS in MB, its output, whose last
    line is its own CPU time: "CPU_SECONDS n").

    With `check`, a failing command ends the benchmark: figures measured on a half-generated
    history would be figures of something else.
    """
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", MANAGE_CHILD, *arguments],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if result.returncode:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
        if check:
            sys.exit(f"manage.py {arguments[0]} failed (exit {result.returncode})")
    peak = 0.0
    lines = []
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("PEAK_RSS_KB"):
            peak = int(line.split()[1]) / 1024
        elif not line.startswith("CPU_SECONDS"):
            lines.append(line)
    lines += [line for line in result.stdout.splitlines() if line.startswith("CPU_SECONDS")]
    return seconds, peak, "\n".join(lines)


EXPORT_CHILD = (
    PEAK_RSS
    + """
import os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.project.settings")
django.setup()
from django.test import Client
from django.contrib.auth import get_user_model
client = Client()
client.force_login(get_user_model().objects.get(username=sys.argv[2]))
client.get(f"/t/{sys.argv[1]}/runs/?state=draft")  # the views and templates loaded
before = peak_rss_kb("VmRSS") / 1024
started = time.monotonic()
response = client.get(f"/t/{sys.argv[1]}/runs/export.csv")
first = None
lines = 0
size = 0
for chunk in response.streaming_content:
    if first is None:
        first = time.monotonic() - started
    lines += 1
    size += len(chunk)
total = time.monotonic() - started
peak = peak_rss_kb() / 1024
print(f"{lines - 1} {size} {first:.3f} {total:.1f} {peak:.1f} {before:.1f}")
"""
)


EXPORT_TENANT = "export"
EXPORT_USER = "export-admin-0"  # generate_history's first member of the tenant (its admin)

COUNT_CHILD = """
import os, sys, django
django.setup()
from dashboard.runs.models import Run
print(Run.objects.filter(tenant__slug=sys.argv[1]).count())
"""


def prepare_export_database(env: dict, runs: int) -> tuple[str, str]:
    """The export's database, migrated, with one tenant holding `runs` runs (generated once,
    then reused); (tenant slug, username of its admin)."""
    ensure_database(env["DATABASE_URL"])
    manage(env, "migrate", "--noinput")
    counted = subprocess.run(
        [sys.executable, "-c", COUNT_CHILD, EXPORT_TENANT],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    present = int(counted.stdout.strip().splitlines()[-1])
    if present < runs:
        if present:
            sys.exit(
                f"The export database holds {present} runs of tenant {EXPORT_TENANT!r}, not "
                f"{runs}: drop it ({env['DATABASE_URL']}) and run again."
            )
        seconds, _, output = manage(
            env, "generate_history", "--runs", str(runs), "--audit", "0",
            "--tenant", EXPORT_TENANT, "--tenants", "1",
        )  # fmt: skip
        print(output.strip().splitlines()[0] if output.strip() else "")
        print(f"generate_history (export database): {runs} runs in {seconds:.0f} s")
    return EXPORT_TENANT, EXPORT_USER


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--database-url")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--export-runs", type=int, default=1_000_000)
    args = parser.parse_args()

    url = bench_database_url(args.database_url)
    ensure_database(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        # The production settings with static files served from the app folders, as the other
        # benchmarks run them: a fresh checkout has run no collectstatic, and production's
        # manifest storage refuses to name a file it has not collected.
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
        "ALLOWED_HOSTS": "testserver,localhost",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-history-not-secret"),
    }
    if not env.get("CREDENTIALS_KEYS"):
        from cryptography.fernet import Fernet

        env["CREDENTIALS_KEYS"] = Fernet.generate_key().decode()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))

    seconds, _, _ = manage(env, "migrate", "--noinput")
    import django

    django.setup()
    # As a web worker starts (dashboard/project/gunicorn_conf.py's post_worker_init): the
    # startup heap frozen out of the garbage collector's generations.
    import gc

    gc.freeze()
    import logging

    # One INFO line per request (the request log, axes) would bury the figures.
    logging.disable(logging.INFO)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from dashboard.models import Membership, Role, Tenant
    from dashboard.runs.models import Run
    from dashboard.tenancy.history import Cursor

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'dashboard_run'")
        present = max(0, cursor.fetchone()[0])
    if present < args.runs * 0.95:
        seconds, peak, output = manage(
            env, "generate_history", "--runs", str(args.runs - present), "--audit",
            str(args.audit), "--tenant", args.tenant,
        )  # fmt: skip
        print(output.strip())
        print(f"generate_history: {args.runs - present} runs in {seconds:.0f} s")
    tenant = Tenant.objects.get(slug=args.tenant)
    total_runs = Run.objects.count()
    tenant_runs = Run.objects.filter(tenant=tenant).count()
    print(f"\ndatabase: {total_runs} runs in all, {tenant_runs} in tenant {tenant.slug}")
    print_figure("runs_measured", total_runs)
    print_figure("runs_in_tenant", tenant_runs)

    admin_membership = Membership.objects.filter(tenant=tenant, role=Role.ADMIN).first()
    user = admin_membership.user
    superuser, _ = get_user_model().objects.get_or_create(
        username="bench-superuser", defaults={"is_staff": True, "is_superuser": True}
    )
    client, admin_client = Client(), Client()
    client.force_login(user)
    admin_client.force_login(superuser)

    cpu_times: dict[str, list[float]] = {}

    def timed(client_, path, repeat=args.repeat, warm=True, **headers) -> list[float]:
        """Server times in ms; this process's CPU times go to cpu_times[path] (on a loaded
        machine, wall time includes waiting for a core; CPU time is the work itself)."""
        if warm:
            client_.get(path, **headers)  # warm the caches once
        times = []
        for _ in range(repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client_.get(path, **headers)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
            times.append((time.perf_counter() - started) * 1000)
            cpu_times.setdefault(path, []).append((time.process_time() - cpu_started) * 1000)
            assert response.status_code in (200, 286), (path, response.status_code)
        return times

    base = f"/t/{tenant.slug}"
    deep = Run.objects.filter(tenant=tenant).order_by("-created_at", "-id")[10_000]
    deep_cursor = Cursor(deep.created_at, deep.pk).encode()
    sample = Run.objects.filter(tenant=tenant).exclude(vendor_reference="").first()
    requester = Membership.objects.filter(tenant=tenant, role=Role.MARKETER).first().user
    approver = Membership.objects.filter(tenant=tenant, role=Role.OPERATOR).first().user
    connection_id = sample.connection_id
    from dashboard.models import AuditEvent

    deep_event = AuditEvent.objects.filter(tenant=tenant).order_by("-created_at", "-id")[10_000]
    deep_audit = Cursor(deep_event.created_at, deep_event.pk).encode()
    open_run = Run.objects.filter(tenant=tenant, state="accepted").first() or sample
    # (figure group, page, path, headers): each group's worst p95 is one FIGURE line.
    pages = [
        ("runs_first_page", "run history, first page", f"{base}/runs/", {}),
        ("runs_deep_page", "run history, 10,000 rows deep", f"{base}/runs/?after={deep_cursor}", {}),
        ("runs_filters_worst", "run history, state=failed", f"{base}/runs/?state=failed", {}),
        ("runs_filters_worst", "run history, operation", f"{base}/runs/?operation={sample.operation}", {}),
        ("runs_filters_worst", "run history, connection", f"{base}/runs/?connection={connection_id}", {}),
        ("runs_filters_worst", "run history, requester", f"{base}/runs/?requester={requester.pk}", {}),
        ("runs_filters_worst", "run history, approver", f"{base}/runs/?approver={approver.pk}", {}),
        ("runs_filters_worst", "run history, date range", f"{base}/runs/?created_from=2000-01-01&created_to=2100-01-01", {}),
        ("runs_filters_worst", "run history, vendor id", f"{base}/runs/?vendor_reference={sample.vendor_reference}", {}),
        ("runs_filters_worst", "run history, matches nothing", f"{base}/runs/?state=draft", {}),
        ("live_fragments_worst", "run history, live fragment", f"{base}/runs/", {"HTTP_HX_REQUEST": "true"}),
        ("audit_first_page", "audit list, first page", f"{base}/audit/", {}),
        ("audit_deep_page", "audit list, 10,000 rows deep", f"{base}/audit/?after={deep_audit}", {}),
        ("audit_filters_worst", "audit list, actor", f"{base}/audit/?actor={requester.username}", {}),
        ("audit_filters_worst", "audit list, action prefix run.", f"{base}/audit/?action=run.", {}),
        ("audit_filters_worst", "audit list, action exact", f"{base}/audit/?action=run.approved", {}),
        ("audit_filters_worst", "audit list, object", f"{base}/audit/?object_type=run&object_id={sample.pk}", {}),
        ("audit_filters_worst", "audit list, date range", f"{base}/audit/?created_from=2000-01-01&created_to=2100-01-01", {}),
        ("daily_page", "daily page", f"{base}/batch/daily/", {}),
        ("live_fragments_worst", "daily page, live fragment", f"{base}/batch/daily/", {"HTTP_HX_REQUEST": "true"}),
        ("run_page", "run page", f"{base}/runs/{open_run.pk}/", {}),
        ("live_fragments_worst", "run page, live fragment", f"{base}/runs/{open_run.pk}/", {"HTTP_HX_REQUEST": "true"}),
        ("overview", "overview", f"{base}/", {}),
    ]  # fmt: skip
    print(f"\nserver time per request, ms ({args.repeat} requests each; goal p95 <= 50 ms)")
    print("(cpu: this process's CPU time per request, median; the database's is not in it)")
    print(f"{'page':40} {'median':>8} {'p95':>8} {'max':>8} {'p95/goal':>9} {'cpu':>6}")
    worst_p95: dict[str, float] = {}
    worst_cpu = 0.0
    for group, name, path, headers in pages:
        cpu_times.pop(path, None)
        times = timed(client, path, **headers)
        p95 = percentile(times, 0.95)
        cpu = percentile(cpu_times[path], 0.5)
        worst_p95[group] = max(worst_p95.get(group, 0.0), p95)
        worst_cpu = max(worst_cpu, cpu)
        print(
            f"{name:40} {percentile(times, 0.5):8.1f} {p95:8.1f} {max(times):8.1f} "
            f"{p95 / GOAL_P95_MS:9.2f} {cpu:6.1f}"
        )
    for group, p95 in worst_p95.items():
        print_figure(f"{group}_p95_ms", p95)
    print_figure("all_pages_worst_p95_ms", max(worst_p95.values()))
    print_figure("all_pages_worst_cpu_median_ms", worst_cpu)

    print("\nside by side with the Django admin changelist of Run (same tenant)")
    admin_page = max(1, min(100, tenant_runs // 100 - 1))  # 100 rows a page: 10,000 deep
    admin_first_path = f"/admin/dashboard/run/?tenant__id__exact={tenant.pk}"
    admin_deep_path = f"{admin_first_path}&p={admin_page}"
    # Interleaved, one request of each in turn, so both see the same load on a shared machine.
    admin_times, admin_deep, ours_times, ours_deep_times = [], [], [], []
    for turn in range(8):
        warm = turn == 0
        admin_times += timed(admin_client, admin_first_path, repeat=1, warm=warm)
        ours_times += timed(client, f"{base}/runs/", repeat=1, warm=warm)
        admin_deep += timed(admin_client, admin_deep_path, repeat=1, warm=warm)
        ours_deep_times += timed(client, f"{base}/runs/?after={deep_cursor}", repeat=1, warm=warm)
    ours = percentile(ours_times, 0.5)
    ours_deep = percentile(ours_deep_times, 0.5)
    print(
        f"admin changelist first page: median {percentile(admin_times, 0.5):.1f} ms; run history "
        f"{ours:.1f} ms; ratio {percentile(admin_times, 0.5) / ours:.1f}x (goal >= 10x)"
    )
    print(
        f"admin changelist page {admin_page}: median {percentile(admin_deep, 0.5):.1f} ms; run history "
        f"10,000 deep {ours_deep:.1f} ms; ratio {percentile(admin_deep, 0.5) / ours_deep:.1f}x"
    )
    print_figure("admin_first_page_median_ms", percentile(admin_times, 0.5))
    print_figure("admin_over_history_ratio", percentile(admin_times, 0.5) / ours)
    print_figure("admin_over_history_deep_ratio", percentile(admin_deep, 0.5) / ours_deep)

    failed: list[str] = []
    if not args.skip_export:
        export_env = {**env, "DATABASE_URL": export_database_url(url)}
        export_tenant, export_user = prepare_export_database(export_env, args.export_runs)
        result = subprocess.run(
            [sys.executable, "-c", EXPORT_CHILD, export_tenant, export_user],
            env=export_env, capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if result.returncode:
            print(result.stderr[-2000:], file=sys.stderr)
            failed.append("CSV export")
        else:
            rows, size, first, total, peak, before = result.stdout.split()[-6:]
            print(
                f"\nCSV export: {rows} runs, {int(size) / 1e6:.0f} MB, first byte {first} s, "
                f"all in {total} s, peak RSS {peak} MB ({float(peak) / GOAL_RSS_MB:.2f} of 150 MB);"
                f" the same process before the export (Django loaded, one page served): {before} MB"
            )
            print_figure("csv_export_rows", int(rows))
            print_figure("csv_export_peak_rss_mb", float(peak))
            print_figure("csv_export_first_byte_s", float(first))
            print_figure("csv_export_total_s", float(total))
            print_figure("csv_export_rss_growth_mb", float(peak) - float(before))

    if not args.skip_verify:
        # What any manage.py process of the project peaks at doing next to nothing: the part of
        # verify_audit's peak that is not verify_audit's.
        _, baseline, _ = manage(env, "check", check=False)
        print_figure("manage_py_baseline_rss_mb", baseline)
        events = AuditEvent.objects.count()
        seconds, peak, output = manage(env, "verify_audit", "--full", check=False)
        *output_lines, cpu_line = output.strip().splitlines() or ["CPU_SECONDS 0"]
        cpu_seconds = float(cpu_line.split()[1])
        last_line = output_lines[-1] if output_lines else "(no output)"
        print(
            f"\nverify_audit --full: {events} events in {seconds:.1f} s "
            f"({seconds / events * 1e6:.1f} s per million, goal {GOAL_VERIFY_SECONDS_PER_MILLION}); "
            f"its own CPU {cpu_seconds:.1f} s (the rest: waiting for the database or a core); "
            f"peak RSS {peak:.0f} MB ({peak / GOAL_RSS_MB:.2f} of 150 MB; manage.py check: "
            f"{baseline:.0f} MB); {last_line}"
        )
        if "Audit trail intact" not in output:
            failed.append("verify_audit --full (the generated chain did not verify)")
        else:
            print_figure("audit_events_verified", events)
            print_figure("verify_audit_seconds", seconds)
            print_figure("verify_audit_seconds_per_million", seconds / events * 1e6)
            print_figure("verify_audit_cpu_seconds", cpu_seconds)
            print_figure("verify_audit_peak_rss_mb", peak)
        seconds, _, output = manage(env, "verify_audit", check=False)
        print(f"verify_audit (incremental, nothing new): {seconds:.1f} s")
    if failed:
        print(f"\nnot measured: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
