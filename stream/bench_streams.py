"""`lanewatch bench --streams N`: many cameras on one box.

N copies of the config's first stream, each paced like a camera (the clip looped), run for a
while in three set-ups, and the frames processed per second by all of them together are
compared: one process with one batched model (`model.batch_size` N), one process where each
stream calls the shared model itself, and N separate processes each with its own model.
"""

from __future__ import annotations

import subprocess
import sys
import time

from lanewatch.stream.config import Config


def live_frames(config: Config, streams: int, seconds: float, batch_size: int) -> float:
    """Frames per second processed by `streams` paced copies of the first stream, in this
    process, after a warm-up."""
    from lanewatch.sinks.metrics import ServiceMetrics
    from lanewatch.stream.batching import BatchingDetector
    from lanewatch.stream.detector import create_detector
    from lanewatch.stream.runner import StreamRunner

    detector = create_detector(config.model, streams)
    if batch_size > 1:
        detector = BatchingDetector(detector, batch_size, config.model.batch_timeout_ms / 1000)
    stream = config.streams[0]
    options = stream.source_options.model_copy(update={"loop": True, "realtime": True})
    runners = [StreamRunner(stream.model_copy(update={"id": f"{stream.id}-{k}"}), config,
                            detector, ServiceMetrics(), source_settings=options).start()
               for k in range(streams)]
    try:
        time.sleep(3.0)  # sources open, first frames, compiled kernels
        f0, t0 = sum(r.frames_processed for r in runners), time.monotonic()
        time.sleep(seconds)
        f1, t1 = sum(r.frames_processed for r in runners), time.monotonic()
    finally:
        for r in runners:
            r.stop()
        if isinstance(detector, BatchingDetector):
            detector.close()
    return (f1 - f0) / (t1 - t0)


def measure_streams(config: Config, streams: int, seconds: float) -> dict[str, float]:
    """Aggregate frames/s of `streams` cameras in the three set-ups (module docstring)."""
    batched = live_frames(config, streams, seconds, batch_size=streams)
    shared = live_frames(config, streams, seconds, batch_size=1)
    code = ("import sys; from lanewatch.stream.bench_streams import live_frames; "
            "from lanewatch.stream.config import Config; "
            "c = Config.model_validate_json(sys.argv[1]); "
            "print(live_frames(c, 1, float(sys.argv[2]), 1))")
    children = [subprocess.Popen([sys.executable, "-c", code,
                                  config.model_dump_json(by_alias=True), str(seconds)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(streams)]
    separate = 0.0
    for child in children:
        out, err = child.communicate(timeout=seconds + 300)
        if child.returncode != 0:
            raise RuntimeError(f"a bench child process failed: {err.strip()[-500:]}")
        separate += float(out.strip().splitlines()[-1])
    return {"streams": streams, "one_process_batched_fps": batched,
            "one_process_unbatched_fps": shared, "separate_processes_fps": separate}


def report(figures: dict[str, float], say) -> None:
    n = figures["streams"]
    base = figures["separate_processes_fps"]
    say(f"\n  {n} cameras paced at the clip's rate, frames processed per second, all together:")
    for label, key in ((f"one process, one batched model (batch_size {n})",
                        "one_process_batched_fps"),
                       ("one process, each stream calling the shared model",
                        "one_process_unbatched_fps"),
                       (f"{n} separate processes, a model each", "separate_processes_fps")):
        fps = figures[key]
        say(f"  {label:<58}{fps:8.1f}   {fps / base:5.2f}x")

