"""The run operation of an Optimove event generator run (the engine's adapter)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.utils.translation import gettext

from campaigns.vendors.optimove_campaigns.access import (
    optimove_brand_rate_rule,
    optimove_campaigns_client,
)
from campaigns.vendors.optimove_campaigns.client import (
    ExecutionNotFound,
    check_context,
    check_event_generator_id,
    check_topic_key,
)
from dashboard.approval_policies.evaluation import ApprovalFacts
from dashboard.models import VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import (
    ConnectionCheck,
    PollResult,
    RateRule,
    RunOperation,
    SendResult,
    register_operation,
)
from dashboard.vendors.http import ConfigurationError, VendorError

# The execution a connection test reads: an id no run returns, so Optimove answers 404 once it
# has accepted both keys (the doc's 401 and 403 come first; a status read changes nothing).
CONNECTION_TEST_EXECUTION_ID = "triggerdesk-connection-test"


class RunEventGeneratorOperation(RunOperation):
    name = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
    vendor_kind = VendorKind.OPTIMOVE_CAMPAIGNS
    polls = True
    # The vendor's docs: "500 Internal Server Error - Retry with exponential backoff".
    retry_server_errors = True
    max_send_seconds = 90.0
    poll_deadline_seconds = 2 * 3600
    # Thousands of these may go out at once against 500 requests/s per brand: one task claims,
    # sends and records a hundred at a time (dashboard.runs.dispatch).
    batch_size = 100

    def check_connection(
        self, connection: VendorConnection, secrets: dict[str, str]
    ) -> ConnectionCheck:
        """Read an unknown execution's status (Get Execution Status): 404 proves both keys."""
        host = urlsplit(connection.base_url).hostname or connection.base_url
        try:
            optimove_campaigns_client(connection, secrets).execution_status(
                CONNECTION_TEST_EXECUTION_ID
            )
        except KeyError:
            return ConnectionCheck(
                False, "The connection's API key or brand key is not set; nothing was sent."
            )
        except ConfigurationError as error:
            return ConnectionCheck(False, f"Not tried: {error}")
        except ExecutionNotFound:
            pass
        except VendorError as error:
            return ConnectionCheck(
                False, f"Tried to read an execution's status at {host}: {error.message}"
            )
        return ConnectionCheck(
            True,
            f"Reached {host} and read an execution's status (Get Execution Status): API key "
            "and brand key accepted.",
        )

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        cleaned = {
            "event_generator_id": str(parameters.get("event_generator_id") or "").strip(),
            "topic_key": parameters.get("topic_key"),
            "context": parameters.get("context"),
        }
        for field, check in (
            ("event_generator_id", check_event_generator_id),
            ("topic_key", check_topic_key),
            ("context", check_context),
        ):
            try:
                check(cleaned[field])
            except ConfigurationError as error:
                raise ValidationError({field: str(error)}) from None
        return cleaned

    def describe(self, parameters: dict[str, Any]) -> str:
        return gettext("Event generator %(generator_id)s → topic %(topic_key)s") % {
            "generator_id": parameters["event_generator_id"],
            "topic_key": parameters["topic_key"],
        }

    def titles(self, runs: list[Run]) -> list[str]:
        """ "<generator's name> → <topic's name>", from the generator registered for the runs'
        connection and its topics (two queries for a whole trigger group); an id stands in for
        a name the tenant never registered."""
        if not runs:
            return []
        # Here, not at the top: the engine looks operations up without loading the campaigns.
        from campaigns.event_generators.models import EventGenerator, Topic

        # External ids are unique per tenant whatever their case (a UUID typed either way).
        generators = {
            generator.lowered_id: generator
            for generator in EventGenerator.objects.annotate(lowered_id=Lower("external_id"))
            .filter(
                connection_id=runs[0].connection_id,
                lowered_id__in={str(run.parameters["event_generator_id"]).lower() for run in runs},
            )
            .only("id", "name", "external_id")
        }
        topic_names = {
            (topic.generator_id, topic.key): topic.name
            for topic in Topic.objects.filter(
                generator__in=list(generators.values()),
                key__in={run.parameters["topic_key"] for run in runs},
            )
        }
        titles = []
        for run in runs:
            generator = generators.get(str(run.parameters["event_generator_id"]).lower())
            topic_key = run.parameters["topic_key"]
            if generator is None:
                titles.append(self.describe(run.parameters))
                continue
            topic = topic_names.get((generator.pk, topic_key)) or f"topic {topic_key}"
            titles.append(f"{generator.name} → {topic}")
        return titles

    # How far back the audience estimate looks for a topic's last resolved audience.
    AUDIENCE_LOOKBACK_RUNS = 2000

    def approval_facts(
        self, parameters: list[dict[str, Any]], connection: VendorConnection
    ) -> ApprovalFacts:
        """A trigger's topics (the runs requested together) and its audience estimate: the sum
        of the audience Optimove last resolved for each of these topics of the generator (a
        topic never published counts 0; no topic ever published: no estimate). One query."""
        if not parameters:
            return ApprovalFacts()
        wanted = {(str(p["event_generator_id"]).lower(), p["topic_key"]) for p in parameters}
        latest: dict[tuple[str, str], int] = {}
        for found in (
            Run.objects.filter(
                connection=connection, operation=self.name, audience_size__isnull=False
            )
            .order_by("-finished_at", "-pk")
            .values_list("parameters", "audience_size")[: self.AUDIENCE_LOOKBACK_RUNS]
        ):
            done, size = found
            key = (str(done.get("event_generator_id", "")).lower(), done.get("topic_key"))
            if key in wanted and key not in latest:
                latest[key] = size
        return ApprovalFacts(
            topics=len(parameters),
            audience_estimate=sum(latest.values()) if latest else None,
        )

    def rate_rules(self, connection: VendorConnection, secrets: dict[str, str]) -> list[RateRule]:
        return [optimove_brand_rate_rule(connection, secrets)]

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        parameters = run.parameters
        accepted = optimove_campaigns_client(connection, secrets).run_event_generator(
            parameters["event_generator_id"],
            topic_key=parameters["topic_key"],
            context=parameters["context"],
        )
        return SendResult(
            exchange=accepted.exchange,
            outcome=f"Optimove queued execution {accepted.execution_id}.",
            accepted=True,
            vendor_reference=accepted.execution_id,
            vendor_status=accepted.status,
        )

    def poll(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> PollResult:
        status = optimove_campaigns_client(connection, secrets).execution_status(
            run.vendor_reference
        )
        return PollResult(
            exchange=status.exchange,
            vendor_status=status.status,
            terminal=status.is_terminal,
            succeeded=status.status == "published",
            progress=100 if status.is_terminal else None,
            audience_size=status.audience_size,
            result={"updated_at": status.updated_at.isoformat() if status.updated_at else None},
            failure_code=status.error_code or "",
            failure_message=status.error_message or "",
        )


register_operation(RunEventGeneratorOperation())
