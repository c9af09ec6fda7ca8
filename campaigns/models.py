from campaigns.altcraft_launches.models import (  # noqa: F401 - Django finds the models here
    AltcraftChunk,
    AltcraftLaunch,
    AltcraftSettings,
    AltcraftTrigger,
)
