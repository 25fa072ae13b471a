"""Live counts stay exact when the box cannot keep up (issue 18's acceptance).

The capacity is set by the test, never by how fast this machine is: `PacedDetector` makes the
real model a single server with a fixed time per frame, so that the box detects 1/2, 1/3 or
1/5 of a camera's frames; `cpu_burner` adds a real process keeping one core busy. Under each,
highway.mp4 is counted live (paced from the file, through the real RTSP server, and as four
streams on one batched model) and the counts must equal the review's hand count, with every
frame processed (detected or predicted) and the stream reporting its counts reliable. Below
the exactness limit the stream must say so instead.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
from overload import PacedDetector, cpu_burner

from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.detect.batching import BatchingDetector
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.pipeline.governor import CapacityGovernor
from lanewatch.stream.pipeline.runner import StreamRunner
from lanewatch.stream.sources.live import StreamState

from conftest import CONFIGS
from rtsp import RtspServer
from serving import wait_for
from test_review_footage import HIGHWAY_TRUTH

pytestmark = pytest.mark.integration

FPS = 29.97  # highway.mp4
CLIP_FRAMES = 335
HAND_COUNT = Counter(lane for _, lane in HIGHWAY_TRUTH)


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIGS / "highway.yaml")


@pytest.fixture(scope="module")
def detector(config):
    return create_detector(config.model)


def drained(runner: StreamRunner) -> bool:
    """A file that ended and its worker done, or a camera that sent the whole clip and every
    frame of it processed."""
    if runner.source.state is StreamState.STOPPED and not runner._thread.is_alive():
        return True
    s = runner.status()
    return s["frames_received"] >= CLIP_FRAMES and s["frames_processed"] == s["frames_received"]


def run_live(config, detector, sources: list[str], reliable_seen: list | None = None,
             start=None) -> list[tuple[StreamRunner, Counter]]:
    """Run one runner per source (one shared governor, as in `serve`) until every source has
    ended and its worker drained; returns (runner, crossings per lane) per stream."""
    governor = CapacityGovernor()
    stream = config.streams[0]
    runs = []
    for k, source in enumerate(sources):
        crossings: Counter = Counter()

        def count(result, crossings=crossings):
            crossings.update(e.lane for e in result.analytics.crossings)

        streamed = stream.model_copy(update={"id": f"cam{k}", "source": source})
        runner = StreamRunner(streamed, config, detector, ServiceMetrics(), on_result=count,
                              source_settings=streamed.source_options.model_copy(
                                  update={"reconnect_initial_s": 0.2, "reconnect_max_s": 0.5}),
                              governor=governor)
        runs.append((runner, crossings))
    for runner, _ in runs:
        runner.start()
    if start is not None:
        start()
    try:
        def finished():
            for runner, _ in runs:
                if reliable_seen is not None and runner.scheduler is not None:
                    reliable_seen.append(runner.reliability().reliable)
            return all(drained(r) for r, _ in runs)

        assert wait_for(finished, 120, step=0.05), [r.status() for r, _ in runs]
    finally:
        for runner, _ in runs:
            runner.stop()
    return runs


def check_exact(runs, label: str, paced: PacedDetector) -> None:
    """Every stream counted the hand count with every frame processed and none dropped, and
    said its counts were reliable. Where the real model was slower than the padding on most
    calls (this machine, at this moment, is slower than the capacity asked for: other work on
    it), the capacity is no longer the test's: then each stream must either be exact as above
    or say, with its reason, that it is beyond its exactness limit."""
    for runner, crossings in runs:
        status = runner.status()
        print(f"\n{label} {runner.stream.id}: cadence {status['cadence']}, "
              f"{status['processed_fraction']:.0%} of frames detected, largest gap "
              f"{status['largest_gap_frames']} frames ({status['largest_gap_s']:.3f} s), "
              f"reliable {status['counting_reliable']}; counts {dict(crossings)}; the real "
              f"model slower than the padding on {paced.late} of {paced.calls} calls")
        if not paced.in_control and not status["counting_reliable"]:
            assert status["largest_gap_s"] > status["gap_limit_s"], status
            assert "exactness limit" in status["counting_reason"], status
            continue
        assert status["frames_dropped"] == 0, status  # no frame lost in a burst
        assert status["frames_processed"] == status["frames_received"], status
        assert status["counting_reliable"], status["counting_reason"]
        assert crossings == HAND_COUNT, f"{label} {runner.stream.id}: {dict(crossings)}"


@contextlib.contextmanager
def load(burner: bool):
    with cpu_burner() if burner else contextlib.nullcontext():
        yield


# 1/3 without a burner is run by the RTSP and batched cases below (each case is the clip's
# 11 s in real time: the suite's time budget)
CAPACITIES = [(2, False), (5, False), (2, True), (3, True), (5, True)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("share,burner", CAPACITIES,
                         ids=[f"1/{k}{' burner' if b else ''}" for k, b in CAPACITIES])
def test_file_paced_like_a_camera_counts_exactly_below_capacity(config, detector,
                                                                highway_video, share, burner):
    paced = PacedDetector(detector, share / FPS)
    with load(burner):
        runs = run_live(config, paced, [str(highway_video)])
    check_exact(runs, f"capacity 1/{share}{' + burner' if burner else ''}", paced)
    # Every frame reached the lanes; the model saw about what the box allows.
    runner = runs[0][0]
    assert runner.status()["cadence"] > share  # a cadence at capacity would fall behind


@pytest.mark.timeout(240)
@pytest.mark.parametrize("share,burner", [(2, False), (3, False), (5, False), (3, True)],
                         ids=["1/2", "1/3", "1/5", "1/3 burner"])
def test_rtsp_camera_counts_exactly_below_capacity(config, detector, highway_video, share,
                                                   burner):
    camera = RtspServer(highway_video, once=True)
    paced = PacedDetector(detector, share / FPS)
    try:
        with load(burner):
            runs = run_live(config, paced, [camera.url], start=camera.start)
    finally:
        camera.kill()
    # The camera ended: the stream reconnects (then gives up after max_attempts); its worker
    # has taken every frame that arrived.
    check_exact(runs, f"rtsp capacity 1/{share}", paced)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("share,burner", [(2, False), (3, False), (5, False), (3, True)],
                         ids=["1/2", "1/3", "1/5", "1/3 burner"])
def test_four_batched_streams_count_exactly_below_capacity(config, detector, highway_video,
                                                           share, burner):
    """Four cameras on one batched model whose capacity is 1/share of their frames: a batch
    of four frames takes `share` frame times. (This 2-core box itself does about 20-30
    detections a second beside four decoders: four cameras at 1/2 and 1/3 are bound by the
    machine, at 1/5 by the padding; with a core burnt, four cameras need the model on about
    every 9th frame, past the exactness limit, and the streams must say so.) The batch waits
    up to one frame interval for the other streams' frames of the same moment."""
    paced = PacedDetector(detector, share / FPS / 4)
    batched = BatchingDetector(paced, batch_size=4, timeout_s=1 / FPS)
    try:
        with load(burner):
            runs = run_live(config, batched, [str(highway_video)] * 4)
    finally:
        batched.close()
    check_exact(runs, f"4 batched, capacity 1/{share}", paced)
    cadences = {runner.status()["cadence"] for runner, _ in runs}
    assert len(cadences) == 1, cadences  # the box is shared fairly
    assert sum(batched.batch_sizes.values()) < sum(
        n * size for size, n in batched.batch_sizes.items())  # frames shared batches


@pytest.mark.timeout(240)
def test_below_the_exactness_limit_the_stream_says_its_counts_are_unreliable(
        config, detector, highway_video):
    """Capacity 1/12 of the camera: the model can see at most every 13th frame, 0.43 s apart,
    beyond the 0.34 s limit. Counts may miss vehicles now, and every surface says so."""
    runs = run_live(config, PacedDetector(detector, 12 / FPS), [str(highway_video)])
    runner, crossings = runs[0]
    status = runner.status()
    print(f"\ncapacity 1/12: cadence {status['cadence']}, largest gap "
          f"{status['largest_gap_s']:.3f} s, counts {dict(crossings)}")
    assert status["frames_processed"] == CLIP_FRAMES  # still every frame, never a burst
    assert status["cadence"] >= 13
    assert not status["counting_reliable"]
    assert status["largest_gap_s"] > status["gap_limit_s"]
    assert "exactness limit" in status["counting_reason"]
    assert "detection.max_gap_s" in status["counting_reason"]
    exposition = runner.metrics.exposition().decode()
    assert 'lanewatch_counting_reliable{stream="cam0"} 0.0' in exposition
    assert f'lanewatch_detection_cadence{{stream="cam0"}} {float(status["cadence"])}' \
        in exposition
    # Never more vehicles than passed: a gap can lose a vehicle, not invent one.
    assert all(crossings[lane] <= n for lane, n in HAND_COUNT.items())
