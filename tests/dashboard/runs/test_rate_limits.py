"""The shared rate limiter's sliding rules: a request holds its place from its grant until a
period after its answer, so a vendor counting arrivals never sees more than the limit."""

import heapq
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.observability.metrics import RATE_LIMIT_WAITS_KEY
from dashboard.runs import rate_limits
from dashboard.runs.operations import RateRule
from dashboard.runs.rate_limits import LocalRateLimiter, RedisRateLimiter, acquire_all
from tests.e2e.conftest import wait_for


def sliding(limit: int = 3, period: float = 1.0, longest: float = 120.0) -> RateRule:
    return RateRule(
        key="test-sliding",
        limit=limit,
        period_seconds=period,
        sliding=True,
        longest_request_seconds=longest,
    )


class VirtualClock:
    """Stands in for time.monotonic inside the limiter module: the simulation sets the time."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    requests=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=0.3),  # when it asks, after the previous one
            st.floats(min_value=0, max_value=2.0),  # grant → arrival at the vendor (a stall)
            st.floats(min_value=0, max_value=0.5),  # arrival → answer back here
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_no_period_at_the_vendor_ever_counts_more_arrivals_than_the_limit(limit, requests):
    """Whatever the delays between grant, arrival and answer, any one-second span at the vendor
    holds at most `limit` arrivals (a token bucket fails this as soon as grants arrive late)."""
    clock = VirtualClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rate_limits, "time", clock)
        arrivals = simulate(LocalRateLimiter(), sliding(limit=limit), requests, clock)
    arrivals.sort()
    for index, first in enumerate(arrivals):
        within = [arrival for arrival in arrivals[index:] if arrival < first + 1.0]
        assert len(within) <= limit, (first, within)


def simulate(limiter, rule, requests, clock) -> list[float]:
    """Each request asks for a place (again after the wait it is told), arrives after its
    stall, is answered after its answer delay; the arrival times at the vendor."""
    # Events in virtual time: (time, order, kind, request); kinds "ask" and "answer".
    events: list[tuple[float, int, str, int]] = []
    asked = 0.0
    for number, (gap, _, _) in enumerate(requests):
        asked += gap
        heapq.heappush(events, (asked, number, "ask", number))
    arrivals: list[float] = []
    places: dict[int, list[str]] = {}
    order = len(requests)
    while events:
        at, _, kind, number = heapq.heappop(events)
        clock.now = at
        if kind == "ask":
            granted, wait = limiter.take_slots(rule, 1)
            order += 1
            if not granted:
                assert wait > 0
                heapq.heappush(events, (at + wait, order, "ask", number))
                continue
            _, stall, answer = requests[number]
            places[number] = granted
            arrivals.append(at + stall)
            heapq.heappush(events, (at + stall + answer, order, "answer", number))
        else:
            limiter.free_slots(rule, places.pop(number))
    return arrivals


def test_places_are_held_until_answered_and_a_reserve_is_left(clean_redis, settings):
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=4, period=0.2)

    first, wait = limiter.take_slots(rule, 3, reserve=2)  # 4 - 2 reserved: two go
    assert len(first) == 2 and wait == 0
    refused, wait = limiter.take_slots(rule, 1, reserve=2)
    assert refused == [] and 0 < wait <= 0.02
    more, _ = limiter.take_slots(rule, 5)  # sends may take the reserve
    assert len(more) == 2
    assert limiter.take_slots(rule, 1)[0] == []

    # Answered: held one more period, then free again (waited for, not timed).
    limiter.free_slots(rule, first)
    assert limiter.take_slots(rule, 1)[0] == []
    wait_for(lambda: limiter.take_slots(rule, 1)[0], timeout=30, message="a freed place")


def test_a_place_never_answered_stays_held_for_the_longest_request(clean_redis, settings):
    """A worker that died mid-request never frees its place: it must still cover the arrival
    the vendor may have counted, so it is held for the longest a request may take."""
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=2, longest=300.0)
    before = time.time()
    places, _ = limiter.take_slots(rule, 2)
    scores = dict(clean_redis.zrange(f"triggerdesk:slots:{rule.key}", 0, -1, withscores=True))
    assert {place.encode() for place in places} == set(scores)
    assert min(scores.values()) / 1000 >= before + 300
    assert clean_redis.pttl(f"triggerdesk:slots:{rule.key}") > 300_000


def test_a_permit_holds_a_sliding_place_until_its_answer(clean_redis, settings):
    rule = sliding(limit=1, period=0.2)
    permit = acquire_all([rule])
    assert permit.wait == 0
    refused = acquire_all([rule])
    assert refused.wait > 0
    permit.answered()
    permit.answered()  # twice is harmless
    wait_for(lambda: acquire_all([rule]).wait == 0, timeout=30, message="the place to free")


@pytest.mark.parametrize("make", [LocalRateLimiter, None])
def test_both_limiters_refuse_past_the_limit(make, clean_redis, settings):
    limiter = make() if make else RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=3)
    assert len(limiter.take_slots(rule, 10)[0]) == 3
    assert limiter.take_slots(rule, 1)[0] == []


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    asks=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=0.3),  # when it asks, after the previous one
            st.integers(min_value=1, max_value=6),  # places wanted at once
            st.floats(min_value=0, max_value=2.0),  # grant → arrival at the vendor (a stall)
            st.floats(min_value=0, max_value=0.5),  # arrival → answer back here
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_places_taken_several_at_once_and_freed_with_the_next_grant_never_exceed_the_limit(
    limit, asks
):
    """The batched dispatcher's way: several places per call, and the places of answered
    requests freed only with its next call (`freeing`). Any one-second span at the vendor still
    holds at most `limit` arrivals."""
    clock = VirtualClock()
    limiter = LocalRateLimiter()
    rule = sliding(limit=limit)
    # Events in virtual time: (time, order, kind, number): an ask's number is its index in
    # `asks`, an answer's the key of its place in `in_flight`.
    events: list[tuple[float, int, str, int]] = []
    asked = 0.0
    for number, (gap, *_rest) in enumerate(asks):
        asked += gap
        heapq.heappush(events, (asked, number, "ask", number))
    order = len(asks)
    arrivals: list[float] = []
    in_flight: dict[int, str] = {}
    answered: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rate_limits, "time", clock)
        while events:
            at, _, kind, number = heapq.heappop(events)
            clock.now = at
            order += 1
            if kind == "answer":
                answered.append(in_flight.pop(number))
                continue
            _, wanted, stall, answer = asks[number]
            freeing, answered = answered, []
            granted, wait = limiter.take_slots(rule, wanted, freeing=freeing)
            assert len(granted) <= wanted
            if not granted:
                assert wait > 0
            if len(granted) < wanted:
                # The rest asks again later, as _start_with_places does.
                heapq.heappush(events, (at + max(wait, 0.005), order, "ask", number))
                asks[number] = (0.0, wanted - len(granted), stall, answer)
            for place in granted:
                order += 1
                in_flight[order] = place
                arrivals.append(at + stall)
                heapq.heappush(events, (at + stall + answer, order, "answer", order))
    arrivals.sort()
    for index, first in enumerate(arrivals):
        within = [arrival for arrival in arrivals[index:] if arrival < first + 1.0]
        assert len(within) <= limit, (first, within)


def test_places_freed_with_a_grant_are_held_one_more_period_first(clean_redis, settings):
    """`take_slots(freeing=...)` frees answered places exactly as free_slots does (held one
    more period, counted in that same call), so freeing with a grant never lets more through."""
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=2, period=0.2)
    first, _ = limiter.take_slots(rule, 2)
    assert len(first) == 2
    # Answered: freed with the next ask, which they still fill.
    assert limiter.take_slots(rule, 2, freeing=first)[0] == []
    scores = dict(clean_redis.zrange(f"triggerdesk:slots:{rule.key}", 0, -1, withscores=True))
    assert {place.encode() for place in first} == set(scores)
    assert clean_redis.pttl(f"triggerdesk:slots:{rule.key}") < 300_000  # no longer the long hold
    wait_for(lambda: len(limiter.take_slots(rule, 5)[0]) == 2, timeout=30, message="the period")


def test_the_bulk_lane_grants_nothing_while_a_click_is_in_flight(clean_redis, settings):
    """A dispatcher (yield_to_interactive) waits a few ms at a time while a person's click is in
    flight; the click's own permit and other callers are not held; the end of the click frees
    the lane at once."""
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=10)
    limiter.interactive_begun("run:1")

    places, wait = limiter.take_slots(rule, 2, yield_to_interactive=True)
    assert places == [] and 0 < wait <= rate_limits.YIELD_STEP_SECONDS
    assert len(limiter.take_slots(rule, 2)[0]) == 2  # not a bulk caller: never held
    # A yield is no rate-limit wait: the brand's window had room.
    assert not clean_redis.exists(RATE_LIMIT_WAITS_KEY)

    limiter.interactive_ended("run:1")
    assert len(limiter.take_slots(rule, 2, yield_to_interactive=True)[0]) == 2


def test_a_click_whose_worker_died_holds_the_bulk_lane_only_briefly(
    clean_redis, settings, monkeypatch
):
    monkeypatch.setattr(rate_limits, "INTERACTIVE_HOLD_SECONDS", 0.05)
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=10)
    limiter.interactive_begun("run:1")  # never ended

    assert limiter.take_slots(rule, 1, yield_to_interactive=True)[0] == []
    wait_for(
        lambda: limiter.take_slots(rule, 1, yield_to_interactive=True)[0],
        timeout=30,
        message="the click's entry to lapse",
    )


def test_a_stream_of_clicks_slows_the_bulk_lane_but_never_stops_it(
    clean_redis, settings, monkeypatch
):
    """The lane yields from a budget counted in wall time: once it is spent, dispatchers grant
    again though clicks are still in flight."""
    monkeypatch.setattr(rate_limits, "YIELD_CAPACITY_SECONDS", 0.02)
    monkeypatch.setattr(rate_limits, "YIELD_SHARE", 0)  # never refilled in this test
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = sliding(limit=1000)
    limiter.interactive_begun("run:1")

    assert limiter.take_slots(rule, 1, yield_to_interactive=True)[0] == []
    wait_for(
        lambda: limiter.take_slots(rule, 1, yield_to_interactive=True)[0],
        timeout=30,
        message="the yield budget to be spent",
    )
    assert clean_redis.zcard(rate_limits.INTERACTIVE_KEY) == 1  # the click is still in flight
    assert limiter.take_slots(rule, 1, yield_to_interactive=True)[0]


def test_the_demo_limiter_never_yields(settings):
    """The demo's single worker process serves every lane: nothing to overtake."""
    limiter = LocalRateLimiter()
    limiter.interactive_begun("run:1")
    assert len(limiter.take_slots(sliding(limit=5), 2, yield_to_interactive=True)[0]) == 2
    limiter.interactive_ended("run:1")
