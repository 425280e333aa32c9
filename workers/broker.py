"""The embedded broker: kombu's filesystem transport, made safe for several producers and consumers.

Stock kombu (5.x) creates a message file in the queue folder and only then
writes it, and a consumer takes files without waiting for the writer's lock:
a consumer that comes at the wrong moment reads an empty file, fails to parse
it, and the message is gone (kombu issue #1551).  Here

- a producer writes the whole message into a staging folder on the same
  file system and renames it into the queue folder: a consumer sees a complete
  file or none (``rename`` is atomic within one file system);
- a consumer takes a message by renaming it into a "claimed" folder: exactly
  one consumer wins each file, whatever other consumers do at the same time;
- a file that cannot be parsed anyway (left by an older version, a full disk)
  is logged and set aside, and the consumer goes on to the next message
  instead of failing the poll;
- an exchange's binding table (``control/<exchange>.exchange``) is changed
  under an exclusive lock on a separate lock file and replaced whole by a
  rename.  Stock kombu creates the table file and only then locks and writes
  it, so a second process declaring the same queue at that moment (two
  workers starting together) read an empty table and failed.

Messages are wake-ups (docs/architecture.md), so even a message
lost some other way costs seconds; this keeps it from happening at all.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

log = logging.getLogger(__name__)

TRANSPORT = f"{__name__}:Transport"  # for ``broker_transport``


def _write(path: Path, data: bytes) -> None:
    """Write a staged message file (whole, before anyone can see it)."""
    with open(path, "wb") as f:
        f.write(data)


class Channel(filesystem.Channel):
    """A filesystem channel whose puts and gets are atomic renames."""

    def _folder(self, option: str, default: str) -> Path:
        folder = Path(self.transport_options.get(option) or Path(self.data_folder_out).parent / default)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @cached_property
    def staging_folder(self) -> Path:
        """Where messages are written before they are renamed into the queue folder."""
        return self._folder("staging_folder", "staging")

    @cached_property
    def claimed_folder(self) -> Path:
        """Where a consumer moves the message it took, to read it without racing other consumers."""
        return self._folder("claimed_folder", "claimed")

    def _put(self, queue, payload, **kwargs):
        """Put a message on ``queue``: written in the staging folder, then renamed in whole."""
        # The name sorts by time (zero-padded nanoseconds), and kombu's listing takes what
        # follows the first dot as the queue: "<ns>_<uuid>.<queue>.msg".
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        staged = self.staging_folder / name
        try:
            _write(staged, str_to_bytes(dumps(payload)))
            os.rename(staged, Path(self.data_folder_out) / name)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"Cannot add message {name!r} to the queue folder") from exc

    def _read_table(self, exchange) -> list:
        """The bindings in ``exchange``'s table file (``OSError`` if it cannot be read, ``ValueError`` or
        ``TypeError`` if it is not a table)."""
        table = loads(bytes_to_str(self._exchange_file(exchange).read_bytes()))
        return [filesystem.exchange_queue_t(*binding) for binding in table]

    def get_table(self, exchange):
        """The queues bound to ``exchange``: the table file is always whole, so no lock is needed."""
        try:
            return self._read_table(exchange)
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            raise filesystem.ChannelError(f"Cannot read the bindings of exchange {exchange!r}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda table: table if binding in table else [binding, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # kombu's virtual.Channel._delete (the in-memory state); the filesystem class's own
        # edits the table file in place, which is what _change_table replaces.
        super(filesystem.Channel, self)._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda table: [b for b in table if b != binding])

    def _change_table(self, exchange, change) -> None:
        """Apply ``change`` (old table -> new table) to ``exchange``'s bindings, atomically."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(file.with_name(file.name + ".lock"), "a") as lock:  # "a": never truncated
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
                garbled = False
                try:
                    table = self._read_table(exchange)
                except FileNotFoundError:
                    table = []
                except (ValueError, TypeError):
                    # Left half-written by stock kombu.  Every consumer binds its queue again when it
                    # starts, so a table rewritten from here on is complete again soon.  (A file that
                    # cannot be read at all is an OSError: raised below, the table left as it is.)
                    log.warning("embedded broker: exchange table %s is not a table; rewritten", file)
                    table, garbled = [], True
                new = change(table)
                if new != table or garbled:
                    staged = file.with_name(f"{file.name}.{uuid.uuid4().hex}.tmp")  # same file system
                    try:
                        _write(staged, str_to_bytes(dumps(new)))
                        os.replace(staged, file)
                    finally:
                        staged.unlink(missing_ok=True)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot change the bindings of exchange {exchange!r}") from exc

    def _get(self, queue):
        """Take the oldest message of ``queue``; raise ``Empty`` if there is none."""
        suffix = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != suffix:
                continue
            claimed = self.claimed_folder / name
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            try:
                payload = claimed.read_bytes()
                message = loads(bytes_to_str(payload))
            except (OSError, ValueError) as exc:
                self._set_aside(claimed, exc)
                continue
            self._done(claimed)
            return message
        raise Empty()

    def _done(self, claimed: Path) -> None:
        """A message was read: keep it in the processed folder if asked to, else delete it."""
        try:
            if self.store_processed:
                os.replace(claimed, Path(self.processed_folder) / claimed.name)
            else:
                claimed.unlink()
        except OSError:
            log.warning("could not clear the claimed message %s", claimed, exc_info=True)

    def _set_aside(self, claimed: Path, exc: Exception) -> None:
        """An unreadable message is kept for inspection (``<name>.bad``), never retried in a loop."""
        log.error("embedded broker: message %s is unreadable (%s); set aside", claimed.name, exc)
        try:
            os.replace(claimed, claimed.with_name(claimed.name + ".bad"))
        except OSError:
            pass


class Transport(filesystem.Transport):
    """The filesystem transport with :class:`Channel` (atomic put and get)."""

    Channel = Channel
