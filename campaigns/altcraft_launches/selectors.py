"""Reads for Altcraft launches: the registry, launches, and a launch's live progress."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils.translation import gettext, ngettext

from campaigns.altcraft_launches.models import (
    AltcraftChunk,
    AltcraftLaunch,
    AltcraftTrigger,
    LaunchKind,
    LaunchState,
)
from dashboard.models import Tenant, VendorConnection, VendorKind
from dashboard.runs.models import Run
from dashboard.runs.selectors import Outcome, count_text
from dashboard.runs.states import RunState


def trigger_list(*, tenant: Tenant) -> QuerySet[AltcraftTrigger]:
    return AltcraftTrigger.objects.filter(tenant=tenant).select_related("connection")


def trigger_get(*, tenant: Tenant, trigger_pk: int) -> AltcraftTrigger:
    found = trigger_list(tenant=tenant).filter(pk=trigger_pk).first()
    if found is None:
        raise Http404(gettext("No such trigger campaign."))
    return found


def altcraft_connection_list(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    return VendorConnection.objects.filter(tenant=tenant, kind=VendorKind.ALTCRAFT, is_active=True)


def launch_list(*, tenant: Tenant) -> QuerySet[AltcraftLaunch]:
    return AltcraftLaunch.objects.filter(tenant=tenant).select_related("trigger")


def launch_list_with_outcomes(*, tenant: Tenant, limit: int = 50) -> list[AltcraftLaunch]:
    """The latest launches, each with its `outcome` (launch_outcome): two queries in all."""
    chunks = AltcraftChunk.objects.select_related("run").order_by("number")
    launches = list(
        launch_list(tenant=tenant).prefetch_related(Prefetch("chunks", queryset=chunks))[:limit]
    )
    for launch in launches:
        launch.outcome = launch_outcome(launch)
    return launches


def launch_get(*, tenant: Tenant, launch_pk: int) -> AltcraftLaunch:
    found = (
        AltcraftLaunch.objects.filter(tenant=tenant, pk=launch_pk)
        .select_related("trigger", "trigger__connection", "tenant")
        .first()
    )
    if found is None:
        raise Http404(gettext("No such launch."))
    return found


def chunk_get(*, launch: AltcraftLaunch, number: int) -> AltcraftChunk:
    found = launch.chunks.filter(number=number).first()
    if found is None:
        raise Http404(gettext("No such chunk."))
    return found


@dataclass
class ChunkStatus:
    chunk: AltcraftChunk
    run: Run | None
    progress: int  # percent of this chunk done
    profile_count: int | None
    needs_person: bool
    can_retry: bool

    @property
    def state(self) -> str:
        return self.run.state if self.run else "not_sent"

    @property
    def state_label(self) -> str:
        return self.run.get_state_display() if self.run else "Not sent"


@dataclass
class LaunchProgress:
    chunks: list[ChunkStatus] = field(default_factory=list)
    total_items: int = 0
    done_items: float = 0.0
    succeeded: int = 0
    failed: int = 0
    unknown: int = 0
    open: int = 0
    profiles_reached: int = 0
    # The rows of the chunks that succeeded, and how many of those chunks' answers did not say
    # how many profiles they reached (an import task's XML-shaped result lists none).
    rows_succeeded: int = 0
    profiles_unreported: int = 0

    @property
    def percent(self) -> int:
        if not self.total_items:
            return 0
        return min(100, int(100 * self.done_items / self.total_items))

    @property
    def settled(self) -> bool:
        """Nothing will change without a person: every chunk finished, failed or needs one."""
        return self.open == 0

    @property
    def done(self) -> bool:
        return bool(self.chunks) and self.succeeded == len(self.chunks)


def launch_progress(*, launch: AltcraftLaunch) -> LaunchProgress:
    """Each chunk's run and where it stands, and the launch's overall progress."""
    progress = LaunchProgress()
    if "chunks" in getattr(launch, "_prefetched_objects_cache", {}):
        chunks = list(launch.chunks.all())  # launch_list_with_outcomes fetched them
    else:
        chunks = list(launch.chunks.select_related("run").order_by("number"))
    sending = launch.state == LaunchState.SENDING
    for chunk in chunks:
        run = chunk.run
        progress.total_items += chunk.item_count
        percent = 0
        profile_count = None
        needs_person = False
        if run is not None:
            if run.state == RunState.SUCCEEDED:
                percent = 100
                progress.succeeded += 1
                profile_count = (run.result or {}).get("profile_count", run.audience_size)
                progress.profiles_reached += profile_count or 0
                progress.rows_succeeded += chunk.item_count
                if profile_count is None:
                    progress.profiles_unreported += 1
            elif run.state == RunState.ACCEPTED and launch.kind == LaunchKind.IMPORT:
                percent = run.progress or 0
            if run.state == RunState.FAILED or run.state == RunState.CANCELLED:
                progress.failed += 1
            elif run.state == RunState.OUTCOME_UNKNOWN:
                progress.unknown += 1
                needs_person = run.needs_person
                if not run.needs_person:
                    progress.open += 1
            elif run.state != RunState.SUCCEEDED:
                progress.open += 1
        elif sending:
            progress.open += 1
        progress.done_items += chunk.item_count * percent / 100
        progress.chunks.append(
            ChunkStatus(
                chunk=chunk,
                run=run,
                progress=percent,
                profile_count=profile_count,
                needs_person=needs_person,
                can_retry=run is not None
                and run.state in (RunState.FAILED, RunState.CANCELLED)
                and launch.files_deleted_at is None,
            )
        )
    return progress


def launch_outcome(launch: AltcraftLaunch, progress: LaunchProgress | None = None) -> Outcome:
    """What the launch came to, in the words every page and the API show: the state of its
    requests ("Sent", "Partly failed", "Failed") and, from Altcraft's answers, how many of the
    rows sent matched a profile ("sent; 0 of 5,000 matched a profile" is a warning, not a
    success). `progress` is launch_progress(launch), when the caller has it already."""
    if launch.state != LaunchState.SENDING:
        return Outcome(launch.get_state_display(), "bad" if launch.problem else "", launch.problem)
    if progress is None:
        progress = launch_progress(launch=launch)
    requests = len(progress.chunks)
    total = count_text(requests)
    if not progress.settled:
        done = ngettext(
            "%(count)s of %(total)s request done", "%(count)s of %(total)s requests done", requests
        ) % {"count": count_text(progress.succeeded), "total": total}
        return Outcome(gettext("Sending"), "", done)
    problems = []
    if progress.failed:
        problems.append(
            ngettext(
                "%(count)s of %(total)s request failed",
                "%(count)s of %(total)s requests failed",
                requests,
            )
            % {"count": count_text(progress.failed), "total": total}
        )
    if progress.unknown:
        problems.append(
            ngettext(
                "%(count)s of %(total)s requests needs a person (outcome unknown)",
                "%(count)s of %(total)s requests need a person (outcome unknown)",
                progress.unknown,
            )
            % {"count": count_text(progress.unknown), "total": total}
        )
    if not progress.succeeded:
        if progress.failed == requests:
            reasons = [status.run.failure_message for status in progress.chunks if status.run]
            reason = next((text for text in reasons if text), "")
            return Outcome(gettext("Failed"), "bad", reason or problems[0])
        return Outcome(
            gettext("Partly failed") if progress.failed else gettext("Outcome unknown"),
            "warn",
            "; ".join(problems),
        )
    matched, tone = _matched_text(launch, progress)
    if problems:
        return Outcome(gettext("Partly failed"), "warn", "; ".join([*problems, matched]))
    word = gettext("Imported") if launch.kind == LaunchKind.IMPORT else gettext("Sent")
    return Outcome(word, tone, matched)


def _matched_text(launch: AltcraftLaunch, progress: LaunchProgress) -> tuple[str, str]:
    """How many of the rows that were sent reached a profile, by Altcraft's answers, and the
    tone of that: all of them is good, fewer is a warning."""
    rows = count_text(progress.rows_succeeded)
    if progress.profiles_unreported:
        return (
            ngettext(
                "sent %(rows)s row; Altcraft did not report how many matched a profile",
                "sent %(rows)s rows; Altcraft did not report how many matched a profile",
                progress.rows_succeeded,
            )
            % {"rows": rows},
            "warn",
        )
    reached = progress.profiles_reached
    tone = "good" if reached >= progress.rows_succeeded else "warn"
    if launch.kind == LaunchKind.IMPORT:
        not_imported = max(0, progress.rows_succeeded - reached)
        text = ngettext(
            "%(reached)s of %(rows)s row imported and launched",
            "%(reached)s of %(rows)s rows imported and launched",
            progress.rows_succeeded,
        ) % {"reached": count_text(reached), "rows": rows}
        if not_imported:
            text += "; " + gettext("%(count)s not imported") % {"count": count_text(not_imported)}
        return text, tone
    return (
        gettext("sent; %(reached)s of %(rows)s matched a profile")
        % {"reached": count_text(reached), "rows": rows},
        tone,
    )


def run_of_chunk(value: str, *, tenants: QuerySet) -> Run:
    """The run of the chunk named `value` ("LAUNCH:NUMBER", e.g. "12:3") among `tenants` (ids):
    run_settle's --chunk (AppConfig.run_lookups). LookupError saying what is wrong otherwise."""
    launch, _, number = value.partition(":")
    if not (launch.isdigit() and number.isdigit()):
        raise LookupError("--chunk is LAUNCH:NUMBER, for example 12:3.")
    chunk = AltcraftChunk.objects.filter(
        launch_id=int(launch), number=int(number), launch__tenant_id__in=tenants
    ).first()
    if chunk is None:
        raise LookupError(f"No chunk {number} of launch #{launch} in your tenants.")
    if chunk.run_id is None:
        raise LookupError(f"Chunk {number} of launch #{launch} has not been sent yet.")
    return Run.objects.select_related("tenant").get(pk=chunk.run_id)


run_of_chunk.metavar = "LAUNCH:NUMBER"
run_of_chunk.help = "An Altcraft chunk's run."
