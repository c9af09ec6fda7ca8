"""Reads for Optimove event generators, always scoped to one tenant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils.translation import gettext, ngettext

from campaigns.event_generators.models import (
    CampaignRun,
    EventGenerator,
    ScheduledTrigger,
    ScheduleState,
    TriggerGroup,
)
from dashboard.clock import utc_now
from dashboard.models import Tenant, VendorConnection, VendorKind
from dashboard.runs.models import Run
from dashboard.runs.selectors import Outcome, count_text, run_outcome
from dashboard.runs.states import RunState


def generator_list(*, tenant: Tenant) -> QuerySet[EventGenerator]:
    return (
        EventGenerator.objects.filter(tenant=tenant)
        .select_related("connection")
        .prefetch_related("topics")
        .order_by("name")
    )


def generator_get(*, tenant: Tenant, generator_id: int) -> EventGenerator:
    """One of the tenant's generators; 404 for any other tenant's."""
    try:
        return EventGenerator.objects.select_related("tenant", "connection").get(
            tenant=tenant, pk=generator_id
        )
    except EventGenerator.DoesNotExist:
        raise Http404(gettext("No such event generator.")) from None


def generator_find(*, tenants: list[Tenant], reference: str) -> list[EventGenerator]:
    """Generators of these tenants whose Optimove id (any case) or name is `reference`."""
    reference = reference.strip()
    by_id = EventGenerator.objects.filter(tenant__in=tenants, external_id__iexact=reference)
    if by_id.exists():
        return list(by_id.select_related("tenant", "connection"))
    return list(
        EventGenerator.objects.filter(tenant__in=tenants, name=reference).select_related(
            "tenant", "connection"
        )
    )


def campaign_connections(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    return VendorConnection.objects.filter(
        tenant=tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS, is_active=True
    ).order_by("name")


def group_get(*, tenant: Tenant, group_id: int) -> TriggerGroup:
    try:
        return TriggerGroup.objects.select_related("generator", "schema_version").get(
            tenant=tenant, pk=group_id
        )
    except TriggerGroup.DoesNotExist:
        raise Http404(gettext("No such trigger.")) from None


def campaign_run_get(*, tenant: Tenant, run_id: int) -> CampaignRun:
    try:
        return CampaignRun.objects.select_related(
            "run", "run__connection", "generator", "schema_version", "group"
        ).get(run__tenant=tenant, run_id=run_id)
    except CampaignRun.DoesNotExist:
        raise Http404(gettext("No such campaign run.")) from None


@dataclass
class GroupStatus:
    """A trigger group's latest run per topic, and its totals."""

    rows: list[CampaignRun]
    total: int = 0
    published: int = 0
    failed: int = 0
    open: int = 0
    other: int = 0
    audience: int = 0
    retries: int = 0
    by_state: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.open == 0

    @property
    def done_percent(self) -> int:
        return round(100 * (self.total - self.open) / self.total) if self.total else 100


OPEN_STATES = frozenset(
    {
        RunState.DRAFT,
        RunState.AWAITING_APPROVAL,
        RunState.QUEUED,
        RunState.SENDING,
        RunState.ACCEPTED,
    }
)


def group_status(*, group: TriggerGroup) -> GroupStatus:
    links = CampaignRun.objects.filter(group=group).select_related("run").order_by("run_id")
    return _group_status_of(links)


def _group_status_of(links) -> GroupStatus:
    """The status of a group from its runs' links, in run order (a retry comes after)."""
    latest: dict[str, CampaignRun] = {}
    count = 0
    for link in links:
        count += 1
        latest[link.topic_key] = link
    status = GroupStatus(rows=list(latest.values()), retries=count - len(latest))
    by_state: dict[str, int] = defaultdict(int)
    for link in status.rows:
        run = link.run
        by_state[run.state] += 1
        status.total += 1
        if run.state == RunState.SUCCEEDED:
            status.published += 1
        elif run.state == RunState.FAILED:
            status.failed += 1
        elif run.state in OPEN_STATES or (
            run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person
        ):
            status.open += 1
        else:
            status.other += 1
        status.audience += run.audience_size or 0
    status.by_state = dict(by_state)
    return status


def _topics(count: int) -> str:
    return ngettext("%(count)s topic", "%(count)s topics", count) % {"count": count_text(count)}


def group_outcome(status: GroupStatus) -> Outcome:
    """What a trigger group came to, in the words every page and the API show: "Published"
    (a warning when Optimove resolved an audience of 0), "Partly failed" when some topics failed
    and others did not, "Failed" with Optimove's reason when all did. `status` is its
    group_status."""
    total = status.total
    if not total:
        return Outcome(gettext("Nothing sent"), "", "")
    if not status.finished:
        return Outcome(
            gettext("In progress"),
            "",
            gettext("%(count)s of %(topics)s finished")
            % {"count": count_text(total - status.open), "topics": _topics(total)},
        )
    published = [link.run for link in status.rows if link.run.state == RunState.SUCCEEDED]
    failed = [link.run for link in status.rows if link.run.state == RunState.FAILED]
    waiting = [
        link.run
        for link in status.rows
        if link.run.state == RunState.OUTCOME_UNKNOWN and link.run.needs_person
    ]
    if len(failed) == total:
        reason = next((run.failure_message for run in failed if run.failure_message), "")
        return Outcome(
            gettext("Failed"),
            "bad",
            reason or gettext("all %(topics)s failed") % {"topics": _topics(total)},
        )
    problems = []
    if failed:
        problems.append(
            gettext("%(count)s of %(topics)s failed")
            % {"count": count_text(len(failed)), "topics": _topics(total)}
        )
    if waiting:
        problems.append(
            gettext("%(count)s of %(topics)s need a person")
            % {"count": count_text(len(waiting)), "topics": _topics(total)}
        )
    audience, tone = _audience_text(published)
    if problems:
        word = gettext("Partly failed") if published or failed else gettext("Needs a person")
        return Outcome(word, "warn", "; ".join([*problems, *([audience] if audience else [])]))
    if not published:
        return Outcome(gettext("Cancelled"), "", "")
    return Outcome(gettext("Published"), tone, audience)


def _audience_text(published: list[Run]) -> tuple[str, str]:
    """The audience Optimove resolved for the published executions, and its tone: an audience
    of 0 is a warning; an execution whose status gave no audience_size is said to be unknown."""
    if not published:
        return "", ""
    reported = [run.audience_size for run in published if run.audience_size is not None]
    unreported = len(published) - len(reported)
    empty = sum(1 for size in reported if size == 0)
    total = sum(reported)
    if reported:
        text = gettext("published to an audience of %(total)s") % {"total": count_text(total)}
    else:
        text = gettext("published; Optimove did not report the audience")
    if empty and len(published) > 1:
        text += " " + gettext("(%(count)s of %(topics)s reached nobody)") % {
            "count": count_text(empty),
            "topics": _topics(len(published)),
        }
    if unreported and reported:
        text += "; " + gettext("Optimove did not report the audience of %(topics)s") % {
            "topics": _topics(unreported)
        }
    return text, "warn" if empty or unreported else "good"


def execution_outcome(run: Run) -> Outcome:
    """What one execution came to: published to an audience (a warning when it was 0 or not
    reported), or its run's state with the vendor's reason."""
    if run.state != RunState.SUCCEEDED:
        return run_outcome(run)
    audience, tone = _audience_text([run])
    return Outcome(gettext("Published"), tone, audience)


def schedule_outcome(schedule: ScheduledTrigger, status: GroupStatus | None = None) -> Outcome:
    """What a schedule came to: its state while nothing was sent (a failure to fire with its
    reason), and once fired what its trigger group came to (`status`, its group_status)."""
    if schedule.state == ScheduleState.FAILED:
        return Outcome(schedule.get_state_display(), "bad", schedule.failure_message)
    if schedule.state != ScheduleState.FIRED or schedule.group_id is None:
        return Outcome(schedule.get_state_display(), "", "")
    if status is None:
        status = group_status(group=schedule.group)
    return group_outcome(status)


@dataclass
class PastSchedule:
    """A schedule that fired, failed or was cancelled, what it came to, and the runs it made
    (each with its own outcome, the vendor's reason when it failed)."""

    schedule: ScheduledTrigger
    outcome: Outcome
    runs: list[tuple[CampaignRun, Outcome]]


def past_schedules(*, tenant: Tenant, limit: int = 50) -> list[PastSchedule]:
    """The latest schedules that are no longer waiting, with their runs: three queries."""
    links = CampaignRun.objects.select_related("run").order_by("run_id")
    schedules = (
        schedule_list(tenant=tenant)
        .exclude(state=ScheduleState.SCHEDULED)
        .prefetch_related(Prefetch("group__campaign_runs", queryset=links))[:limit]
    )
    past = []
    for schedule in schedules:
        status = None
        if schedule.group_id is not None:
            status = _group_status_of(schedule.group.campaign_runs.all())
        runs = [(link, run_outcome(link.run)) for link in (status.rows if status else [])]
        past.append(PastSchedule(schedule, schedule_outcome(schedule, status), runs))
    return past


def recent_groups(
    *, tenant: Tenant, generator: EventGenerator | None = None, limit: int = 20
) -> list[TriggerGroup]:
    """The latest trigger groups, each with its `outcome` (group_outcome): two queries."""
    groups = TriggerGroup.objects.filter(tenant=tenant).select_related("generator")
    if generator is not None:
        groups = groups.filter(generator=generator)
    links = CampaignRun.objects.select_related("run").order_by("run_id")
    found = list(
        groups.order_by("-created_at", "-id").prefetch_related(
            Prefetch("campaign_runs", queryset=links)
        )[:limit]
    )
    for group in found:
        group.outcome = group_outcome(_group_status_of(group.campaign_runs.all()))
    return found


def schedule_list(*, tenant: Tenant, upcoming_only: bool = False) -> QuerySet[ScheduledTrigger]:
    schedules = ScheduledTrigger.objects.filter(tenant=tenant).select_related("generator", "group")
    if upcoming_only:
        return schedules.filter(state=ScheduleState.SCHEDULED).order_by("fire_at", "id")
    return schedules.order_by("-fire_at", "-id")


def schedule_get(*, tenant: Tenant, schedule_id: int) -> ScheduledTrigger:
    try:
        return ScheduledTrigger.objects.select_related("generator", "group").get(
            tenant=tenant, pk=schedule_id
        )
    except ScheduledTrigger.DoesNotExist:
        raise Http404(gettext("No such schedule.")) from None


def generator_runs(*, generator: EventGenerator, limit: int = 50) -> list[CampaignRun]:
    return list(
        CampaignRun.objects.filter(generator=generator)
        .select_related("run", "schema_version")
        .order_by("-run_id")[:limit]
    )


@dataclass
class DayFigures:
    day: date
    runs: int = 0
    published: int = 0
    failed: int = 0
    audience: int = 0

    @property
    def success_rate(self) -> float | None:
        finished = self.published + self.failed
        return self.published / finished if finished else None


@dataclass
class GeneratorHistory:
    days: list[DayFigures]
    runs: int
    published: int
    failed: int
    audience: int

    @property
    def success_rate(self) -> float | None:
        finished = self.published + self.failed
        return self.published / finished if finished else None


def generator_history(*, generator: EventGenerator, days: int = 14) -> GeneratorHistory:
    """Runs, outcomes and audience per UTC day over the last `days` days."""
    today = utc_now().date()
    start = today - timedelta(days=days - 1)
    figures = {
        start + timedelta(days=offset): DayFigures(start + timedelta(days=offset))
        for offset in range(days)
    }
    rows = Run.objects.filter(
        campaign_run__generator=generator, created_at__date__gte=start
    ).values_list("created_at", "state", "audience_size")
    for created_at, state, audience in rows:
        day = figures.get(created_at.date())
        if day is None:
            continue
        day.runs += 1
        if state == RunState.SUCCEEDED:
            day.published += 1
            day.audience += audience or 0
        elif state == RunState.FAILED:
            day.failed += 1
    listed = list(figures.values())
    return GeneratorHistory(
        days=listed,
        runs=sum(day.runs for day in listed),
        published=sum(day.published for day in listed),
        failed=sum(day.failed for day in listed),
        audience=sum(day.audience for day in listed),
    )


def history_chart_svg(history: GeneratorHistory, *, width: int = 560, height: int = 160) -> str:
    """A small SVG: audience per day as bars, success rate as a line (0-100 %). Server-side; the
    numbers are ours, so the markup is built from integers and escaped dates only."""
    from django.utils.html import escape

    margin_left, margin_bottom, margin_top = 44, 22, 10
    plot_width = width - margin_left - 8
    plot_height = height - margin_bottom - margin_top
    count = max(1, len(history.days))
    slot = plot_width / count
    top = max([day.audience for day in history.days] + [1])
    # Outside the f-string: xgettext (makemessages) does not look inside one.
    chart_label = escape(gettext("Audience and success rate per day"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="history-chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{chart_label}">',
        f'<line x1="{margin_left}" y1="{margin_top + plot_height}" x2="{width - 8}" '
        f'y2="{margin_top + plot_height}" stroke="#999"/>',
        f'<text x="2" y="{margin_top + 8}" font-size="10">{count_text(top)}</text>',
        f'<text x="2" y="{margin_top + plot_height}" font-size="10">0</text>',
    ]
    points = []
    for index, day in enumerate(history.days):
        x = margin_left + index * slot
        bar = plot_height * day.audience / top
        label = escape(
            gettext(
                "%(day)s: %(runs)s runs, %(published)s published, %(failed)s failed, "
                "audience %(audience)s"
            )
            % {
                "day": format(day.day, "%Y-%m-%d"),
                "runs": day.runs,
                "published": day.published,
                "failed": day.failed,
                "audience": count_text(day.audience),
            }
        )
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{margin_top + plot_height - bar:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{bar:.1f}" fill="#7aa6d8"><title>{label}</title></rect>'
        )
        if index % max(1, count // 7) == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - 6}" font-size="10" '
                f'text-anchor="middle">{day.day:%m-%d}</text>'
            )
        if day.success_rate is not None:
            y = margin_top + plot_height * (1 - day.success_rate)
            points.append(f"{x + slot / 2:.1f},{y:.1f}")
    if points:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="#2a8a3a" stroke-width="2"/>'
        )
        for point in points:
            cx, cy = point.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="#2a8a3a"/>')
    parts.append("</svg>")
    return "".join(parts)


def campaign_overview(*, tenant: Tenant) -> dict[str, Any]:
    """What the tenant overview shows of campaigns: the next schedules."""
    return {"upcoming_schedules": list(schedule_list(tenant=tenant, upcoming_only=True)[:5])}
