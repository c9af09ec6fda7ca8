"""The automation API's chat webhook endpoints: see the hints, set or remove the URLs, send a
test message (the same services as the settings page and the chat_webhook command)."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Schema, Status
from pydantic import Field

from dashboard.api.endpoints.common import ERRORS, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.chat_webhooks import selectors, services
from dashboard.models import Permission
from dashboard.tenancy.scoping import client_ip


class ChatWebhooksIn(Strict):
    reason: str = Field(max_length=500, description="Why they change (audited).")
    slack_url: str | None = Field(
        None,
        max_length=1000,
        description='A Slack-compatible incoming webhook URL; "" removes it, null keeps it.',
    )
    teams_url: str | None = Field(
        None,
        max_length=1000,
        description='A Microsoft Teams webhook URL; "" removes it, null keeps it.',
    )


class ChatWebhooksOut(Schema):
    slack: str | None = Field(description="The Slack URL's hint (host and last characters).")
    teams: str | None = Field(description="The Teams URL's hint (host and last characters).")


class ChatTestOut(Schema):
    targets: list[str]


def _state(tenant) -> dict[str, str | None]:
    hints = selectors.chat_webhook_state(tenant=tenant)
    return {kind: hint or None for kind, hint in hints.items()}


def _as_problem(error: ValidationError) -> ApiProblem:
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        name = field if field == "reason" else f"{field}_url"
        return ApiProblem(422, "invalid", errors[0].messages[0], field=name)
    if getattr(error, "code", None) == "not_set":
        return ApiProblem(409, "not_set", error.messages[0])
    return ApiProblem(422, "invalid", error.messages[0])


@router.get(
    "/t/{tenant_slug}/chat-webhooks",
    response={200: ChatWebhooksOut, **ERRORS},
    operation_id="chat_webhooks_state",
    summary="The tenant's chat webhooks (hints only, never the URLs)",
)
def chat_webhooks_state(request: HttpRequest, tenant_slug: str):
    require(request, Permission.MANAGE, _("see the chat webhooks"))
    return _state(token_use(request).token.tenant)


@router.put(
    "/t/{tenant_slug}/chat-webhooks",
    response={200: ChatWebhooksOut, **ERRORS},
    operation_id="chat_webhooks_set",
    summary="Set, replace or remove the tenant's Slack and Teams webhook URLs, with a reason",
)
@acting("chat_webhooks_set")
def chat_webhooks_set(request: HttpRequest, tenant_slug: str, payload: ChatWebhooksIn):
    """200 with the hints. 422 `invalid` (a URL that is not https, or points at an internal
    address; an empty reason; nothing to change), 403 `forbidden` for a role that cannot
    manage the tenant's settings."""
    require(request, Permission.MANAGE, _("change the chat webhooks"))
    use = token_use(request)
    tenant = use.token.tenant
    try:
        services.chat_webhooks_set(
            actor=use.actor(client_ip(request)),
            tenant=tenant,
            reason=payload.reason,
            slack_url=payload.slack_url,
            teams_url=payload.teams_url,
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(200, _state(tenant))


@router.post(
    "/t/{tenant_slug}/chat-webhooks/test",
    response={202: ChatTestOut, **ERRORS},
    operation_id="chat_webhooks_test",
    summary="Post a test message to each of the tenant's chat webhooks",
)
@acting("chat_webhooks_test")
def chat_webhooks_test(request: HttpRequest, tenant_slug: str):
    """202 with the kinds posted to (the worker posts them). 409 `not_set` when none is set."""
    require(request, Permission.MANAGE, _("test the chat webhooks"))
    use = token_use(request)
    try:
        targets = services.chat_webhook_test(
            actor=use.actor(client_ip(request)), tenant=use.token.tenant
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(202, {"targets": targets})
