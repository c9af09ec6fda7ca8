"""The automation API, /api/v1/t/<tenant_slug>/...: a thin caller of the same services and
selectors as the pages and commands, so every guardrail holds whatever the way in.

Authentication is a personal API token (`Authorization: Bearer tdk_...`) that acts with its
person's current role in its one tenant. Every call that acts (POST) is audited with the token's
name. Errors are problem+json (see problems.py).
"""

# The core's run endpoints, then each feature app's (AppConfig.api_modules, in INSTALLED_APPS
# order), add their endpoints to the one router (the OpenAPI document lists paths in the order
# they were added), then the router joins the API.
from dashboard import plugins
from dashboard.api.endpoints import (
    approval_policies,
    chat_webhooks,
    pauses,
    preferences,
    recurring,
    runs,
    send_windows,
    sessions,
    sso_groups,
)
from dashboard.api.endpoints.common import router, run_out
from dashboard.api.endpoints.ninja_api import api

plugins.contributed_modules("api_modules")
api.add_router("/", router)

__all__ = [
    "api",
    "approval_policies",
    "chat_webhooks",
    "pauses",
    "preferences",
    "recurring",
    "run_out",
    "runs",
    "send_windows",
    "sessions",
    "sso_groups",
]
