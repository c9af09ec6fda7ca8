"""The automation API's second-factor setting: whether the tenant requires a second factor of
its operators and admins (the same service as the tenant settings page)."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Schema
from pydantic import Field, StrictBool

from dashboard.api.endpoints.common import ERRORS, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.models import Permission
from dashboard.tenancy.scoping import client_ip
from dashboard.tenancy.services import tenant_settings_update


class SecondFactorSettingIn(Strict):
    required: StrictBool = Field(
        description="Operators and admins must set up a second factor and prove it at login."
    )


class SecondFactorSettingOut(Schema):
    required: bool


@router.get(
    "/t/{tenant_slug}/second-factor",
    response={200: SecondFactorSettingOut, **ERRORS},
    operation_id="second_factor_setting",
    summary="Whether the tenant requires a second factor of its operators and admins",
)
def second_factor_setting(request: HttpRequest, tenant_slug: str):
    return {"required": token_use(request).token.tenant.require_second_factor}


@router.post(
    "/t/{tenant_slug}/second-factor",
    response={200: SecondFactorSettingOut, **ERRORS},
    operation_id="second_factor_setting_set",
    summary="Require (or stop requiring) a second factor of the tenant's operators and admins",
)
@acting("second_factor_setting_set")
def second_factor_setting_set(
    request: HttpRequest, tenant_slug: str, payload: SecondFactorSettingIn
):
    """200 with the setting. An admin's token only (403 `forbidden`); audited as
    tenant.settings_changed when it changes."""
    require(request, Permission.MANAGE, "change the tenant's settings")
    use = token_use(request)
    try:
        tenant = tenant_settings_update(
            actor=use.actor(client_ip(request)),
            tenant=use.token.tenant,
            require_second_factor=payload.required,
        )
    except ValidationError as error:
        raise ApiProblem(422, "invalid", " ".join(error.messages)) from None
    return {"required": tenant.require_second_factor}
