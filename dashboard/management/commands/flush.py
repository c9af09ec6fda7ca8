"""Django's flush, able to empty the append-only audit tables where that is allowed at all.

The audit tables refuse TRUNCATE by trigger (migration 0005), so the stock flush (which the test
runner uses between transactional tests) fails on them. A superuser may switch triggers off for
its session anyway (session_replication_role = replica), so this does that, for a superuser
only: the app's production login (not a superuser, see docs/security.md) still cannot empty the trail.
"""

from django.core.management.commands.flush import Command as DjangoFlush
from django.db import connections


class Command(DjangoFlush):
    def handle(self, **options):
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = cursor.fetchone()[0]
            if superuser:
                cursor.execute("SET session_replication_role = replica")
        try:
            return super().handle(**options)
        finally:
            if superuser:
                with connection.cursor() as cursor:
                    cursor.execute("SET session_replication_role = origin")
