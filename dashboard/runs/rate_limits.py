"""Rate limits shared by every worker on every machine, kept in Redis.

Token buckets (Optimove campaigns: 500 requests/s per brand) and windows (TriggerDaily: one
request per tenant per 10 minutes). Celery's per-worker `rate_limit` cannot do this: it knows
nothing of the other workers.

Without REDIS_URL (the zero-setup demo, one worker process) an in-process limiter stands in.
"""

from __future__ import annotations

import math
import threading
import time
from functools import cache

from django.conf import settings

from dashboard.observability.metrics import record_rate_limit_wait
from dashboard.runs.operations import RateRule

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

# KEYS[1]: bucket. ARGV: rate per second, capacity, tokens wanted, tokens to leave in the bucket.
# Returns {tokens granted now (0..wanted), milliseconds until one more could be granted}.
BUCKET_MANY_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local granted = math.floor(math.max(0, tokens - reserve))
if granted > wanted then granted = wanted end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
if granted > 0 then return {granted, 0} end
return {0, math.max(1, math.ceil((reserve + 1 - tokens) * 1000 / rate))}
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
        self._bucket_many = self.redis.register_script(BUCKET_MANY_SCRIPT)

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

    def acquire_many(self, rule: RateRule, wanted: int, *, reserve: int = 0) -> tuple[int, float]:
        """Take up to `wanted` requests from a bucket rule, leaving `reserve` tokens in it.

        Returns (how many may go now, seconds until one more could); a batch sender calls it
        until it has all it needs. A positive `reserve` makes the caller yield to callers with
        none (polls to sends) while the bucket runs dry.
        """
        rate = rule.limit / rule.period_seconds
        capacity = rule.burst or max(1, int(rate * 0.02))
        granted, waited = self._bucket_many(
            keys=[f"triggerdesk:bucket:{rule.key}"],
            args=[rate, capacity, wanted, min(reserve, capacity - 1)],
        )
        if not granted:
            record_rate_limit_wait(self.redis, rule_key=rule.key, seconds=int(waited) / 1000.0)
        return int(granted), int(waited) / 1000.0

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

    def acquire_many(self, rule: RateRule, wanted: int, *, reserve: int = 0) -> tuple[int, float]:
        now = time.monotonic()
        rate = rule.limit / rule.period_seconds
        capacity = rule.burst or max(1, int(rate * 0.02))
        reserve = min(reserve, capacity - 1)
        with self._lock:
            tokens, stamp = self._buckets.get(rule.key, (capacity, now))
            tokens = min(capacity, tokens + (now - stamp) * rate)
            granted = min(wanted, int(max(0.0, tokens - reserve)))
            self._buckets[rule.key] = (tokens - granted, now)
        if granted:
            return granted, 0.0
        return 0, max(0.001, math.ceil((reserve + 1 - tokens) / rate * 1000) / 1000.0)

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


def acquire_all(rules: list[RateRule]) -> float:
    """Take one request from every rule; the longest wait if any says wait (0 when all allow)."""
    limiter = rate_limiter()
    waits = [limiter.acquire(rule) for rule in rules]
    return max(waits, default=0.0)
