"""Count store: crossing events (with spot speeds), turning movements and their interval
counts, surviving restarts; SQLite embedded, PostgreSQL shared by a cluster (`database.py`).

Every batch of crossings is one transaction, committed at once (SQLite in WAL mode), so a process
killed at any moment (kill -9 included) loses nothing already handed to the store; on restart
the cumulative counts are read back and counting resumes from them. The interval table keeps
the history the API serves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lanewatch.sinks.database import Database, DatabaseError
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.sink import SinkError
from lanewatch.trackers.analytics.counts import CountKey, IntervalCount
from lanewatch.trackers.analytics.lane_analytics import CrossingEvent, MovementEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crossings (
    id {serial},
    stream TEXT NOT NULL, lane TEXT NOT NULL, class TEXT NOT NULL, direction TEXT NOT NULL,
    time_s {double} NOT NULL, track_id INTEGER NOT NULL, frame INTEGER NOT NULL,
    speed_kmh {double}
);
CREATE INDEX IF NOT EXISTS crossings_stream_time ON crossings (stream, time_s);
CREATE TABLE IF NOT EXISTS movements (
    id {serial},
    stream TEXT NOT NULL, movement TEXT NOT NULL, origin TEXT NOT NULL,
    destination TEXT NOT NULL, class TEXT NOT NULL, time_s {double} NOT NULL,
    track_id INTEGER NOT NULL, frame INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS movements_stream_time ON movements (stream, time_s);
CREATE TABLE IF NOT EXISTS interval_counts (
    stream TEXT NOT NULL, lane TEXT NOT NULL, class TEXT NOT NULL, direction TEXT NOT NULL,
    interval_start_s {double} NOT NULL, interval_s {double} NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (stream, lane, class, direction, interval_start_s)
)
"""


class StoreError(DatabaseError):
    """The store cannot be opened or written."""


class CountStore:
    """Thread-safe store of one service's counts: a SQLite file (`store.path`) or, shared by the
    nodes of a cluster, a PostgreSQL database (`store.url`)."""

    def __init__(self, target: str | Path, interval_s: float = 60.0):
        self.path = target
        self.interval_s = interval_s
        try:
            self._db = Database(target)
            self._db.create(_SCHEMA)
            if "speed_kmh" not in self._db.columns("crossings"):  # written before speeds
                self._db.execute("ALTER TABLE crossings ADD COLUMN speed_kmh REAL")
        except DatabaseError as err:
            raise StoreError(f"count store: {err}") from None

    def close(self) -> None:
        """Close the database (further calls fail)."""
        self._db.close()

    def record(self, events: Iterable[CrossingEvent],
               movements: Iterable[MovementEvent] = ()) -> int:
        """Store a frame's crossings and movements in one transaction; returns how many
        crossings were stored."""
        rows = [(e.stream, e.lane, e.class_name, e.direction, e.time_s, e.track_id,
                 e.frame_index, e.speed_kmh) for e in events]
        moves = [(e.stream, e.movement, e.origin, e.destination, e.class_name, e.time_s,
                  e.track_id, e.frame_index) for e in movements]
        if not rows and not moves:
            return 0
        bins = Counter(
            (stream, lane, cls, direction, _bin(t, self.interval_s))
            for stream, lane, cls, direction, t, *_ in rows)
        try:
            with self._db.transaction() as db:
                db.executemany(
                    "INSERT INTO crossings (stream, lane, class, direction, time_s, track_id,"
                    " frame, speed_kmh) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.executemany(
                    "INSERT INTO interval_counts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                    " (stream, lane, class, direction, interval_start_s)"
                    " DO UPDATE SET count = interval_counts.count + excluded.count",
                    [(*key, self.interval_s, n) for key, n in bins.items()])
                db.executemany(
                    "INSERT INTO movements (stream, movement, origin, destination, class,"
                    " time_s, track_id, frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", moves)
        except DatabaseError as err:
            raise StoreError(str(err)) from None
        return len(rows)

    def movement_totals(self, stream: str) -> list[tuple[str, str, str, str, int]]:
        """All-time movements of a stream: (movement, origin, destination, class, count)."""
        rows = self._db.query(
            "SELECT movement, origin, destination, class, COUNT(*) FROM movements"
            " WHERE stream = ? GROUP BY movement, origin, destination, class"
            " ORDER BY movement, class", (stream,))
        return [(m, o, d, c, int(n)) for m, o, d, c, n in rows]

    def movement_intervals(self, stream: str, since_s: float, until_s: float
                           ) -> list[tuple[float, str, str, int]]:
        """Movements per interval: (interval start, movement, class, count), oldest first."""
        start = self._db.floor_int("time_s / ?") + " * ?"
        rows = self._db.query(
            f"SELECT {start} AS start, movement, class, COUNT(*)"
            " FROM movements WHERE stream = ? AND time_s >= ? AND time_s < ?"
            " GROUP BY 1, movement, class ORDER BY 1, movement, class",
            (self.interval_s, self.interval_s, stream, since_s, until_s))
        return [(float(start), m, c, int(n)) for start, m, c, n in rows]

    def speeds(self, stream: str, since_s: float, until_s: float
               ) -> list[tuple[float, str, float]]:
        """Spot speeds of crossings in a time range: (time, lane, km/h), oldest first."""
        rows = self._db.query(
            "SELECT time_s, lane, speed_kmh FROM crossings WHERE stream = ? AND time_s >= ?"
            " AND time_s < ? AND speed_kmh IS NOT NULL ORDER BY time_s",
            (stream, since_s, until_s))
        return [(float(t), lane, float(v)) for t, lane, v in rows]

    def cumulative(self, stream: str) -> Counter[CountKey]:
        """All-time counts of a stream, per lane, class and direction."""
        rows = self._db.query(
            "SELECT lane, class, direction, SUM(count) FROM interval_counts"
            " WHERE stream = ? GROUP BY lane, class, direction", (stream,))
        return Counter({CountKey(lane, cls, d): int(n) for lane, cls, d, n in rows})

    def intervals(self, stream: str, since_s: float | None = None,
                  until_s: float | None = None) -> list[IntervalCount]:
        """Interval rows of a stream, oldest first (only intervals with crossings)."""
        query = ("SELECT interval_start_s, interval_s, lane, class, direction, count"
                 " FROM interval_counts WHERE stream = ?")
        args: list = [stream]
        if since_s is not None:
            query += " AND interval_start_s >= ?"
            args.append(since_s)
        if until_s is not None:
            query += " AND interval_start_s < ?"
            args.append(until_s)
        rows = self._db.query(query + " ORDER BY interval_start_s, lane, class, direction",
                              args)
        return [IntervalCount(start, start + length, lane, cls, d, n)
                for start, length, lane, cls, d, n in rows]

    def recent_crossings(self, stream: str, limit: int = 100) -> list[CrossingEvent]:
        """The latest crossings of a stream, newest first."""
        rows = self._db.query(
            "SELECT stream, lane, track_id, class, direction, time_s, frame, speed_kmh"
            " FROM crossings WHERE stream = ? ORDER BY time_s DESC, id DESC LIMIT ?",
            (stream, limit))
        return [CrossingEvent(*row) for row in rows]

    def crossings(self, stream: str, since_s: float, until_s: float, limit: int
                  ) -> list[CrossingEvent]:
        """The crossings of a stream in [since_s, until_s), oldest first; at most `limit`
        (ask for one more than you accept to know whether there were more)."""
        rows = self._db.query(
            "SELECT stream, lane, track_id, class, direction, time_s, frame, speed_kmh"
            " FROM crossings WHERE stream = ? AND time_s >= ? AND time_s < ?"
            " ORDER BY time_s, id LIMIT ?", (stream, since_s, until_s, limit))
        return [CrossingEvent(*row) for row in rows]

    def flow(self, stream: str, since_s: float, bin_s: float) -> dict[str, dict[int, int]]:
        """Crossings per lane in bins of `bin_s` seconds from `since_s`: lane -> {bin: n}."""
        b = self._db.floor_int("(time_s - ?) / ?")
        rows = self._db.query(
            f"SELECT lane, {b} AS b, COUNT(*) FROM crossings"
            " WHERE stream = ? AND time_s >= ? GROUP BY lane, 2",
            (since_s, bin_s, stream, since_s))
        out: dict[str, dict[int, int]] = {}
        for lane, b, n in rows:
            out.setdefault(lane, {})[int(b)] = int(n)
        return out


class StoreSink:
    """A stream's crossings and movements into the count store, as a sink (sinks/sink.py):
    first of the live stream's sinks, so a crossing is committed before anything shows it.
    A failed write loses that frame's events (counted by the fan-out's owner); the next
    frame's are written as usual (a database that restarts is reopened)."""

    name = "store"

    def __init__(self, store: CountStore):
        self.store = store

    def on_result(self, result: FrameResult) -> None:
        """Store the frame's crossings and movements in one transaction (when it has any)."""
        crossings, movements = result.analytics.crossings, result.analytics.movements
        if not (crossings or movements):
            return
        try:
            self.store.record(crossings, movements)
        except Exception as err:
            raise SinkError(f"cannot store {len(crossings)} crossings and {len(movements)} "
                            f"movements: {err}", lost=len(crossings) + len(movements)) from err

    def close(self) -> None:
        """Nothing: the store is shared by the streams and closed by its owner."""


def _bin(time_s: float, interval_s: float) -> float:
    """Start of the interval holding `time_s` (intervals aligned to the Unix epoch)."""
    return (time_s // interval_s) * interval_s
