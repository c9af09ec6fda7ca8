import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from dashboard.ops.demo_launcher import run_demo


class Command(BaseCommand):
    help = (
        "Run the demo's sandboxes, demo data, Celery worker and beat, and web server, and stop "
        "all of them on Ctrl-C or SIGTERM. `make demo` calls it after migrating."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--web-port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--demo-dir", type=Path, default=Path(".demo"))
        parser.add_argument(
            "--grace-seconds",
            type=float,
            default=10.0,
            help="How long each process may take to stop before it is killed.",
        )

    def handle(self, *args, **options) -> None:
        status = run_demo(
            web_port=options["web_port"],
            sandbox_port=options["sandbox_port"],
            demo_dir=options["demo_dir"],
            grace_seconds=options["grace_seconds"],
            say=lambda message: (self.stdout.write(message), self.stdout.flush()),
        )
        sys.exit(status)
