"""Rate limits shared by every worker on every machine, kept in Redis.

Sliding windows with held places (Optimove campaigns: 500 requests/s per brand, counted by the
vendor as requests arrive), windows (TriggerDaily: one request per tenant per 10 minutes) and
token buckets (our own API's per-token limit). Celery's per-worker `rate_limit` cannot do this:
it knows nothing of the other workers.

Why held places rather than a bucket for a vendor's per-second limit: a bucket spaces the
grants, but the vendor counts arrivals. A thread starved of CPU after its grant, or a vendor
that reads its socket late, moves requests granted in one second into the next, where they
arrive together with that second's own: more than the limit at the vendor, and 429s. A place
that is held from the grant until a period after the answer covers the request's arrival
whatever happened in between: when the last of any `limit + 1` requests arriving within one
period was granted, all the others were already granted and none had been answered more than
a period before, so all were holding a place: the limiter refused it.

Without REDIS_URL (the zero-setup demo, one worker process) an in-process limiter stands in.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable
from functools import cache

from django.conf import settings

from dashboard.observability.metrics import record_rate_limit_wait
from dashboard.runs.operations import RateRule

logger = logging.getLogger(__name__)

# KEYS[1]: bucket. ARGV: rate per second, capacity, cost. Returns milliseconds to wait (0: go).
# Time comes from the Redis server so that machines with skewed clocks agree.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
if tokens >= cost then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return math.ceil((cost - tokens) * 1000 / rate)
"""

# A person's click in flight (a single run's send on the interactive lane, from the moment it
# is enqueued until its answer is recorded): the bulk lane's dispatchers grant no new requests
# meanwhile. On two cores a burst keeps every CPU busy, and each of the click's round trips to
# PostgreSQL then waits its turn among the burst's backends (20-50 ms, at any one of them); a
# few ms after the grants stop, the burst's requests in flight are answered and recorded and the
# click has the machine. Each entry lapses after INTERACTIVE_HOLD_SECONDS (a worker that died
# holds nothing), and the lane yields from a budget in wall time (YIELD_CAPACITY_SECONDS, refilled
# at YIELD_SHARE of the time): a stream of clicks slows a burst by at most that share, never
# stops it. docs/engine.md "Workers" tells the rest.
INTERACTIVE_KEY = "triggerdesk:interactive"
YIELD_BUDGET_KEY = "triggerdesk:interactive:yield-budget"
INTERACTIVE_HOLD_SECONDS = 1.0
YIELD_CAPACITY_SECONDS = 0.25
YIELD_SHARE = 0.1
# A yielding dispatcher asks again this soon (it then gathers threads for GRANT_GATHER_SECONDS).
YIELD_STEP_SECONDS = 0.005

# KEYS[1]: the click's entry in INTERACTIVE_KEY. ARGV: the entry, ms until it lapses.
INTERACTIVE_BEGIN_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 0
"""

# KEYS[1]: sorted set of held places (member: place id, score: ms when it frees); KEYS[2]:
# the clicks in flight (INTERACTIVE_KEY); KEYS[3]: the bulk lane's yield budget (a hash: ms of
# budget, when last counted, whether the lane was yielding since then).
# ARGV: limit, ms a place is held when its answer is never reported, places wanted, places to
# leave free (reserve), id prefix, the period in ms, 1 when the caller yields to clicks (a bulk
# dispatcher), the budget's capacity in ms, its share, the ms a yielding caller waits, then the
# ids of places whose answers came back (freed first, as SLOTS_FREE_SCRIPT does: one round trip
# for both). Returns {places granted, ms to wait before asking again, 1 when yielding to a
# click}.
SLOTS_TAKE_SCRIPT = """
local limit = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local prefix = ARGV[5]
local period = tonumber(ARGV[6])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
for index = 11, #ARGV do
  redis.call('ZADD', KEYS[1], now + period, ARGV[index])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[7] == '1' then
  local capacity = tonumber(ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local clicks = redis.call('ZCARD', KEYS[2])
  local budget = redis.call('HMGET', KEYS[3], 'ms', 'at', 'yielding')
  -- Counted in wall time, once whatever the number of dispatchers asking: from the last
  -- count, refilled at the share, and spent too when the lane was yielding since then.
  if clicks > 0 or budget[3] == '1' then
    local left = tonumber(budget[1]) or capacity
    local elapsed = math.max(0, now - (tonumber(budget[2]) or now))
    left = left + elapsed * tonumber(ARGV[9])
    if budget[3] == '1' then left = left - elapsed end
    left = math.max(0, math.min(capacity, left))
    local yielding = clicks > 0 and left >= 1
    redis.call('HSET', KEYS[3], 'ms', tostring(left), 'at', now, 'yielding', yielding and '1' or '0')
    redis.call('PEXPIRE', KEYS[3], 60000)
    if yielding then
      return {0, math.max(1, math.floor(math.min(tonumber(ARGV[10]), left))), 1}
    end
  end
end
local granted = limit - reserve - redis.call('ZCARD', KEYS[1])
if granted > wanted then granted = wanted end
if granted > 0 then
  local places = {}
  for index = 1, granted do
    places[#places + 1] = now + hold
    places[#places + 1] = prefix .. index
  end
  redis.call('ZADD', KEYS[1], unpack(places))
  redis.call('PEXPIRE', KEYS[1], hold + 1000)
  return {granted, 0, 0}
end
-- Full: places free as answers come back (any moment) or as held ones expire.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 20
if first[2] then wait = math.min(20, math.max(1, tonumber(first[2]) - now)) end
return {0, wait, 0}
"""

# KEYS[1]: sorted set of held places. ARGV[1]: the period in ms; ARGV[2..]: place ids whose
# answers came back. Each is held one more period from now (the vendor may have counted it at
# any moment until its answer left). Re-added if it had expired: never under-counted.
SLOTS_FREE_SCRIPT = """
local period = tonumber(ARGV[1])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
for index = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + period, ARGV[index])
end
if redis.call('PTTL', KEYS[1]) < period + 1000 then
  redis.call('PEXPIRE', KEYS[1], period + 1000)
end
return 0
"""

# KEYS[1]: window key. ARGV[1]: window length in ms. Returns ms left in the window (0: go).
WINDOW_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then return 1 end
return left
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self._bucket = self.redis.register_script(BUCKET_SCRIPT)
        self._window = self.redis.register_script(WINDOW_SCRIPT)
        self._slots_take = self.redis.register_script(SLOTS_TAKE_SCRIPT)
        self._slots_free = self.redis.register_script(SLOTS_FREE_SCRIPT)
        self._interactive_begin = self.redis.register_script(INTERACTIVE_BEGIN_SCRIPT)

    def acquire(self, rule: RateRule) -> float:
        """Take one request from the rule's budget; 0 when it may go now, else seconds to wait."""
        if rule.window:
            waited = self._window(
                keys=[f"triggerdesk:window:{rule.key}"], args=[int(rule.period_seconds * 1000)]
            )
        else:
            rate = rule.limit / rule.period_seconds
            capacity = rule.burst or max(1, int(rate * 0.02))
            waited = self._bucket(keys=[f"triggerdesk:bucket:{rule.key}"], args=[rate, capacity, 1])
        if waited:
            record_rate_limit_wait(self.redis, rule_key=rule.key, seconds=int(waited) / 1000.0)
        return int(waited) / 1000.0

    def take_slots(
        self,
        rule: RateRule,
        wanted: int,
        *,
        reserve: int = 0,
        freeing: Iterable[str] = (),
        yield_to_interactive: bool = False,
    ) -> tuple[list[str], float]:
        """Take up to `wanted` places of a sliding rule, leaving `reserve` free.

        Returns (the places granted, seconds until asking again may grant one). Each place must
        be given to `free_slots` (or to a later call's `freeing`) once its request's answer (or
        failure) came back; one never freed stays held for `rule.longest_request_seconds` plus
        the period. `freeing`: places whose answers came back, freed as `free_slots` would, in
        the same round trip and before the count (a sender answering and asking at once).
        `yield_to_interactive` (the bulk lane's dispatchers): grant nothing while a person's
        click is in flight (`interactive_begun`), within the lane's yield budget.
        """
        prefix = f"{uuid.uuid4().hex}:"
        granted, waited, yielded = self._slots_take(
            keys=[f"triggerdesk:slots:{rule.key}", INTERACTIVE_KEY, YIELD_BUDGET_KEY],
            args=[
                rule.limit,
                hold_milliseconds(rule),
                wanted,
                min(reserve, rule.limit - 1),
                prefix,
                int(rule.period_seconds * 1000),
                1 if yield_to_interactive else 0,
                int(YIELD_CAPACITY_SECONDS * 1000),
                YIELD_SHARE,
                int(YIELD_STEP_SECONDS * 1000),
                *freeing,
            ],
        )
        if not granted and not yielded:
            record_rate_limit_wait(self.redis, rule_key=rule.key, seconds=int(waited) / 1000.0)
        return [f"{prefix}{index}" for index in range(1, int(granted) + 1)], int(waited) / 1000.0

    def interactive_begun(self, entry: str) -> None:
        """A person's click is in flight (its send enqueued on the interactive lane): the bulk
        lane yields until `interactive_ended(entry)`, or INTERACTIVE_HOLD_SECONDS."""
        self._interactive_begin(
            keys=[INTERACTIVE_KEY], args=[entry, int(INTERACTIVE_HOLD_SECONDS * 1000)]
        )

    def interactive_ended(self, entry: str) -> None:
        """The click's send is done (sent and recorded, held or skipped)."""
        self.redis.zrem(INTERACTIVE_KEY, entry)

    def free_slots(self, rule: RateRule, slots: list[str]) -> None:
        """The answers to these places' requests came back: each is held one more period."""
        if slots:
            self._slots_free(
                keys=[f"triggerdesk:slots:{rule.key}"],
                args=[int(rule.period_seconds * 1000), *slots],
            )

    def set_flag(self, key: str, ttl_seconds: float) -> bool:
        """Set a short-lived flag unless it is set; True when this call set it."""
        return bool(
            self.redis.set(f"triggerdesk:flag:{key}", "1", nx=True, px=int(ttl_seconds * 1000))
        )

    def any_flag(self, keys: list[str]) -> bool:
        return bool(self.redis.exists(*[f"triggerdesk:flag:{key}" for key in keys]))

    def touch_flag(self, key: str, ttl_seconds: float) -> None:
        self.redis.pexpire(f"triggerdesk:flag:{key}", int(ttl_seconds * 1000))

    def clear_flag(self, key: str) -> None:
        self.redis.delete(f"triggerdesk:flag:{key}")

    def window_remaining(self, rule: RateRule) -> float:
        left = self.redis.pttl(f"triggerdesk:window:{rule.key}")
        return max(0, left) / 1000.0

    def release_window(self, rule: RateRule) -> None:
        """Give a window back when the request provably never left (not sent)."""
        self.redis.delete(f"triggerdesk:window:{rule.key}")


class LocalRateLimiter:
    """The same rules inside one process (the demo's single worker process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._windows: dict[str, float] = {}
        self._flags: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}

    def acquire(self, rule: RateRule) -> float:
        now = time.monotonic()
        with self._lock:
            if rule.window:
                until = self._windows.get(rule.key, 0.0)
                if until > now:
                    return until - now
                self._windows[rule.key] = now + rule.period_seconds
                return 0.0
            rate = rule.limit / rule.period_seconds
            capacity = rule.burst or max(1, int(rate * 0.02))
            tokens, stamp = self._buckets.get(rule.key, (capacity, now))
            tokens = min(capacity, tokens + (now - stamp) * rate)
            if tokens >= 1:
                self._buckets[rule.key] = (tokens - 1, now)
                return 0.0
            self._buckets[rule.key] = (tokens, now)
            return math.ceil((1 - tokens) / rate * 1000) / 1000.0

    def take_slots(
        self,
        rule: RateRule,
        wanted: int,
        *,
        reserve: int = 0,
        freeing: Iterable[str] = (),
        yield_to_interactive: bool = False,
    ) -> tuple[list[str], float]:
        # The demo's one worker process serves every lane: there is no burst on another
        # worker for a click to overtake, so nothing yields here.
        now = time.monotonic()
        reserve = min(reserve, rule.limit - 1)
        with self._lock:
            answered = self._slots.setdefault(rule.key, {})
            for place in freeing:
                answered[place] = now + rule.period_seconds
            held = {
                place: until
                for place, until in self._slots.get(rule.key, {}).items()
                if until > now
            }
            granted = min(wanted, rule.limit - reserve - len(held))
            places = [uuid.uuid4().hex for _ in range(max(0, granted))]
            for place in places:
                held[place] = now + hold_milliseconds(rule) / 1000.0
            self._slots[rule.key] = held
            first = min(held.values(), default=now)
        if places:
            return places, 0.0
        return [], min(0.02, max(0.001, first - now))

    def interactive_begun(self, entry: str) -> None:
        pass

    def interactive_ended(self, entry: str) -> None:
        pass

    def free_slots(self, rule: RateRule, slots: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            held = self._slots.setdefault(rule.key, {})
            for place in slots:
                held[place] = now + rule.period_seconds

    def set_flag(self, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._flags.get(key, 0.0) > now:
                return False
            self._flags[key] = now + ttl_seconds
            return True

    def any_flag(self, keys: list[str]) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(self._flags.get(key, 0.0) > now for key in keys)

    def touch_flag(self, key: str, ttl_seconds: float) -> None:
        with self._lock:
            if key in self._flags:
                self._flags[key] = time.monotonic() + ttl_seconds

    def clear_flag(self, key: str) -> None:
        with self._lock:
            self._flags.pop(key, None)

    def window_remaining(self, rule: RateRule) -> float:
        with self._lock:
            return max(0.0, self._windows.get(rule.key, 0.0) - time.monotonic())

    def release_window(self, rule: RateRule) -> None:
        with self._lock:
            self._windows.pop(rule.key, None)


@cache
def _limiter_for(url: str) -> RedisRateLimiter | LocalRateLimiter:
    return RedisRateLimiter(url) if url else LocalRateLimiter()


def rate_limiter() -> RedisRateLimiter | LocalRateLimiter:
    """The limiter for this process: Redis when REDIS_URL is set."""
    return _limiter_for(settings.REDIS_URL)


def hold_milliseconds(rule: RateRule) -> int:
    """How long a sliding rule's place is held when its answer is never reported."""
    return int((rule.period_seconds + rule.longest_request_seconds) * 1000)


class Permit:
    """What `acquire_all` allowed: `wait` > 0 means not now. Call `answered()` once the
    request's answer (or its failure) came back, so sliding rules start counting down."""

    def __init__(
        self,
        wait: float,
        held: list[tuple[RateRule, list[str]]],
        windows: list[RateRule] | None = None,
    ) -> None:
        self.wait = wait
        self._held = held
        self._windows = windows or []

    def answered(self) -> None:
        """Give back the places held for the request; safe to call more than once."""
        held, self._held = self._held, []
        for rule, slots in held:
            try:
                rate_limiter().free_slots(rule, slots)
            except Exception:
                # The place stays held until it expires: under-using the limit, never over.
                logger.warning("rate limiter failed to free a place of %s", rule.key)

    def unused(self) -> None:
        """The request was never made (what was to record its start failed first): give back
        the windows taken for it, as a request that was not sent gives its window back, and its
        places. Without this a rollback costs the next attempt a whole window (TriggerDaily:
        ten minutes) for a request the vendor never saw."""
        windows, self._windows = self._windows, []
        for rule in windows:
            try:
                rate_limiter().release_window(rule)
            except Exception:
                # The window stays until it expires: under-using the limit, never over.
                logger.warning("rate limiter failed to give back the window of %s", rule.key)
        self.answered()


def acquire_all(rules: list[RateRule]) -> Permit:
    """Take one request from every rule: a permit whose `wait` is the longest any rule asks for
    (0 when all allow). A refused permit holds nothing."""
    limiter = rate_limiter()
    waits: list[float] = []
    held: list[tuple[RateRule, list[str]]] = []
    windows: list[RateRule] = []
    for rule in rules:
        if rule.sliding:
            slots, wait = limiter.take_slots(rule, 1)
            if slots:
                held.append((rule, slots))
            waits.append(0.0 if slots else wait)
        else:
            wait = limiter.acquire(rule)
            if rule.window and not wait:
                windows.append(rule)
            waits.append(wait)
    permit = Permit(max(waits, default=0.0), held, windows)
    if permit.wait > 0:
        # Not now: a window another rule's refusal leaves unused is given back too.
        permit.unused()
    return permit
