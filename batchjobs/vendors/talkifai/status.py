"""A TalkifAI batch job's status as the vendor reports it now (an HTTP read)."""

from __future__ import annotations

from dataclasses import dataclass

from batchjobs.models import BatchJob
from batchjobs.vendors.talkifai import client as talkifai
from batchjobs.vendors.talkifai.access import talkifai_client
from batchjobs.vendors.talkifai.client import BatchJobDetail
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import CredentialDecryptionError
from dashboard.vendors.http import ConfigurationError, VendorError


@dataclass(frozen=True)
class BatchJobVendorStatus:
    """A job's status as TalkifAI reports it now, or why it could not be read."""

    detail: BatchJobDetail | None
    problem: str = ""

    @property
    def can_start_now(self) -> bool:
        return self.detail is not None and self.detail.can_start_now


def batch_job_vendor_status(*, batch_job: BatchJob) -> BatchJobVendorStatus:
    """Ask TalkifAI for the job's detail; never raises for vendor trouble."""
    connection = batch_job.connection
    if not connection.is_active:
        return BatchJobVendorStatus(None, f"the connection {connection.name} is inactive.")
    try:
        client = talkifai_client(connection, connection_secrets(connection, read_with=batch_job))
        return BatchJobVendorStatus(client.batch_job_detail(batch_job.batch_job_id))
    except VendorError as error:
        return BatchJobVendorStatus(None, talkifai.advice_for(error))
    except ConfigurationError as error:
        return BatchJobVendorStatus(None, f"the connection's settings are unusable: {error}")
    except (CredentialDecryptionError, KeyError):
        return BatchJobVendorStatus(
            None, "the connection's API key cannot be read; an admin sets it again."
        )
