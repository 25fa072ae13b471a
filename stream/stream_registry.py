"""Streams added, changed or removed at run time, kept across restarts.

The config file is what an operator wrote; the registry records what was changed since through
the API (`POST/PUT/DELETE /api/streams`). At start-up the service runs the file's streams with
the registry's changes applied: a stream added at run time comes back, an updated one comes
back updated, a removed one stays removed. It lives in the count store's database (its own
table and connection): the SQLite file, or in cluster mode the shared PostgreSQL database.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lanewatch.sinks.database import Database, DatabaseError
from lanewatch.stream.config import StreamConfig
from lanewatch.stream.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runtime_streams (
    id TEXT PRIMARY KEY, config TEXT, removed INTEGER NOT NULL, updated_s {double} NOT NULL
)
"""


class StreamRegistry:
    """Runtime changes to the configured streams (thread-safe)."""

    def __init__(self, target: str | Path):
        try:
            self._db = Database(target)
            self._db.create(_SCHEMA)
        except DatabaseError as err:
            raise ConfigError(f"cannot open the stream registry: {err}") from None

    def save(self, stream: StreamConfig) -> None:
        """Record a stream added or updated at run time."""
        self._write(stream.id, stream.model_dump_json(by_alias=True), removed=False)

    def remove(self, stream_id: str) -> None:
        """Record that a stream was removed at run time."""
        self._write(stream_id, None, removed=True)

    def _write(self, stream_id: str, config: str | None, removed: bool) -> None:
        self._db.execute(
            "INSERT INTO runtime_streams VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " config = excluded.config, removed = excluded.removed,"
            " updated_s = excluded.updated_s", (stream_id, config, int(removed), time.time()))

    def apply(self, streams: list[StreamConfig]) -> list[StreamConfig]:
        """The file's streams with the runtime changes applied, in the file's order, then the
        streams added at run time in the order they were added."""
        rows = self._db.query("SELECT id, config, removed FROM runtime_streams"
                              " ORDER BY updated_s")
        changed = {sid: (None if removed else StreamConfig.model_validate(json.loads(config)))
                   for sid, config, removed in rows}
        out = [changed.get(s.id, s) for s in streams]
        known = {s.id for s in streams}
        out += [c for sid, c in changed.items() if sid not in known]
        return [s for s in out if s is not None]

    def close(self) -> None:
        self._db.close()
