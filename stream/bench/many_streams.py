"""`lanewatch bench --streams N`: how many cameras this box counts exactly.

For k = 1 .. N, k copies of the config's first stream run in one process as `serve` runs them:
one shared detector (`create_detector(model, k)`), one shared `CapacityGovernor`, every frame
taken in order, the model on every Nth frame (N the cadence the governor picks), the tracker
predicting the rest. Each copy is paced like a camera (real time) and plays the clip once, not
looped; the run ends when every source has ended and every worker has drained its queue. Each
stream's crossings per (lane, class, direction) are then compared with the review's
(`lanewatch process`) counts of the same file: exact or not. A set-up counts k cameras exactly
when all k streams' counts equal the review's and every stream reported its counts reliable
(the largest gap between two detections within `detection.max_gap_s`).

Two set-ups per k (the second from k = 2): each stream calling the shared model itself, and
the streams' frames batched (`BatchingDetector`, batch_size k). With every frame processed,
"frames per second" is just the cameras' rate; what the box's capacity shows in is the cadence,
the share of frames the model saw and the model's detections per second. (N separate
processes are no longer compared: each would run a governor blind to the others' load, which
is not how `serve` runs cameras.) "This box counts K of N cameras exactly": K is the largest k
some set-up counted exactly.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from lanewatch.stream.config.schema import Config

CountTable = dict[str, dict[str, dict[str, int]]]  # lane -> class -> direction -> crossings


@dataclass(frozen=True)
class Clip:
    """The clip every camera plays once."""

    path: str
    width: int
    height: int
    fps: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def describe(self) -> str:
        """'720p, 29.97 frames/s'."""
        return f"{self.height}p, {self.fps:.2f} frames/s"


@dataclass
class StreamFigures:
    """One camera of one run."""

    id: str
    cadence: int  # the model on every Nth frame, at the end
    max_cadence: int  # the largest cadence any of its frames was scheduled at
    processed_fraction: float  # frames the model saw / frames counted (status, whole clip)
    largest_gap_frames: int
    largest_gap_s: float
    gap_limit_s: float
    counting_reliable: bool  # the stream's own verdict (largest gap within gap_limit_s)
    counting_reason: str | None  # why not
    frames_received: int
    frames_processed: int
    frames_dropped: int
    detections: int  # frames the model saw (counted from the results)
    max_latency_s: float  # capture to publish, the largest: how far the worker fell behind
    counts: CountTable
    exact: bool  # counts == the review's
    error: str | None = None  # the stream failed, or did not drain in time


@dataclass
class RunFigures:
    """k cameras in one set-up."""

    setup: str  # "shared" or "batched"
    cameras: int
    elapsed_s: float  # from the cameras' start until every worker drained
    drained: bool
    detections_per_s: float  # the model's frames per second of wall time, all cameras
    streams: list[StreamFigures] = field(default_factory=list)

    @property
    def all_exact(self) -> bool:
        return all(s.exact for s in self.streams)

    @property
    def all_reliable(self) -> bool:
        return all(s.counting_reliable for s in self.streams)

    @property
    def counted_exactly(self) -> bool:
        return self.drained and self.all_exact and self.all_reliable

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "all_exact": self.all_exact, "all_reliable": self.all_reliable,
                "counted_exactly": self.counted_exactly}


SETUPS = {"shared": "one process, each stream calling the shared model",
          "batched": "one process, one batched model (batch_size k)"}


# -- the clip and the review ------------------------------------------------------------------
def clip_info(video: Path) -> Clip:
    from lanewatch.stream.sources.file_source import FileSource

    with FileSource(video) as source:
        info = source.info
    return Clip(str(video), info.width, info.height, info.fps, info.frame_count)


def clip_prefix(video: Path, seconds: float, folder: Path) -> Path:
    """The clip's first `seconds` as a file of its own (re-encoded, nearly lossless), so that
    the cameras and the review see the same, shorter, clip. The whole clip when shorter."""
    import av

    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        total = stream.frames or 0
        wanted = math.ceil(seconds * rate)
        if total and wanted >= total:
            return video
        path = folder / f"{video.stem}-first-{seconds:g}s.mp4"
        with av.open(str(path), "w") as out:
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height = stream.width, stream.height
            encoder.pix_fmt = "yuv420p"
            encoder.options = {"crf": "12", "preset": "veryfast"}
            written = 0
            for frame in source.decode(stream):
                if written >= wanted:
                    break
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = written, 1 / Fraction(rate)
                out.mux(encoder.encode(frame))
                written += 1
            out.mux(encoder.encode(None))
    return path


def count_table(keys: Counter) -> CountTable:
    """(lane, class, direction) -> n as nested dicts (JSON), zeros left out."""
    table: CountTable = {}
    for (lane, cls, direction), n in sorted(keys.items()):
        if n:
            table.setdefault(lane, {}).setdefault(cls, {})[direction] = int(n)
    return table


def review_counts(config: Config, clip: Path) -> CountTable:
    """The review's (`lanewatch process`) crossings of the clip, per lane, class, direction."""
    from lanewatch.stream.pipeline.review import review_video

    config = config.model_copy(update={"output": config.output.model_copy(
        update={"video": False})})
    with tempfile.TemporaryDirectory() as out:
        summary = review_video(clip, config, Path(out), progress=False).summary
    keys: Counter = Counter()
    for lane, figures in summary["lanes"].items():
        for cls, directions in figures["by_class"].items():
            for direction, n in directions.items():
                keys[(lane, cls, direction)] += n
    return count_table(keys)


# -- the cameras ------------------------------------------------------------------------------
class _Watch:
    """One stream's results as they are published (the stream's worker thread)."""

    def __init__(self) -> None:
        self.runner = None
        self.crossings: Counter = Counter()
        self.detections = 0
        self.max_cadence = 0
        self.max_latency_s = 0.0

    def __call__(self, result) -> None:
        self.crossings.update((e.lane, e.class_name, e.direction)
                              for e in result.analytics.crossings)
        if result.detected:
            self.detections += 1
        scheduler = self.runner.scheduler
        if scheduler is not None:
            self.max_cadence = max(self.max_cadence, scheduler.load.cadence)
        self.max_latency_s = max(self.max_latency_s, time.time() - result.frame.wall_time)


def _drained(runner) -> bool:
    """Its source ended (a file that is not looped) and its worker took every frame."""
    thread = runner._thread
    return thread is not None and not thread.is_alive()


def run_cameras(config: Config, clip: Clip, cameras: int, batched: bool,
                reference: CountTable) -> RunFigures:
    """`cameras` paced copies of the clip's stream, one process, one governor, one model."""
    from lanewatch.sinks.metrics import ServiceMetrics
    from lanewatch.stream.detect.batching import BatchingDetector
    from lanewatch.stream.detect.factory import create_detector
    from lanewatch.stream.pipeline.governor import CapacityGovernor
    from lanewatch.stream.pipeline.processor import StreamProcessor
    from lanewatch.stream.pipeline.runner import StreamRunner
    from lanewatch.trackers.bytetrack.warm_up import warm_up

    detector = create_detector(config.model, cameras)  # as serve: one caller per stream
    if batched:
        detector = BatchingDetector(detector, cameras, config.model.batch_timeout_ms / 1000)
    stream = config.streams[0]
    options = stream.source_options.model_copy(update={"loop": False, "realtime": True,
                                                       "max_fps": None})
    # A service that is running has its model compiled and its tracker loaded: that start-up
    # work (a second or two on a busy box) is done before the cameras start, not during them.
    StreamProcessor(stream, config, detector, (clip.width, clip.height),
                    clip.fps).prepare_detector(single=True)
    warm_up()
    governor = CapacityGovernor()  # shared by the process's streams, as in serve
    runs: list[tuple[Any, _Watch]] = []
    for k in range(cameras):
        watch = _Watch()
        copy = stream.model_copy(update={"id": f"{stream.id}-{k + 1}", "source": clip.path})
        watch.runner = StreamRunner(copy, config, detector, ServiceMetrics(), on_result=watch,
                                    source_settings=options, governor=governor)
        runs.append((watch.runner, watch))
    started = time.monotonic()
    deadline = started + 2 * clip.seconds + 60  # a box far behind still ends, unexact
    try:
        for runner, _ in runs:
            runner.start()
        while not all(_drained(r) for r, _ in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        drained = all(_drained(r) for r, _ in runs)
        figures = RunFigures("batched" if batched else "shared", cameras, elapsed, drained, 0.0)
        for runner, watch in runs:
            figures.streams.append(_stream_figures(runner, watch, reference))
    finally:
        for runner, _ in runs:
            runner.stop()
        detector.close()
    figures.detections_per_s = sum(s.detections for s in figures.streams) / elapsed
    return figures


def _stream_figures(runner, watch: _Watch, reference: CountTable) -> StreamFigures:
    status = runner.status()
    counts = count_table(watch.crossings)
    error = status["error"]
    if not _drained(runner):
        error = "did not drain in time: " + (error or "the box fell far behind")
    return StreamFigures(
        id=status["id"], cadence=status["cadence"],
        max_cadence=max(watch.max_cadence, status["cadence"]),
        processed_fraction=status["processed_fraction"],
        largest_gap_frames=status["largest_gap_frames"],
        largest_gap_s=status["largest_gap_s"], gap_limit_s=status["gap_limit_s"],
        counting_reliable=status["counting_reliable"],
        counting_reason=status["counting_reason"],
        frames_received=status["frames_received"], frames_processed=status["frames_processed"],
        frames_dropped=status["frames_dropped"], detections=watch.detections,
        max_latency_s=watch.max_latency_s, counts=counts, exact=counts == reference,
        error=error)


# -- the bench --------------------------------------------------------------------------------
def measure_streams(config: Config, video: Path, streams: int, seconds: float | None = None,
                    batched: bool = True, say=None) -> dict[str, Any]:
    """k = 1 .. `streams` cameras, in each set-up (module doc); the clip's first `seconds`
    only when given (a short run). Returns the figures (JSON-ready); `say` prints each run's
    rows as it ends."""
    with tempfile.TemporaryDirectory() as folder:
        clip_path = video if seconds is None else clip_prefix(video, seconds, Path(folder))
        clip = clip_info(clip_path)
        reference = review_counts(config, clip_path)
        if say is not None:
            header(clip, video, reference, say)
        runs: list[RunFigures] = []
        for k in range(1, streams + 1):
            for batch in (False, True) if batched and k > 1 else (False,):
                run = run_cameras(config, clip, k, batch, reference)
                runs.append(run)
                if say is not None:
                    report_run(run, reference, say)
    exact = {setup: exactly_counted(runs, setup) for setup in SETUPS
             if any(r.setup == setup for r in runs)}
    figures = {"streams": streams, "clip": {**asdict(clip), "path": str(video),
                                            "seconds": clip.seconds},
               "camera": clip.describe(), "review_counts": reference,
               "review_crossings": total(reference),
               "runs": [r.as_json() for r in runs], "exact_cameras_by_setup": exact,
               "exact_cameras": max(exact.values(), default=0)}
    if say is not None:
        report_summary(figures, say)
    return figures


def exactly_counted(runs: list[RunFigures], setup: str) -> int:
    """The most cameras a set-up counted exactly (every stream exact and reliable); 0: none."""
    return max((r.cameras for r in runs if r.setup == setup and r.counted_exactly), default=0)


def total(table: CountTable) -> int:
    return sum(n for classes in table.values() for dirs in classes.values()
               for n in dirs.values())


def _flat(table: CountTable) -> Counter:
    return Counter({(lane, cls, d): n for lane, classes in table.items()
                    for cls, dirs in classes.items() for d, n in dirs.items()})


def count_difference(counts: CountTable, reference: CountTable) -> str:
    """'lane3 car towards 2 (review 3), ...' for the keys that differ."""
    mine, theirs = _flat(counts), _flat(reference)
    return ", ".join(f"{lane} {cls} {d} {mine[(lane, cls, d)]} (review {theirs[(lane, cls, d)]})"
                     for lane, cls, d in sorted(set(mine) | set(theirs))
                     if mine[(lane, cls, d)] != theirs[(lane, cls, d)])


# -- printing ---------------------------------------------------------------------------------

def header(clip: Clip, video: Path, reference: CountTable, say) -> None:
    part = "" if clip.path == str(video) else f" (its first {clip.seconds:.1f} s)"
    say(f"\n  many cameras: k copies of {video.name}{part}, {clip.width}x{clip.height} at "
        f"{clip.fps:.2f} frames/s, each paced like a camera and played once ({clip.frames} "
        f"frames, {clip.seconds:.1f} s), in one process with one capacity governor; every "
        f"frame is tracked, the model sees every Nth (N: the cadence). Counts per (lane, "
        f"class, direction) against the review of the same file: {total(reference)} "
        "crossings")
    say("  (cadence: the model on every Nth frame at the end, max: the largest during the run; "
        "detected: the frames the model saw; largest gap: between two detections, reliable "
        "when within detection.max_gap_s; dropped: frames lost because the worker fell "
        "max_backlog_s behind; lag max: the longest capture-to-publish time)")
    say(f"  {'set-up':<8}{'cams':>5}  {'stream':<12}{'cadence':>8}{'max':>5}{'detected':>10}"
        f"{'largest gap':>17}{'reliable':>10}{'dropped':>9}{'lag max':>9}  counts")


def report_run(run: RunFigures, reference: CountTable, say) -> None:
    notes: dict[str, list[str]] = {}  # what went wrong -> the streams it went wrong for
    for s in run.streams:
        gap = f"{s.largest_gap_frames} fr {s.largest_gap_s:.3f} s"
        counts = f"{total(s.counts)} {'= review' if s.exact else 'DIFFER'}"
        say(f"  {run.setup:<8}{run.cameras:>5}  {s.id:<12}{s.cadence:>8}{s.max_cadence:>5}"
            f"{s.processed_fraction:>10.1%}{gap:>17}"
            f"{'yes' if s.counting_reliable else 'NO':>10}"
            f"{s.frames_dropped:>9}{s.max_latency_s:>8.2f}s  {counts}")
        if not s.exact:
            notes.setdefault("counts differ from the review: "
                             + count_difference(s.counts, reference), []).append(s.id)
        if not s.counting_reliable and s.counting_reason:
            notes.setdefault(f"not reliable: {s.counting_reason}", []).append(s.id)
        if s.error:
            notes.setdefault(f"error: {s.error}", []).append(s.id)
    for note, ids in notes.items():
        say(f"{'':<16}{', '.join(ids)}: {note}")
    verdict = "all counted exactly" if run.counted_exactly else "NOT all counted exactly"
    say(f"  {run.setup:<8}{run.cameras:>5}  -> {verdict}; the model ran "
        f"{run.detections_per_s:.1f} times a second for all {run.cameras} together; done "
        f"{run.elapsed_s:.1f} s after the cameras started")


def report_summary(figures: dict[str, Any], say) -> None:
    n, camera = figures["streams"], figures["camera"]
    runs = figures["runs"]
    fps = figures["clip"]["fps"]
    for setup, k in figures["exact_cameras_by_setup"].items():
        margin = ""
        at = [s for r in runs if r["setup"] == setup and r["cameras"] == k for s in r["streams"]]
        if at:  # how close to the exactness limit the most cameras counted exactly were
            gap = max(s["largest_gap_frames"] for s in at)
            limit = max(s["gap_limit_s"] for s in at)
            margin = (f" (largest gap {gap} frames; the exactness limit, detection.max_gap_s "
                      f"{limit:g} s, allows {math.floor(limit * fps + 1e-6)})")
        say(f"  {SETUPS[setup]}: {k} of {n} cameras counted exactly{margin}")
    holes = sorted({r["cameras"] for r in runs if not r["counted_exactly"]
                    and r["cameras"] < figures["exact_cameras"]})
    if holes:
        say(f"  (not every smaller run was exact: {holes} cameras failed; a busy box?)")
    say(f"  this box counts {figures['exact_cameras']} of {n} cameras ({camera}) exactly")
