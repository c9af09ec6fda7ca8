from django.core.management.base import BaseCommand, CommandError

from dashboard.audit.trail import audit_verify


class Command(BaseCommand):
    help = (
        "Walk every audit chain (from its last good checkpoint, or from the start with --full), "
        "name the first row that was altered or removed, report a trail shorter than what "
        "happened, and record the result (shown on the audit page)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="Re-read every chain from its first row instead of resuming from the checkpoint.",
        )

    def handle(self, *args, full: bool = False, **options) -> None:
        report = audit_verify(full=full)
        if report.problems:
            for problem in report.problems:
                self.stderr.write(f"TAMPERED: {problem}")
            raise CommandError(f"{len(report.problems)} audit finding(s); see above.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit trail intact: {report.events_checked} events verified "
                f"({'full' if full else 'since the last checkpoint'}) in {report.chains} chain(s)."
            )
        )
