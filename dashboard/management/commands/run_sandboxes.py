import contextlib
import signal

from django.core.management.base import BaseCommand

from dashboard.ops.sandboxes import build_sandboxes, prefixes, sandbox_server


class Command(BaseCommand):
    help = (
        "Serve the vendor sandboxes (Optimove TriggerDaily, Optimove campaigns, Altcraft, "
        "TalkifAI) on one loopback port, each under its own path prefix. Never reaches a vendor."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)

    def handle(self, *args, **options) -> None:
        server = sandbox_server(build_sandboxes(), host=options["host"], port=options["port"])
        root = server.url()
        for kind, prefix in prefixes().items():
            self.stdout.write(
                f"{kind:<20} {root}/{prefix}   (state: {root}/{prefix}/__sandbox__/state)"
            )
        self.stdout.write("Serving; Ctrl-C to stop.")
        signal.signal(signal.SIGTERM, _stop)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def _stop(signum: int, frame: object) -> None:
    # Leave serve_forever the same way Ctrl-C does, so `kill` ends the demo cleanly.
    raise KeyboardInterrupt
