"""Embedded count store (SQLite): crossing events (with spot speeds), turning movements and
their interval counts, surviving restarts.

Every batch of crossings is one transaction, committed at once in WAL mode, so a process
killed at any moment (kill -9 included) loses nothing already handed to the store; on restart
the cumulative counts are read back and counting resumes from them. The interval table keeps
the history the API serves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lanewatch.trackers.analytics import CrossingEvent, MovementEvent
from lanewatch.trackers.counts import CountKey, IntervalCount

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crossings (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL, lane TEXT NOT NULL, class TEXT NOT NULL, direction TEXT NOT NULL,
    time_s REAL NOT NULL, track_id INTEGER NOT NULL, frame INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS crossings_stream_time ON crossings (stream, time_s);
CREATE TABLE IF NOT EXISTS movements (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL, movement TEXT NOT NULL, origin TEXT NOT NULL,
    destination TEXT NOT NULL, class TEXT NOT NULL, time_s REAL NOT NULL,
    track_id INTEGER NOT NULL, frame INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS movements_stream_time ON movements (stream, time_s);
CREATE TABLE IF NOT EXISTS interval_counts (
    stream TEXT NOT NULL, lane TEXT NOT NULL, class TEXT NOT NULL, direction TEXT NOT NULL,
    interval_start_s REAL NOT NULL, interval_s REAL NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (stream, lane, class, direction, interval_start_s)
);
"""


class StoreError(RuntimeError):
    """The store cannot be opened or written."""


class CountStore:
    """Thread-safe SQLite store of one service's counts."""

    def __init__(self, path: str | Path, interval_s: float = 60.0):
        self.path = Path(path)
        self.interval_s = interval_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(crossings)")}
            if "speed_kmh" not in columns:  # a store written before speeds existed
                self._db.execute("ALTER TABLE crossings ADD COLUMN speed_kmh REAL")
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"cannot open count store {self.path}: {err}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database (further calls fail)."""
        with self._lock:
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
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO crossings (stream, lane, class, direction, time_s, track_id,"
                    " frame, speed_kmh) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.executemany(
                    "INSERT INTO interval_counts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                    " (stream, lane, class, direction, interval_start_s)"
                    " DO UPDATE SET count = count + excluded.count",
                    [(*key, self.interval_s, n) for key, n in bins.items()])
                self._db.executemany(
                    "INSERT INTO movements (stream, movement, origin, destination, class,"
                    " time_s, track_id, frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", moves)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write to {self.path}: {err}") from None
        return len(rows)

    def movement_totals(self, stream: str) -> list[tuple[str, str, str, str, int]]:
        """All-time movements of a stream: (movement, origin, destination, class, count)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT movement, origin, destination, class, COUNT(*) FROM movements"
                " WHERE stream = ? GROUP BY movement, origin, destination, class"
                " ORDER BY movement, class", (stream,)).fetchall()
        return [(m, o, d, c, int(n)) for m, o, d, c, n in rows]

    def movement_intervals(self, stream: str, since_s: float, until_s: float
                           ) -> list[tuple[float, str, str, int]]:
        """Movements per interval: (interval start, movement, class, count), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT CAST(time_s / ? AS INTEGER) * ? AS start, movement, class, COUNT(*)"
                " FROM movements WHERE stream = ? AND time_s >= ? AND time_s < ?"
                " GROUP BY start, movement, class ORDER BY start, movement, class",
                (self.interval_s, self.interval_s, stream, since_s, until_s)).fetchall()
        return [(float(start), m, c, int(n)) for start, m, c, n in rows]

    def speeds(self, stream: str, since_s: float, until_s: float
               ) -> list[tuple[float, str, float]]:
        """Spot speeds of crossings in a time range: (time, lane, km/h), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time_s, lane, speed_kmh FROM crossings WHERE stream = ? AND time_s >= ?"
                " AND time_s < ? AND speed_kmh IS NOT NULL ORDER BY time_s",
                (stream, since_s, until_s)).fetchall()
        return [(float(t), lane, float(v)) for t, lane, v in rows]

    def cumulative(self, stream: str) -> Counter[CountKey]:
        """All-time counts of a stream, per lane, class and direction."""
        with self._lock:
            rows = self._db.execute(
                "SELECT lane, class, direction, SUM(count) FROM interval_counts"
                " WHERE stream = ? GROUP BY lane, class, direction", (stream,)).fetchall()
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
        with self._lock:
            rows = self._db.execute(query + " ORDER BY interval_start_s, lane, class, direction",
                                    args).fetchall()
        return [IntervalCount(start, start + length, lane, cls, d, n)
                for start, length, lane, cls, d, n in rows]

    def recent_crossings(self, stream: str, limit: int = 100) -> list[CrossingEvent]:
        """The latest crossings of a stream, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT stream, lane, track_id, class, direction, time_s, frame, speed_kmh"
                " FROM crossings"
                " WHERE stream = ? ORDER BY time_s DESC, id DESC LIMIT ?",
                (stream, limit)).fetchall()
        return [CrossingEvent(*row) for row in rows]

    def flow(self, stream: str, since_s: float, bin_s: float) -> dict[str, dict[int, int]]:
        """Crossings per lane in bins of `bin_s` seconds from `since_s`: lane -> {bin: n}."""
        with self._lock:
            rows = self._db.execute(
                "SELECT lane, CAST((time_s - ?) / ? AS INTEGER) AS b, COUNT(*) FROM crossings"
                " WHERE stream = ? AND time_s >= ? GROUP BY lane, b",
                (since_s, bin_s, stream, since_s)).fetchall()
        out: dict[str, dict[int, int]] = {}
        for lane, b, n in rows:
            out.setdefault(lane, {})[b] = n
        return out


def _bin(time_s: float, interval_s: float) -> float:
    """Start of the interval holding `time_s` (intervals aligned to the Unix epoch)."""
    return (time_s // interval_s) * interval_s
