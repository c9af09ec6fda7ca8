"""Models of the campaigns app.

Optimove event generators live in campaigns.event_generators.models (imported here so Django
registers them under this app).
"""

from campaigns.altcraft_launches.models import (  # noqa: F401 - Django finds them here
    AltcraftChunk,
    AltcraftLaunch,
    AltcraftSettings,
    AltcraftTrigger,
)
from campaigns.event_generators.models import (  # noqa: F401
    CampaignRun,
    CampaignSettings,
    EventGenerator,
    ScheduledTrigger,
    SchemaVersion,
    Topic,
    TriggerGroup,
)
