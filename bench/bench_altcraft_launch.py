"""Altcraft bulk launch of a large list: upload through the web process, preview, confirm, send.

    .venv/bin/python bench/bench_altcraft_launch.py [--recipients 1000000] [--limit 10000000]

Generates a CSV of N recipients (about 45 bytes a line: 1,000,000 make ~45 MB), logs in to a
gunicorn web process (one sync worker, production settings) and uploads it as a browser does
(multipart, streamed from disk), which stores it encrypted; one worker process (prefork, one
child) reads it into chunks (the preview, task altcraft.prepare_launch); confirms; the same
worker sends the chunks to the Altcraft sandbox. Prints, without asserting:

- requests used ÷ ceil(bytes sent ÷ body limit) (goal ≤ 1.05), and the largest request in bytes
  (must be ≤ the limit);
- peak RSS (VmHWM) of the web process during the upload and of the worker during the preview
  and the send (goal ≤ 200 MB each);
- upload + preview time, send time and the send's MB/s, against the sandbox's own receiving
  rate (the same bodies posted straight to it, no TriggerDesk in between).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import stack as bench

bench.BENCH_DATABASE = "triggerdesk_bench_altcraft"  # not the other benchmarks' database
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user of a throwaway database


def write_csv(path: Path, count: int) -> int:
    with path.open("w", encoding="utf-8") as file:
        file.write("email\n")
        for index in range(count):
            file.write(f"firstname.lastname.{index:07d}@example-mail.com\n")
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pids: list[int]) -> float:
    """The largest VmHWM (peak resident set) among `pids`, in MB."""
    peak = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                peak = max(peak, int(match.group(1)))
    return peak / 1024


def group_pids(group: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == group:
                    pids.append(int(entry.name))
    return pids


class MultipartFile:
    """A multipart/form-data body streamed from disk, with its length (no chunked encoding)."""

    def __init__(self, fields: dict[str, str], path: Path) -> None:
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
            for name, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        self.parts = [head, path, f"\r\n--{self.boundary}--\r\n".encode()]
        self.length = len(head) + path.stat().st_size + len(self.parts[2])
        self.file = None
        self.index = 0

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        while self.index < len(self.parts):
            part = self.parts[self.index]
            if isinstance(part, bytes):
                self.index += 1
                return part
            if self.file is None:
                self.file = part.open("rb")
            data = self.file.read(size if size and size > 0 else 1024 * 1024)
            if data:
                return data
            self.file.close()
            self.index += 1
        return b""


def sandbox_rate(url: str, bodies: list[bytes]) -> float:
    """MB/s of the sandbox receiving these bodies straight from one client."""
    session = requests.Session()
    started = time.monotonic()
    for body in bodies:
        session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    return sum(map(len, bodies)) / 1e6 / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=10_000_000, help="Body limit in bytes.")
    arguments = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="triggerdesk-bench-altcraft-"))
    os.environ["ALTCRAFT_UPLOAD_DIR"] = str(tmp / "uploads")
    os.environ["ALTCRAFT_UPLOAD_MAX_BYTES"] = str(2 * 1024**3)
    csv_path = tmp / "recipients.csv"
    csv_bytes = write_csv(csv_path, arguments.recipients)
    print(f"{arguments.recipients:,} recipients, CSV {csv_bytes / 1e6:.1f} MB")

    web = None
    with bench.bench_stack(pool="prefork", concurrency=1, workers=1) as stack:
        from campaigns.altcraft_launches import services
        from campaigns.altcraft_launches.models import AltcraftLaunch
        from dashboard.models import Role
        from dashboard.runs.states import RunState
        from dashboard.tenancy.services import membership_add, user_create

        user = user_create(username="bench-web", password=PASSWORD)
        membership_add(actor=stack.actor, tenant=stack.tenant, user=user, role=Role.OPERATOR)
        connection = stack.connection("altcraft", body_limit_bytes=arguments.limit)
        stack.sandboxes["altcraft"].control("set_body_limit", {"bytes": arguments.limit})
        # Every recipient is a known profile, so each answer lists one id per recipient (about
        # 180,000 per 10 MB chunk of these addresses), as Altcraft answers for a real audience.
        stack.sandboxes["altcraft"].control("set_match_every_item", {"enabled": True})
        trigger = services.trigger_register(
            actor=stack.actor, tenant=stack.tenant, connection=connection, trigger_id=8, name="Cart"
        )
        port = free_port()
        web = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "dashboard.project.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--timeout",
                "900",
            ],
            cwd=bench.REPO,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        for _ in range(100):
            with contextlib.suppress(requests.ConnectionError):
                session.get(f"{base}/login/", timeout=5)
                break
            time.sleep(0.2)
        session.post(
            f"{base}/login/",
            data={
                "username": "bench-web",
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/login/"},
        )
        new_url = f"{base}/t/{stack.tenant.slug}/campaigns/altcraft/launches/new/?kind=start_batch"
        session.get(new_url)
        web_pids = group_pids(web.pid)
        baseline = peak_rss_mb(web_pids)
        body = MultipartFile(
            {
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
                "idempotency_key": uuid.uuid4().hex,
                "trigger": str(trigger.pk),
                "matching": "email",
                "kind": "start_batch",
            },
            csv_path,
        )
        started = time.monotonic()
        answer = session.post(
            new_url,
            data=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={body.boundary}",
                "Referer": new_url,
            },
            timeout=1800,
        )
        web_peak = peak_rss_mb(group_pids(web.pid))
        launch = AltcraftLaunch.objects.order_by("-pk").first()
        deadline = time.monotonic() + 1800
        while launch is not None and launch.state == "uploaded" and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker reads the file (the preview)
            launch.refresh_from_db()
        upload_seconds = time.monotonic() - started
        if launch is None or launch.state != "previewed":
            print(f"upload failed: HTTP {answer.status_code}; {launch and launch.problem}")
            return 1
        chunk_count = launch.chunks.count()
        print(
            f"upload + preview: {upload_seconds:.1f} s ({csv_bytes / 1e6 / upload_seconds:.1f} MB/s)"
            f"; {launch.rows_valid:,} rows in {chunk_count} requests"
        )

        started = time.monotonic()
        from dashboard.audit.trail import Actor

        # Only the uploader confirms an upload (four eyes compare the approver with them).
        uploader = Actor(user=user)
        services.launch_confirm(actor=uploader, launch=launch, sha256_seen=launch.source_sha256)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            states = list(launch.chunks.values_list("run__state", flat=True))
            if all(state in (RunState.SUCCEEDED, RunState.FAILED) for state in states):
                break
            time.sleep(0.2)
        send_seconds = time.monotonic() - started
        worker_peak = max(peak_rss_mb(group_pids(worker.process.pid)) for worker in stack.workers)
        altcraft = stack.sandboxes["altcraft"]
        received = [r for r in altcraft.received_on("start_batch") if r.processed]
        sizes = [len(r.body.encode()) for r in received]
        sent = sum(sizes)
        minimum = math.ceil(sent / arguments.limit)
        succeeded = states.count(RunState.SUCCEEDED)
        rate = sent / 1e6 / send_seconds
        sample = [received[0].body.encode()] * min(3, len(received))
        sandbox_mb_s = sandbox_rate(
            stack.url("altcraft") + "/api/v1.1/campaigns/triggers/start_batch", sample
        )
        print(f"requests: {len(received)} (succeeded runs {succeeded}/{chunk_count})")
        print(
            f"requests ÷ ceil(bytes ÷ limit): {len(received)} ÷ {minimum} = "
            f"{len(received) / minimum:.3f} (goal ≤ 1.05)"
        )
        print(
            f"largest request: {max(sizes):,} bytes; limit {arguments.limit:,} "
            f"({max(sizes) / arguments.limit:.4f} of it)"
        )
        print(
            f"web process peak RSS: {web_peak:.0f} MB (before the upload {baseline:.0f} MB; "
            f"goal ≤ 200, {web_peak / 200:.2f} of it)"
        )
        print(f"worker peak RSS: {worker_peak:.0f} MB (goal ≤ 200, {worker_peak / 200:.2f} of it)")
        print(
            f"send: {send_seconds:.1f} s, {rate:.1f} MB/s; the sandbox alone receives "
            f"{sandbox_mb_s:.1f} MB/s ({rate / sandbox_mb_s:.2f} of it)"
        )
        bench.print_figure("requests_over_minimum", len(received) / minimum)
        bench.print_figure("largest_request_over_limit", max(sizes) / arguments.limit)
        bench.print_figure("web_peak_rss_mb", web_peak)
        bench.print_figure("worker_peak_rss_mb", worker_peak)
        bench.print_figure("upload_preview_seconds", upload_seconds)
        bench.print_figure("send_mb_per_s", rate)
        bench.print_figure("send_over_sandbox_rate", rate / sandbox_mb_s)
    if web is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(web.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
