from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.input_checks import parse_json_text
from dashboard.management.commands._common import command_actor, read_secret, tenant_by_slug
from dashboard.models import SECRET_FIELDS, VendorKind
from dashboard.tenancy import services


class Command(BaseCommand):
    help = (
        "Add a vendor connection. Secrets are read from environment variables named with "
        "--<secret>-env, or one per line from standard input; never from the command line."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("kind", help=f"One of: {', '.join(VendorKind.values)}")
        parser.add_argument("name")
        parser.add_argument("base_url")
        parser.add_argument("--options", default="{}", help="Non-secret options as a JSON object.")
        parser.add_argument(
            "--key-role",
            default=None,
            help="Optimove batch: ApiRole, TransactionalMail or 3rdParty.",
        )
        for secret in ("api_key", "brand_key", "token"):
            parser.add_argument(
                f"--{secret.replace('_', '-')}-env",
                dest=f"{secret}_env",
                default=None,
                help=f"Environment variable holding the {secret}.",
            )

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        kind = options["kind"]
        if kind not in VendorKind.values:
            raise CommandError(
                f"Unknown vendor kind {kind!r}; choose one of {', '.join(VendorKind.values)}."
            )
        try:
            connection_options = parse_json_text(options["options"], subject="--options")
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None
        if not isinstance(connection_options, dict):
            raise CommandError("--options must be a JSON object.")
        if options["key_role"]:
            connection_options["key_role"] = options["key_role"]
        secrets = {
            name: read_secret(name=name, env_var=options[f"{name}_env"])
            for name in SECRET_FIELDS[kind]
        }
        try:
            connection = services.connection_create(
                actor=command_actor("add_connection"),
                tenant=tenant,
                kind=kind,
                name=options["name"],
                base_url=options["base_url"],
                secrets=secrets,
                options=connection_options,
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Added connection {connection.name} (id {connection.pk}).")
        )
