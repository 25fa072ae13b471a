"""Cluster mode without Ray: config validation, the gateway's counters and states
(`RemoteStream`), the actor's result buffer (`StreamActor.poll`), and the `serve` flags."""

from __future__ import annotations

import re
import threading

import pytest

from lanewatch.sinks.errors import ConfigError
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.stream.cluster.actor import StreamBatch
from lanewatch.stream.cluster.remote import RemoteStream
from lanewatch.stream.config.loading import parse_config
from lanewatch.trackers.analytics.counts import CountKey

CLASSES = ["car", "truck", "bus", "motorcycle"]
LANE = {"name": "lane3", "line": [[654, 250], [790, 250]], "direction": "in"}


@pytest.mark.parametrize("store, message", [
    ({}, "cluster.enabled needs a store every node reaches: set store.url"),
    ({"url": "mysql://x@db/lw"}, "store.url: must be a PostgreSQL URL"),
])
def test_cluster_mode_needs_a_postgres_store(store, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"model": {"path": "m.pt"}, "store": store, "cluster": {"enabled": True},
                      "streams": [{"id": "a", "source": "a.mp4", "lanes": [LANE]}]})


def _batch(cumulative: dict[CountKey, int], state: str = "running", reconnects: int = 0,
           incarnation: str = "one") -> StreamBatch:
    return StreamBatch(
        incarnation=incarnation, last_seq=0, results=(), missed=0, cumulative=cumulative,
        movements={}, status={"state": state, "reconnects": reconnects, "frames_dropped": 0},
        lane_snapshot=[], movement_snapshot=[], frame_size=(1280, 720), lanes=None, worker={})


def test_gateway_counters_follow_the_store_and_never_run_backwards():
    """A batch's all-time counts (what a restarted actor resumed from the store, crossings a
    dead actor committed but never delivered) raise the gateway's counters; never lower them."""
    metrics = ServiceMetrics()
    config = parse_config({"model": {"path": "m.pt", "classes": CLASSES},
                           "streams": [{"id": "a", "source": "a.mp4", "lanes": [LANE]}]})
    remote = RemoteStream(config.streams[0], config, metrics)
    car = CountKey("lane3", "car", "in")

    def exported() -> float:
        return metrics.crossings.labels("a", "lane3", "car", "in")._value.get()

    for cumulative, reconnects, expected in [({car: 4}, 0, 4), ({car: 7}, 1, 7),
                                             ({car: 5}, 1, 7), ({}, 2, 7), ({car: 9}, 2, 9)]:
        remote._apply(_batch(cumulative, reconnects=reconnects))
        assert exported() == expected
    assert metrics.reconnects.labels("a")._value.get() == 2
    assert remote.state.value == "running" and remote.frame_size == (1280, 720)


class _StandInRunner:
    """What `StreamActor.poll` reads of its runner, without a source or a model."""

    processor = None
    last_result = None
    frame_size = (1280, 720)
    lanes = ()

    def __init__(self):
        from collections import Counter

        counts = Counter({CountKey("l1", "car", "in"): 0})
        self.analytics = type("A", (), {"counts": type("B", (), {"cumulative": counts})(),
                                        "movement_counts": type("B", (), {
                                            "cumulative": Counter()})()})()
        self.processor = type("P", (), {"analytics": self.analytics})()

    def status(self):
        return {"state": "running", "reconnects": 0, "frames_dropped": 0}


def _actor(monkeypatch, buffer: int = 600):
    """A StreamActor around a stand-in runner (the buffer logic, no Ray, no video)."""
    import collections

    from lanewatch.stream.cluster import actor as cluster

    monkeypatch.setattr(cluster, "lane_snapshot", lambda processor, result: [])
    monkeypatch.setattr(cluster, "movement_snapshot", lambda processor: [])
    actor = object.__new__(cluster.StreamActor)
    actor.incarnation, actor._seq, actor._newest = "one", 0, None
    actor._cond = threading.Condition()
    actor._buffer = collections.deque(maxlen=buffer)
    actor.runner = _StandInRunner()
    return actor


def test_actor_results_travel_without_pixels_until_acknowledged(monkeypatch):
    from test_live_video import result

    actor = _actor(monkeypatch)
    for i in range(3):
        actor.runner.analytics.counts.cumulative[CountKey("l1", "car", "in")] = i
        actor._keep(result(i, masks=True))
    first = actor.poll("one", 0, want_image=False, wait_s=0)
    assert [r.frame.index for r in first.results] == [0, 1, 2] and first.last_seq == 3
    assert all(r.frame.image.size == 0 and r.tracks.masks is None for r in first.results)
    assert first.cumulative == {CountKey("l1", "car", "in"): 2} and first.missed == 0
    again = actor.poll("one", 0, want_image=True, wait_s=0)  # the answer was lost: resent
    assert [r.frame.index for r in again.results] == [0, 1, 2]
    assert again.results[-1].frame.image.shape == (720, 1280, 3)  # the newest, for video
    assert again.results[-1].tracks.masks is not None
    assert actor.poll("one", 3, want_image=True, wait_s=0).results == ()  # acknowledged
    assert len(actor._buffer) == 0
    restarted = actor.poll("another incarnation", 3, want_image=False, wait_s=0)
    assert restarted.last_seq == 3 and restarted.results == ()  # nothing left to resend


def test_actor_buffer_overflow_is_reported_as_missed(monkeypatch):
    from test_live_video import result

    actor = _actor(monkeypatch, buffer=4)
    for i in range(10):
        actor._keep(result(i))
    batch = actor.poll("one", 0, want_image=False, wait_s=0)
    assert [r.frame.index for r in batch.results] == [6, 7, 8, 9] and batch.missed == 6
    held = sum(r.frame.image.nbytes for r in batch.results) + actor._newest[1].frame.image.nbytes
    assert held == 1280 * 720 * 3  # one image in memory, however many results wait


def test_a_stream_ray_cannot_place_yet_is_starting_with_the_reason():
    config = parse_config({"model": {"path": "m.pt", "classes": CLASSES},
                           "cluster": {"enabled": True, "num_cpus": 8},
                           "store": {"url": "postgresql://u@db/lw"},
                           "streams": [{"id": "a", "source": "a.mp4", "lanes": [LANE]}]})
    remote = RemoteStream(config.streams[0], config, ServiceMetrics())
    remote._lost(TimeoutError("Get timed out"))
    status = remote.status()
    assert status["state"] == "starting"
    assert status["error"].startswith("waiting for Ray to place the stream's actor (num_cpus 8.0")
    remote._apply(_batch({}))
    remote._lost(RuntimeError("The actor died unexpectedly"))
    assert remote.status()["state"] == "reconnecting"
    assert remote.status()["error"] == "stream actor unreachable: The actor died unexpectedly"


@pytest.mark.parametrize("flags, message", [
    (["--cluster", "auto"], "with --store/--cluster: cluster.enabled needs a store every node "
                            "reaches: set store.url"),
    (["--store", "postgresql://counter:s3cret@127.0.0.1:9/lanewatch"],
     "count store: cannot open database postgresql://counter:***@127.0.0.1:9/lanewatch"),
])
def test_serve_flags_fail_clearly(flags, message):
    import shutil
    import subprocess

    from conftest import CONFIGS

    proc = subprocess.run([shutil.which("lanewatch"), "serve", "-c",
                           str(CONFIGS / "highway.yaml"), *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_ray_cluster_is_a_clear_error():
    """`cluster.address: auto` on a machine that is not part of a Ray cluster (this one)."""
    import ray

    from lanewatch.stream.cluster.remote import connect
    from lanewatch.stream.config.schema import ClusterConfig

    assert not ray.is_initialized()
    with pytest.raises(ConfigError, match=r"cluster.address: cannot join auto: .*\(start the "
                       r"head node with `ray start --head`"):
        connect(ClusterConfig(enabled=True, address="auto"))


def test_the_lanes_keep_coming_until_the_gateway_has_them(monkeypatch):
    """A gateway's first poll can come before the actor's first frame (no lanes in pixels
    yet): the lanes then come with a later answer, or the gateway could never draw video."""
    actor = _actor(monkeypatch)
    actor.runner.lanes = None  # before the first frame
    first = actor.poll(None, 0, want_image=False, wait_s=0, want_lanes=True)
    assert first.lanes is None
    actor.runner.lanes = ("lane",)  # the first frame built the processor
    assert actor.poll("one", 0, want_image=False, wait_s=0).lanes is None  # has them: none
    assert actor.poll("one", 0, want_image=False, wait_s=0, want_lanes=True).lanes == ("lane",)
