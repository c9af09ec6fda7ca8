"""The Celery broker transports: kombu's Redis and filesystem transports with two repairs.

settings.CELERY_BROKER_TRANSPORT names one of these classes (the broker URL still says which
broker to reach).

Redis: when the broker goes away, Celery 5.7's consumer first `collect()`s the broken connection
(which unlinks the transport from its connection) and then closes it; closing the channel then
tries to hand back the messages the worker holds unacknowledged (every poll waiting for its
countdown) and builds a new Redis pool from the unlinked connection:
`AttributeError: 'NoneType' object has no attribute 'hostname'`. That is not a connection error,
so Celery calls it unrecoverable and the worker exits instead of reconnecting. Here the channel
reports a connection error instead, which Celery ignores while it reconnects. The messages stay
in Redis's unacked set and are delivered again after the visibility timeout (and the sweeper
re-enqueues due runs meanwhile), as after a worker crash.

Filesystem (the demo, no server): kombu creates a message file and then writes it, and a worker
polling the folder can claim the file in between and read it empty or half-written
(`JSONDecodeError: Expecting value`), which kills the worker and loses the message. Here a
message is written under a temporary name and renamed into place (a rename within a folder is
atomic), and a reader leaves a file it cannot parse for a later poll instead of failing.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import redis
from kombu.exceptions import ChannelError
from kombu.transport import filesystem as kombu_filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

# A message file that still does not parse after this long was not being written: it is damaged.
DAMAGED_AFTER_SECONDS = 60.0


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            # The connection was collected after the broker went away (see the module docstring).
            raise redis.exceptions.ConnectionError("The broker connection was already closed.")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, whose channels survive being closed after a broker restart."""

    Channel = RedisChannel


class FilesystemChannel(kombu_filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Write the message under a name no reader picks up, then rename it into place."""
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        # A leading dot: readers take only "<stamp>_<uuid>.<queue>.msg" names.
        partial = folder / f".{uuid.uuid4().hex}.partial"
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(partial, folder / name)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {name!r} to directory") from error

    def _get(self, queue: str) -> Any:
        """The oldest complete message of `queue`; a file that does not parse is left alone
        (a writer without atomic renames may still be writing it) until it is plainly damaged,
        then moved aside to the processed folder's `damaged` subfolder."""
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        claimed_folder = Path(self.processed_folder)
        claimed_folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            path = folder / name
            try:
                payload = loads(bytes_to_str(path.read_bytes()))
            except OSError:
                continue  # another worker took it meanwhile
            except ValueError:
                self._set_aside_if_damaged(path)
                continue
            claimed = claimed_folder / name
            try:
                # Same file system (both under the broker folder): an atomic claim.
                os.replace(path, claimed)
            except OSError:
                continue  # another worker claimed it first
            if not self.store_processed:
                claimed.unlink(missing_ok=True)
            return payload
        raise Empty()

    def _set_aside_if_damaged(self, path: Path) -> None:
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return
        if age < DAMAGED_AFTER_SECONDS:
            logger.info("broker message %s is not complete yet; reading it later", path.name)
            return
        damaged = Path(self.processed_folder) / "damaged"
        damaged.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, damaged / path.name)
        except OSError:
            return
        logger.error("broker message %s does not parse; moved to %s", path.name, damaged)


class FilesystemTransport(kombu_filesystem.Transport):
    """kombu's filesystem transport with atomic message writes and torn-read tolerance."""

    Channel = FilesystemChannel
