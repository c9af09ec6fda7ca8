"""The run's states, their groups and the only moves between them (docs/engine.md draws them).

Every write of `Run.state` checks its move here: `transition()` (one run), the dispatcher's claim
and its set-based outcome writes (`bulk.update_rows`), and the creation of a run. A move that is
not in ALLOWED is a programming error: it raises IllegalTransition instead of being written.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils.translation import gettext_lazy


class RunState(models.TextChoices):
    DRAFT = "draft", gettext_lazy("Draft")  # prepared, not yet requested
    # needs a second person
    AWAITING_APPROVAL = "awaiting_approval", gettext_lazy("Awaiting approval")
    # approved (or needs no approval); a worker will send it
    QUEUED = "queued", gettext_lazy("Queued")
    # a worker holds it and may be talking to the vendor
    SENDING = "sending", gettext_lazy("Sending")
    ACCEPTED = "accepted", gettext_lazy("Accepted")  # the vendor took it; polling its status
    SUCCEEDED = "succeeded", gettext_lazy("Succeeded")  # the vendor did it
    FAILED = "failed", gettext_lazy("Failed")  # the vendor did not do it, and will not
    # sent, no answer: being reconciled
    OUTCOME_UNKNOWN = "outcome_unknown", gettext_lazy("Outcome unknown")
    # withdrawn, rejected or expired before sending
    CANCELLED = "cancelled", gettext_lazy("Cancelled")


# A worker may be busy with these; the sweeper watches them.
ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.SENDING, RunState.ACCEPTED})
# Nothing more will happen to these.
TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
# Still open: the daily guardrail counts these as "another trigger in flight".
IN_FLIGHT_STATES = frozenset(
    {RunState.QUEUED, RunState.SENDING, RunState.ACCEPTED, RunState.OUTCOME_UNKNOWN}
)
CAN_CANCEL = frozenset({RunState.DRAFT, RunState.AWAITING_APPROVAL, RunState.QUEUED})
# What a request creates (run_submit, run_submit_many).
INITIAL_STATES = frozenset({RunState.AWAITING_APPROVAL, RunState.QUEUED})

# The sweeper's clock (read by the selectors that tell a person a run looks stuck).
STALE_QUEUED_SECONDS = 60
STALE_POLL_SECONDS = 60

_S = RunState
# to <- from: every move some code path makes; nothing else.
ALLOWED: dict[str, frozenset[str]] = {
    # approve; retry or rate-limited back; send again
    _S.QUEUED: frozenset({_S.AWAITING_APPROVAL, _S.SENDING, _S.OUTCOME_UNKNOWN}),
    # a worker claims it; reconcile asks again
    _S.SENDING: frozenset({_S.QUEUED, _S.OUTCOME_UNKNOWN}),
    # the vendor took it (a late answer beats the sweeper)
    _S.ACCEPTED: frozenset({_S.SENDING, _S.OUTCOME_UNKNOWN}),
    # sent; reconcile, mark as sent, duplicate refusal; poll
    _S.SUCCEEDED: frozenset({_S.SENDING, _S.OUTCOME_UNKNOWN, _S.ACCEPTED}),
    # guardrail, credentials; rejected, configuration; poll
    _S.FAILED: frozenset({_S.QUEUED, _S.SENDING, _S.ACCEPTED}),
    # no answer, worker lost, reconcile; poll deadline
    _S.OUTCOME_UNKNOWN: frozenset({_S.SENDING, _S.ACCEPTED}),
    # cancel; reject; approval expired
    _S.CANCELLED: frozenset({_S.DRAFT, _S.AWAITING_APPROVAL, _S.QUEUED}),
}


class IllegalTransition(Exception):
    """A code path tried a move of a run's state that ALLOWED does not list."""


def sources(to_state: str, from_states: Iterable[str]) -> list[str]:
    """`from_states` as a list for a guarded UPDATE (`state__in=`), after checking that every
    move from one of them to `to_state` is in ALLOWED; raises IllegalTransition naming the
    first move that is not."""
    allowed = ALLOWED.get(to_state, frozenset())
    states = sorted(from_states)
    if not states:
        raise IllegalTransition(f"a move to {to_state} needs the states it may come from")
    for state in states:
        if state not in allowed:
            raise IllegalTransition(f"a run may not move from {state} to {to_state}")
    return states


def check_initial(state: str) -> str:
    """The state a new run is created in, after checking it is one a request may create."""
    if state not in INITIAL_STATES:
        raise IllegalTransition(f"a run may not be created in {state}")
    return state


def mermaid_diagram() -> str:
    """ALLOWED as a Mermaid state diagram (docs/engine.md shows it; a test keeps them equal)."""
    lines = ["stateDiagram-v2"]
    lines += [f"    [*] --> {state}" for state in sorted(INITIAL_STATES)]
    moves = sorted((source, target) for target, froms in ALLOWED.items() for source in froms)
    lines += [f"    {source} --> {target}" for source, target in moves]
    lines += [f"    {state} --> [*]" for state in sorted(TERMINAL_STATES)]
    return "\n".join(lines)
