"""Altcraft: bulk trigger launch and bulk import + trigger task (client and sandbox)."""

from campaigns.vendors.altcraft.client import (
    AltcraftClient,
    AltcraftNotSent,
    AltcraftRejected,
    AltcraftServerError,
    AltcraftThrottled,
    BatchLaunchResult,
    BodyTooLarge,
    ImportTaskAccepted,
    NoAnswer,
    ProfileIds,
    StatusNoAnswer,
    TaskStatus,
    UnreadableLaunchAnswer,
    UnreadableStatusAnswer,
    VendorBodyLimitExceeded,
    split_items_to_fit,
)

__all__ = [
    "AltcraftClient",
    "AltcraftNotSent",
    "AltcraftRejected",
    "AltcraftServerError",
    "AltcraftThrottled",
    "BatchLaunchResult",
    "BodyTooLarge",
    "ImportTaskAccepted",
    "NoAnswer",
    "ProfileIds",
    "StatusNoAnswer",
    "TaskStatus",
    "UnreadableLaunchAnswer",
    "UnreadableStatusAnswer",
    "VendorBodyLimitExceeded",
    "split_items_to_fit",
]
