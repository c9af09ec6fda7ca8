"""Sessions kept in the database and read through Redis.

Every page and every htmx poll reads the session; from the database that is one query of the
three a live fragment may cost. Django's cached_db store reads Redis first and the database only
on a miss; it writes both. Two changes to it:

- Redis trouble never fails a request: a failed cache read or write falls back to the database
  (Django's store already does this for reads and saves, not for the write after a miss).
- A cached copy lives at most CACHE_SECONDS. A logout deletes the row and the cached copy; if
  Redis was unreachable at that moment, the stale copy would otherwise outlive the logout for
  the session's whole age (two weeks).
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDatabaseStore
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300


class SessionStore(CachedDatabaseStore):
    def _cache_seconds(self, age: int) -> int:
        return max(0, min(age, CACHE_SECONDS))

    def load(self) -> dict:
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            logger.warning("session cache unreadable; reading the database", exc_info=True)
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(
                self.cache_key,
                data,
                self._cache_seconds(self.get_expiry_age(expiry=stored.expire_date)),
            )
        except Exception:
            logger.warning("session cache unwritable", exc_info=True)
        return data

    def exists(self, session_key: str) -> bool:
        # A new session key must be unused in the database, whatever the cache says.
        return DatabaseStore.exists(self, session_key)

    def save(self, must_create: bool = False) -> None:
        DatabaseStore.save(self, must_create)
        try:
            self._cache.set(
                self.cache_key, self._session, self._cache_seconds(self.get_expiry_age())
            )
        except Exception:
            logger.warning("session cache unwritable", exc_info=True)

    def delete(self, session_key: str | None = None) -> None:
        DatabaseStore.delete(self, session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception:
            logger.warning("session cache unwritable on delete", exc_info=True)
