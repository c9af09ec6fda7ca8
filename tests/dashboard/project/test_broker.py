"""The demo's filesystem broker (dashboard.project.broker): a message is never read half-written.

The Redis transport's repair is tested against a real redis-server in tests/e2e/test_broker.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from dashboard.project import broker


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[Any]:
    folders = {
        "data_folder_in": str(tmp_path / "out"),
        "data_folder_out": str(tmp_path / "out"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    (tmp_path / "out").mkdir()
    with Connection("filesystem://", transport=broker.FilesystemTransport) as connection:
        connection.transport_options.update(folders)
        channel = connection.channel()
        yield channel
        channel.close()


def message_files(channel: Any) -> list[str]:
    return sorted(name for name in os.listdir(channel.data_folder_in) if name.endswith(".msg"))


def test_a_message_goes_through_the_folder(channel) -> None:
    channel._put("send", {"body": "run 1"})
    channel._put("send", {"body": "run 2"})

    # Messages of the same millisecond come in either order, as with kombu's own transport.
    received = [channel._get("send"), channel._get("send")]
    assert sorted(message["body"] for message in received) == ["run 1", "run 2"]
    with pytest.raises(Empty):
        channel._get("send")
    assert message_files(channel) == []


def test_a_reader_never_sees_a_message_being_written(channel, monkeypatch) -> None:
    """A worker polling the folder while the web writes a message: kombu created the file
    first and filled it after, so the worker read it empty and died (JSONDecodeError)."""
    seen_during_write = []
    original_dumps = broker.dumps

    def dumps_while_a_worker_polls(payload: Any) -> str:
        try:
            seen_during_write.append(channel._get("send"))
        except Empty:
            seen_during_write.append("nothing")
        return original_dumps(payload)

    monkeypatch.setattr(broker, "dumps", dumps_while_a_worker_polls)
    monkeypatch.setattr("kombu.transport.filesystem.dumps", dumps_while_a_worker_polls)

    channel._put("send", {"body": "run 1"})

    assert seen_during_write == ["nothing"]
    assert channel._get("send") == {"body": "run 1"}


def test_a_half_written_file_is_left_for_a_later_poll(channel) -> None:
    """A file another writer has not finished yet is not lost, and does not kill the reader."""
    folder = Path(channel.data_folder_in)
    torn = folder / f"{round(time.monotonic() * 1000)}_half.send.msg"
    torn.write_bytes(b'{"body": "ru')

    with pytest.raises(Empty):
        channel._get("send")
    assert torn.exists()

    torn.write_bytes(b'{"body": "run 1"}')
    assert channel._get("send") == {"body": "run 1"}
    assert not torn.exists()


def test_a_file_that_never_parses_is_moved_aside_and_the_queue_goes_on(channel, caplog) -> None:
    folder = Path(channel.data_folder_in)
    damaged = folder / "0_damaged.send.msg"  # older than any message written now
    damaged.write_bytes(b"not json")
    old = time.time() - broker.DAMAGED_AFTER_SECONDS - 1
    os.utime(damaged, (old, old))
    channel._put("send", {"body": "run 2"})

    with caplog.at_level(logging.ERROR, logger="dashboard.project.broker"):
        assert channel._get("send") == {"body": "run 2"}

    assert not damaged.exists()
    assert (Path(channel.processed_folder) / "damaged" / damaged.name).exists()
    assert "does not parse" in caplog.text
