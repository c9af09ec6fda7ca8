"""The API tokens page, under /t/<tenant_slug>/api-tokens/ (included by dashboard.project.urls)."""

from django.urls import path

from dashboard.api import views

urlpatterns = [
    path("", views.api_token_list, name="api_token_list"),
    path("<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("webhook/", views.webhook_set, name="api_webhook_set"),
    path("webhook/remove/", views.webhook_remove, name="api_webhook_remove"),
]
