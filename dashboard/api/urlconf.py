"""The URLconf of requests to the automation API: every URL of the site, and the API's.

dashboard.project.middleware.AutomationApiUrlconfMiddleware sets it on requests under /api/, so django-ninja
and pydantic (12 MB resident) are imported by the first API request of a process rather than by
every process that loads the site's URLs (a web worker that never serves the API, a command).
Reversing an API URL elsewhere: reverse("api_v1:...", urlconf="dashboard.api.urlconf").
"""

from django.urls import path

from dashboard.api.endpoints import api
from dashboard.project.urls import handler500  # noqa: F401 - Django reads it from here
from dashboard.project.urls import urlpatterns as site_urlpatterns

urlpatterns = [*site_urlpatterns, path("api/v1/", api.urls)]
