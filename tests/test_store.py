"""The count store on SQLite and on a real PostgreSQL server: batches, intervals, history, and
durability across kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lanewatch.sinks.store import CountStore, StoreError
from lanewatch.trackers.analytics.counts import CountBook, CountKey
from lanewatch.trackers.analytics.lane_analytics import CrossingEvent, MovementEvent


def event(t, lane="A", cls="car", direction="in", track=1, stream="cam"):
    return CrossingEvent(stream, lane, track, cls, direction, t, int(t * 30))


def test_counts_intervals_and_history(store_target):
    store = CountStore(store_target, interval_s=60)
    assert store.record([event(10), event(20, cls="truck"), event(70, track=2)]) == 3
    assert store.record([event(75, lane="B", direction="out", track=3),
                         event(80, stream="other")]) == 2
    assert store.record([]) == 0
    assert store.cumulative("cam") == {CountKey("A", "car", "in"): 2,
                                       CountKey("A", "truck", "in"): 1,
                                       CountKey("B", "car", "out"): 1}
    rows = [(r.interval_start_s, r.lane, r.class_name, r.direction, r.count)
            for r in store.intervals("cam")]
    assert rows == [(0, "A", "car", "in", 1), (0, "A", "truck", "in", 1),
                    (60, "A", "car", "in", 1), (60, "B", "car", "out", 1)]
    assert [r.interval_start_s for r in store.intervals("cam", since_s=60)] == [60, 60]
    assert [e.track_id for e in store.recent_crossings("cam", limit=2)] == [3, 2]
    store.close()


@pytest.mark.parametrize("since, bin_s, expected", [
    (0, 30, {"A": {0: 2, 2: 1}, "B": {2: 1}}),
    (0, 60, {"A": {0: 2, 1: 1}, "B": {1: 1}}),
    (15, 30, {"A": {0: 1, 1: 1}, "B": {2: 1}}),  # 10 s is before the window
    (100, 30, {}),
])
def test_flow_bins_crossings_per_lane(store_target, since, bin_s, expected):
    store = CountStore(store_target)
    store.record([event(10), event(20, cls="truck"), event(70, track=2),
                  event(75, lane="B", track=3), event(80, stream="other")])
    assert store.flow("cam", since, bin_s) == expected


def test_reopening_resumes_and_restores_a_count_book(store_target):
    path = store_target
    store = CountStore(path)
    store.record([event(1), event(2, track=2)])
    store.close()
    book = CountBook(60)
    book.restore(CountStore(path).cumulative("cam"))
    book.add(CountKey("A", "car", "in"), 5)
    assert book.total() == 3


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="count store: cannot open database"):
        CountStore(blocker / "c.db")


@pytest.mark.timeout(60)
def test_kill_9_loses_nothing_that_was_recorded(tmp_path):
    path = tmp_path / "c.db"
    writer = textwrap.dedent(f"""
        import sys, time
        from lanewatch.sinks.store import CountStore
        from lanewatch.trackers.analytics.lane_analytics import CrossingEvent
        store = CountStore({str(path)!r})
        for i in range(100000):
            store.record([CrossingEvent("cam", "A", i, "car", "in", i * 0.1, i)])
            print(i, flush=True)  # acknowledged: committed before this line
            time.sleep(0.002)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.monotonic() + 30
    while acknowledged < 200 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    total = CountStore(path).cumulative("cam")[CountKey("A", "car", "in")]
    assert total >= acknowledged + 1  # every acknowledged crossing is there


def test_movements_and_speeds_are_stored_with_the_crossings(store_target):
    store = CountStore(store_target, interval_s=60)
    moves = [MovementEvent("cam", "sb-left", "north", "east", 1, "car", 10.0, 300),
             MovementEvent("cam", "sb-left", "north", "east", 2, "car", 70.0, 2100),
             MovementEvent("cam", "north->north", "north", "north", 3, "bus", 75.0, 2250)]
    fast = CrossingEvent("cam", "A", 4, "car", "in", 12.0, 360, speed_kmh=98.5)
    assert store.record([fast, event(13)], moves[:1]) == 2
    assert store.record([], moves[1:]) == 0  # movements alone are a batch too
    assert store.movement_totals("cam") == [("north->north", "north", "north", "bus", 1),
                                            ("sb-left", "north", "east", "car", 2)]
    assert store.movement_intervals("cam", 0, 120) == [(0.0, "sb-left", "car", 1),
                                                      (60.0, "north->north", "bus", 1),
                                                      (60.0, "sb-left", "car", 1)]
    assert store.speeds("cam", 0, 100) == [(12.0, "A", 98.5)]  # crossings without one skipped
    assert store.recent_crossings("cam", 1)[0].speed_kmh is None
    store.close()


def test_a_store_from_before_speeds_is_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE crossings (id INTEGER PRIMARY KEY, stream TEXT NOT NULL,
        lane TEXT NOT NULL, class TEXT NOT NULL, direction TEXT NOT NULL, time_s REAL NOT NULL,
        track_id INTEGER NOT NULL, frame INTEGER NOT NULL);
        INSERT INTO crossings VALUES (1, 'cam', 'A', 'car', 'in', 5.0, 1, 150);""")
    db.close()
    store = CountStore(path)
    assert store.record([CrossingEvent("cam", "A", 2, "car", "in", 6.0, 180, 50.0)]) == 1
    assert [e.speed_kmh for e in store.recent_crossings("cam")] == [50.0, None]
    store.close()


def test_a_broken_postgres_connection_is_reopened(postgres):
    """The server drops the store's connection (restart, fail-over): the next write fails
    cleanly, the one after reconnects; nothing committed is lost."""
    import psycopg

    url = postgres.new_database()
    store = CountStore(url)
    store.record([event(1)])
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    for _ in range(2):  # the first call may only find out that the connection is gone
        try:
            store.record([event(2, track=2)])
            break
        except StoreError as err:
            assert "cannot write to database postgresql://postgres@" in str(err)
    assert store.cumulative("cam") == {CountKey("A", "car", "in"): 2}
    store.close()


def test_unreachable_postgres_is_a_clear_error_without_the_password():
    from rtsp import free_port

    with pytest.raises(StoreError, match="cannot open database") as caught:
        CountStore(f"postgresql://counter:s3cret@127.0.0.1:{free_port()}/lanewatch")
    assert "s3cret" not in str(caught.value) and "counter:***@" in str(caught.value)


def test_stream_registry_on_postgres(postgres):
    from lanewatch.stream.config.schema import StreamConfig
    from lanewatch.stream.serve.stream_registry import StreamRegistry

    url = postgres.new_database()
    lane = {"name": "l", "line": [[0, 1], [2, 1]]}
    a = StreamConfig.model_validate({"id": "a", "source": "a.mp4", "lanes": [lane]})
    b = StreamConfig.model_validate({"id": "b", "source": "b.mp4", "lanes": [lane]})
    registry = StreamRegistry(url)
    registry.save(b)
    registry.remove("a")
    registry.close()
    assert [s.id for s in StreamRegistry(url).apply([a])] == ["b"]
