from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import command_actor
from dashboard.sso import configuration, selectors
from dashboard.sso.sync import sync_identity


class Command(BaseCommand):
    help = (
        "Apply the single sign-on group mappings now, without waiting for logins: for each "
        "person who signed in with SSO, fetch fresh claims from the IdP with their stored refresh "
        "token and add, change or remove their SSO roles; when the IdP refuses (the person was "
        "disabled), remove them. Roles made by hand are left alone. Audited."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", default="", help="Only the person with this email.")

    def handle(self, *args, **options) -> None:
        if not configuration.sso_enabled():
            raise CommandError(
                "Single sign-on is not set up (SSO_OIDC_ISSUER, SSO_OIDC_CLIENT_ID)."
            )
        actor = command_actor("sso_sync")
        failed = 0
        identities = selectors.identities_to_sync(email=options["email"])
        if options["email"] and not identities.exists():
            raise CommandError(f"Nobody with the email {options['email']!r} signed in with SSO.")
        for identity in identities.iterator():
            outcome = sync_identity(identity=identity, actor=actor)
            failed += outcome.outcome == "failed"
            self.stdout.write(f"{outcome.username}: {outcome.outcome} ({outcome.detail})")
        if failed:
            raise CommandError(f"{failed} could not be synced; nothing changed for them.")
