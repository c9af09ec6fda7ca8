"""The automation API, /api/v1/t/<tenant_slug>/...: a thin caller of the same services and
selectors as the pages and commands, so every guardrail holds whatever the way in.

Authentication is a personal API token (`Authorization: Bearer tdk_...`) that acts with its
person's current role in its one tenant. Every call that acts (POST) is audited with the token's
name. Errors are problem+json (see problems.py).
"""

# The resource modules add their endpoints to the one router in this order (the OpenAPI
# document lists paths in the order they were added), then the router joins the API.
# isort: off
from dashboard.api.endpoints import daily
from dashboard.api.endpoints import batch_jobs
from dashboard.api.endpoints import runs
from dashboard.api.endpoints import event_generators
from dashboard.api.endpoints import altcraft
from dashboard.api.endpoints.common import router, run_out
from dashboard.api.endpoints.ninja_api import api

# isort: on

api.add_router("/", router)

__all__ = ["altcraft", "api", "batch_jobs", "daily", "event_generators", "run_out", "runs"]
