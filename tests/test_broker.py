"""The embedded broker (workers.broker): atomic puts and gets on kombu's filesystem transport.

Stock kombu creates a message file in the queue folder before writing it, and
a consumer may read it empty (kombu issue #1551): the message is lost.  These
tests hold a producer in the middle of its write, leave unreadable files in
the queue, and run producers and consumers in separate processes at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kombu import Connection
from kombu.transport import filesystem, virtual

import workers.broker
from convlab.config import Settings
from workers.broker import TRANSPORT, Transport
from workers.celery_app import make_celery

ROOT = Path(__file__).resolve().parents[1]


def _options(folder: Path) -> dict:
    for sub in ("queue", "control", "processed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }


@pytest.fixture
def broker(tmp_path, monkeypatch):
    # kombu keeps exchange bindings in a process-wide state: a fresh one per test, since each
    # test has its own folders (a real broker folder lives as long as its processes).
    monkeypatch.setattr(Transport, "global_state", virtual.BrokerState())
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as conn:
        yield conn


def _held_write(half_written: threading.Event, go_on: threading.Event):
    """A ``workers.broker._write`` that stops halfway until ``go_on`` is set."""

    def slow_write(path, data):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            half_written.set()
            assert go_on.wait(10)
            f.write(data[len(data) // 2 :])

    return slow_write


def test_the_celery_app_uses_the_hardened_transport(tmp_path):
    settings = Settings(home=tmp_path, database_url="sqlite://", broker_url="filesystem://", secret_key="k")
    with make_celery(settings).connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_a_message_being_written_is_invisible_until_complete(broker, tmp_path, monkeypatch):
    """A producer held halfway through its write: consumers see no message (not an empty one),
    and once the write completes they get the whole message."""
    half_written, go_on = threading.Event(), threading.Event()
    real_write = workers.broker._write
    slow_write = _held_write(half_written, go_on)

    queue = broker.SimpleQueue("convlab")  # declared (its binding written) before the slow write
    monkeypatch.setattr(workers.broker, "_write", slow_write)
    producer = threading.Thread(target=queue.put, args=({"wake": 1},))
    producer.start()
    assert half_written.wait(10)
    assert list((tmp_path / "queue").iterdir()) == []
    with pytest.raises(queue.Empty):
        queue.get_nowait()
    go_on.set()
    producer.join(10)
    monkeypatch.setattr(workers.broker, "_write", real_write)
    message = queue.get(timeout=5)
    assert message.payload == {"wake": 1}
    message.ack()
    queue.close()


def test_an_unreadable_message_is_set_aside_and_the_next_one_delivered(broker, tmp_path):
    """An empty file (what stock kombu leaves mid-write) and a garbled one, first in line:
    the consumer does not fail, sets both aside, and gets the good message behind them."""
    queue = broker.SimpleQueue("convlab")
    queue.put({"wake": 2})
    (tmp_path / "queue" / "00000000000000000000_empty.convlab.msg").write_bytes(b"")
    (tmp_path / "queue" / "00000000000000000001_garbled.convlab.msg").write_bytes(b"{not json")
    message = queue.get(timeout=5)
    assert message.payload == {"wake": 2}
    message.ack()
    with pytest.raises(queue.Empty):
        queue.get_nowait()
    aside = sorted(p.name for p in (tmp_path / "claimed").iterdir())
    assert aside == ["00000000000000000000_empty.convlab.msg.bad", "00000000000000000001_garbled.convlab.msg.bad"]
    queue.close()


def test_a_binding_table_being_written_is_never_seen_half_written(broker, tmp_path, monkeypatch):
    """Two workers declaring their queues at once: while one binding is being written, the table
    reads as it was before (never empty), a second binding waits for the first, and both end in it."""
    first, second, reader = broker.channel(), broker.channel(), broker.channel()
    first._queue_bind("convlab", "convlab", None, "convlab")
    half_written, go_on = threading.Event(), threading.Event()
    real_write = workers.broker._write
    slow_write = _held_write(half_written, go_on)

    monkeypatch.setattr(workers.broker, "_write", slow_write)
    binder = threading.Thread(target=first._queue_bind, args=("convlab", "a", None, "queue-a"))
    binder.start()
    assert half_written.wait(10)
    monkeypatch.setattr(workers.broker, "_write", real_write)
    assert [b.queue for b in reader.get_table("convlab")] == ["convlab"]
    waiter = threading.Thread(target=second._queue_bind, args=("convlab", "b", None, "queue-b"))
    waiter.start()  # waits for the lock the first binder holds: it cannot start from the old table
    go_on.set()
    binder.join(10)
    waiter.join(10)
    assert sorted(b.queue for b in reader.get_table("convlab")) == ["convlab", "queue-a", "queue-b"]
    second._delete("queue-b", "convlab", "b", None)
    assert sorted(b.queue for b in reader.get_table("convlab")) == ["convlab", "queue-a"]
    assert sorted(p.name for p in (tmp_path / "control").iterdir()) == ["convlab.exchange", "convlab.exchange.lock"]
    for channel in (first, second, reader):
        channel.close()


def test_a_garbled_binding_table_is_rewritten_and_an_unreadable_one_left_alone(broker, tmp_path):
    """A table stock kombu left half-written is replaced by the bindings declared from then on; a
    table file that cannot be read at all is an error, and nothing is written over it."""
    channel = broker.channel()
    table = tmp_path / "control" / "convlab.exchange"
    table.write_bytes(b'[["a", "", "queue-a"]')  # cut off mid-write
    channel._queue_bind("convlab", "b", None, "queue-b")
    assert [b.queue for b in channel.get_table("convlab")] == ["queue-b"]

    table.unlink()
    table.mkdir()  # reading it fails with an OSError (IsADirectoryError)
    with pytest.raises(filesystem.ChannelError):
        channel._queue_bind("convlab", "c", None, "queue-c")
    assert table.is_dir()
    with pytest.raises(filesystem.ChannelError):
        channel.get_table("convlab")
    assert not list((tmp_path / "control").glob("*.tmp"))
    channel.close()


_CHILD = """
import json, sys
from kombu import Connection
from kombu.transport import filesystem, virtual
from workers.broker import TRANSPORT
role, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {k: f"{folder}/{v}" for k, v in (("data_folder_in", "queue"), ("data_folder_out", "queue"),
        ("control_folder", "control"), ("processed_folder", "processed"))}
with Connection("filesystem://", transport=TRANSPORT, transport_options=opts) as conn:
    q = conn.SimpleQueue("convlab")
    if role == "produce":
        for i in range(n):
            q.put({"id": f"{sys.argv[4]}-{i}"})
    else:
        got = []
        while True:
            try:
                m = q.get(timeout=3)
            except q.Empty:
                break
            m.ack()
            got.append(m.payload["id"])
        print(json.dumps(got))
"""


@pytest.mark.processes
def test_concurrent_producers_and_consumers_deliver_every_message_exactly_once(tmp_path):
    """Three producer and three consumer processes on one queue folder at the same time."""
    _options(tmp_path)
    n = 300

    def spawn(*args, stdout=subprocess.DEVNULL):
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args],
            cwd=ROOT,
            stdout=stdout,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )

    consumers = [spawn("consume", str(tmp_path), "0", stdout=subprocess.PIPE) for _ in range(3)]
    producers = [spawn("produce", str(tmp_path), str(n), f"p{i}") for i in range(3)]
    # Every child is waited for (and its pipe closed) whatever fails first.
    codes = [p.wait(timeout=120) for p in producers]
    outputs = [c.communicate(timeout=120)[0] for c in consumers]
    assert codes + [c.returncode for c in consumers] == [0] * 6
    received = [job for out in outputs for job in json.loads(out)]
    assert sorted(received) == sorted(f"p{i}-{j}" for i in range(3) for j in range(n))
    assert not list((tmp_path / "claimed").glob("*.bad"))
