from datetime import UTC, datetime

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.http import last_modified
from django.views.i18n import JavaScriptCatalog

from dashboard.accounts import views as account_views
from dashboard.approval_links import views as approval_link_views
from dashboard.approval_policies import views as policy_views
from dashboard.chat_webhooks import views as chat_webhook_views
from dashboard.login_sessions import views as session_views
from dashboard.observability import views as observability_views
from dashboard.pauses import views as pause_views
from dashboard.preferences import views as preference_views
from dashboard.recurring import views as recurring_views
from dashboard.send_windows import views as send_window_views
from dashboard.sso import views as sso_views
from dashboard.tenancy import views

CATALOGUE_LOADED_AT = datetime.now(UTC).replace(microsecond=0)

tenant_patterns = [
    path("", views.tenant_home, name="tenant_home"),
    path("connections/", views.connection_list, name="connection_list"),
    path("connections/new/", views.connection_create, name="connection_create"),
    path("connections/<int:connection_id>/", views.connection_detail, name="connection_detail"),
    path("connections/<int:connection_id>/edit/", views.connection_edit, name="connection_edit"),
    path(
        "connections/<int:connection_id>/send-window/",
        send_window_views.connection_send_window,
        name="connection_send_window",
    ),
    path(
        "connections/<int:connection_id>/secret/",
        views.connection_secret_set,
        name="connection_secret_set",
    ),
    path(
        "connections/<int:connection_id>/test/",
        views.connection_test,
        name="connection_test",
    ),
    path("members/", views.member_list, name="member_list"),
    path("members/add/", views.member_add, name="member_add"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/<int:membership_id>/role/", views.member_change_role, name="member_change_role"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "members/<int:membership_id>/sessions/",
        session_views.member_sessions,
        name="member_sessions",
    ),
    path(
        "members/<int:membership_id>/sessions/end/",
        session_views.member_sessions_end,
        name="member_sessions_end",
    ),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("settings/chat/", chat_webhook_views.chat_webhooks_page, name="chat_webhooks_page"),
    path("settings/chat/save/", chat_webhook_views.chat_webhooks_save, name="chat_webhooks_save"),
    path("settings/chat/test/", chat_webhook_views.chat_webhooks_test, name="chat_webhooks_test"),
    path("pause/", pause_views.sending_pause_page, name="sending_pause_page"),
    path("pause/new/", pause_views.sending_pause, name="sending_pause"),
    path("pause/resume/", pause_views.sending_resume, name="sending_resume"),
    path("approval-policies/", policy_views.policy_list, name="approval_policy_list"),
    path("approval-policies/new/", policy_views.policy_create, name="approval_policy_create"),
    path(
        "approval-policies/<int:policy_id>/",
        policy_views.policy_edit_page,
        name="approval_policy_edit",
    ),
    path(
        "approval-policies/<int:policy_id>/save/",
        policy_views.policy_update,
        name="approval_policy_update",
    ),
    path(
        "approval-policies/<int:policy_id>/delete/",
        policy_views.policy_delete,
        name="approval_policy_delete",
    ),
    path("recurring/", recurring_views.recurring_list, name="recurring_list"),
    path("recurring/new/", recurring_views.recurring_create, name="recurring_create"),
    path("recurring/calendar/", recurring_views.recurring_calendar, name="recurring_calendar"),
    path("recurring/<int:schedule_id>/", recurring_views.recurring_detail, name="recurring_detail"),
    path(
        "recurring/<int:schedule_id>/save/",
        recurring_views.recurring_update,
        name="recurring_update",
    ),
    path(
        "recurring/<int:schedule_id>/enabled/",
        recurring_views.recurring_set_enabled,
        name="recurring_set_enabled",
    ),
    path(
        "recurring/<int:schedule_id>/delete/",
        recurring_views.recurring_delete,
        name="recurring_delete",
    ),
    path("sso/", sso_views.mapping_page, name="sso_mapping_page"),
    path("sso/map/", sso_views.mapping_set, name="sso_mapping_set"),
    path("sso/unmap/", sso_views.mapping_remove, name="sso_mapping_remove"),
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path("campaigns/", include("campaigns.urls")),
    path("batch/", include("batchjobs.urls")),
    path("runs/", include("dashboard.runs.urls")),
    path("api-tokens/", include("dashboard.api.urls")),
]

# A database or Redis that cannot be reached answers 503 with Retry-After, not 500.
handler500 = "dashboard.project.errors.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("login/sso/", sso_views.SingleSignOnStartView.as_view(), name="sso_login"),
    path("login/sso/callback/", sso_views.sso_callback, name="sso_callback"),
    path(
        "approval-links/<str:token>/",
        approval_link_views.approval_link,
        name="approval_link",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", account_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/sessions/", session_views.own_sessions, name="account_sessions"),
    path(
        "account/sessions/<int:session_id>/end/",
        session_views.own_session_end,
        name="account_session_end",
    ),
    path(
        "account/sessions/end-others/",
        session_views.own_sessions_end_others,
        name="account_sessions_end_others",
    ),
    path(
        "account/password/forgot/",
        account_views.PasswordResetRequestView.as_view(),
        name="password_reset",
    ),
    path(
        "account/password/forgot/sent/",
        account_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "account/password/reset/<uidb64>/<token>/",
        account_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "invite/<uidb64>/<token>/", account_views.InviteAcceptView.as_view(), name="invite_accept"
    ),
    path("t/<slug:tenant_slug>/", include(tenant_patterns)),
    path("admin/", admin.site.urls),
    path("account/preferences/", preference_views.preferences_page, name="preferences"),
    # static/js/app.js's words in the reader's language (locale/*/LC_MESSAGES/djangojs.po).
    # Unchanged until the next deploy: a browser revalidates it and gets a 304 (the page adds the
    # language to its address, so a person who switches language gets the other catalogue).
    path(
        "jsi18n/",
        last_modified(lambda request: CATALOGUE_LOADED_AT)(JavaScriptCatalog.as_view()),
        name="javascript_catalog",
    ),
    path("healthz", observability_views.healthz, name="healthz"),
    path("readyz", observability_views.readyz, name="readyz"),
    path("metrics", observability_views.metrics, name="metrics"),
    # /api/v1/: dashboard/api/urlconf.py, the URLconf of requests to /api/ (these and the API's).
]
