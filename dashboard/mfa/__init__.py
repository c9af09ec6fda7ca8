"""Second factors: TOTP (an authenticator app), passkeys (WebAuthn) and recovery codes.

A person with a factor proves it after the password (or SSO) step before anything else
(middleware.SecondFactorMiddleware), a tenant may require one of its operators and admins
(tenancy.scoping.tenant_view sends them to set one up), and an approval made in a page needs a
check within the last STEP_UP_SECONDS (step_up.step_up_required asks for it in place). TOTP and
recovery codes are django-otp's devices; passkeys are this package's Passkey device, verified
with py_webauthn (imported on first use: it loads cryptography).
"""
