"""/healthz, /readyz and /metrics. None needs a login; /metrics needs METRICS_TOKEN."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from dashboard.observability.health import as_dict, readiness_checks
from dashboard.observability.metrics import render_metrics


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Checks nothing else on purpose (see health.py)."""
    return JsonResponse({"alive": True})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when every check passes, 503 with each check's reason when not."""
    result = as_dict(readiness_checks())
    return JsonResponse(result, status=200 if result["ready"] else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`.

    Without METRICS_TOKEN the endpoint does not exist (404): the figures name tenants and vendor
    accounts, which the public must not see.
    """
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off (METRICS_TOKEN is not set)")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse(
            "metrics need a bearer token\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
