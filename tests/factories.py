"""factory-boy factories for every model."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from dashboard.audit import Actor, record_audit_event
from dashboard.crypto import encrypt_secret
from dashboard.models import (
    SECRET_FIELDS,
    AuditEvent,
    ConnectionSecret,
    Membership,
    Role,
    Tenant,
    VendorConnection,
    VendorKind,
)

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Brand {n}")
    slug = factory.Sequence(lambda n: f"brand-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.MARKETER


class VendorConnectionFactory(factory.django.DjangoModelFactory):
    """A connection with every secret its kind needs (`secret_values` overrides them)."""

    class Meta:
        model = VendorConnection
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    kind = VendorKind.OPTIMOVE_BATCH
    name = factory.Sequence(lambda n: f"Connection {n}")
    base_url = "https://api.example.com"
    options = factory.LazyAttribute(
        lambda connection: (
            {"key_role": "ApiRole"} if connection.kind == VendorKind.OPTIMOVE_BATCH else {}
        )
    )

    @factory.post_generation
    def secret_values(connection, create, extracted, **kwargs):
        if not create:
            return
        values = extracted or {}
        for name in SECRET_FIELDS[connection.kind]:
            ConnectionSecretFactory(
                connection=connection,
                name=name,
                plaintext=values.get(name, f"test-{name}-{connection.pk}-SECRETVALUE"),
            )


class ConnectionSecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConnectionSecret
        exclude = ["plaintext"]

    connection = factory.SubFactory(VendorConnectionFactory, secret_values={})
    name = "api_key"
    plaintext = "test-api-key-SECRETVALUE"
    encrypted_value = factory.LazyAttribute(lambda secret: encrypt_secret(secret.plaintext))
    hint = factory.LazyAttribute(lambda secret: secret.plaintext[-4:])
    set_at = factory.Faker("date_time", tzinfo=__import__("datetime").UTC)


class AuditEventFactory(factory.django.DjangoModelFactory):
    """Audit rows only come into being through the audit service, chained."""

    class Meta:
        model = AuditEvent

    tenant = factory.SubFactory(TenantFactory)
    action = "test.event"
    object_type = "thing"
    object_id = factory.Sequence(str)
    summary = factory.LazyFunction(dict)

    @classmethod
    def _create(
        cls,
        model_class,
        tenant=None,
        action="",
        object_type="",
        object_id="",
        summary=None,
        **kwargs,
    ):
        return record_audit_event(
            actor=Actor.system("factory"),
            tenant=tenant,
            action=action,
            object_type=object_type,
            object_id=object_id,
            summary=summary,
        )
