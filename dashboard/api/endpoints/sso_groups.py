"""The automation API's single sign-on group mappings: list, set and remove the tenant's IdP
group → role mappings (the same services as the Single sign-on page and the sso_group_mapping
command; admins only, audited)."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Schema, Status
from pydantic import Field

from dashboard.api.endpoints.common import ERRORS, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.models import Permission
from dashboard.sso import selectors, services
from dashboard.sso.models import SsoGroupMapping
from dashboard.tenancy.scoping import client_ip


class MappingIn(Strict):
    group: str = Field(max_length=200, description="The IdP group's name (case does not matter).")
    role: str = Field(max_length=20, description="marketer, operator, auditor or admin.")


class MappingRemoveIn(Strict):
    group: str = Field(max_length=200, description="The IdP group whose mapping goes.")


class MappingOut(Schema):
    id: int
    group: str
    role: str
    created_by: str
    created_at: datetime


def _mapping_out(mapping: SsoGroupMapping) -> dict[str, Any]:
    return {
        "id": mapping.pk,
        "group": mapping.group,
        "role": mapping.role,
        "created_by": mapping.created_by_label,
        "created_at": mapping.created_at,
    }


def _as_problem(error: ValidationError) -> ApiProblem:
    field, errors = next(iter(error.error_dict.items()))
    code, message = errors[0].code, errors[0].messages[0]
    if code == "not_found":
        return ApiProblem(404, "sso_group_not_found", message, field=field)
    if code == "conflict":
        return ApiProblem(409, "conflict", message, field=field)
    return ApiProblem(422, code or "invalid", message, field=field)


@router.get(
    "/t/{tenant_slug}/sso-groups",
    response={200: list[MappingOut], **ERRORS},
    operation_id="sso_group_list",
    summary="The tenant's single sign-on group mappings (IdP group → role)",
)
def sso_group_list(request: HttpRequest, tenant_slug: str):
    require(request, Permission.MANAGE, "see the single sign-on groups")
    tenant = token_use(request).token.tenant
    return [_mapping_out(mapping) for mapping in selectors.mapping_list(tenant=tenant)]


@router.post(
    "/t/{tenant_slug}/sso-groups",
    response={200: MappingOut, **ERRORS},
    operation_id="sso_group_set",
    summary="Map an IdP group to a role (or change its role); applies at the next login",
)
@acting("sso_group_set")
def sso_group_set(request: HttpRequest, tenant_slug: str, payload: MappingIn):
    """200 with the mapping. 422 `required` / `max_length` / `invalid_role`; 403 for a token
    whose person is not an admin."""
    require(request, Permission.MANAGE, "change the single sign-on groups")
    use = token_use(request)
    try:
        mapping = services.mapping_set(
            actor=use.actor(client_ip(request)),
            tenant=use.token.tenant,
            group=payload.group,
            role=payload.role,
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(200, _mapping_out(mapping))


@router.post(
    "/t/{tenant_slug}/sso-groups/remove",
    response={204: None, **ERRORS},
    operation_id="sso_group_remove",
    summary="Stop mapping an IdP group; its members lose the role at their next login",
)
@acting("sso_group_remove")
def sso_group_remove(request: HttpRequest, tenant_slug: str, payload: MappingRemoveIn):
    """204. 404 `sso_group_not_found`."""
    require(request, Permission.MANAGE, "change the single sign-on groups")
    use = token_use(request)
    try:
        services.mapping_remove(
            actor=use.actor(client_ip(request)), tenant=use.token.tenant, group=payload.group
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(204, None)
