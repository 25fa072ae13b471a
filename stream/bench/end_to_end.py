"""`lanewatch bench`: how close the pipeline runs to the model's own limit, on this machine.

One run, one clip, one model, measured in turn (never concurrently):

- the raw model: synchronous (one request at a time) and with requests in flight, on frames
  letterboxed beforehand (decode and pre-processing excluded);
- our `process`: counting only (decode, detect, track, count, reports), then with annotation
  and H.264 video writing as well;
- Ultralytics on the same clip and model: `model.track` (ByteTrack) and
  `solutions.ObjectCounter` (the counting lines joined into its one region);
- the CPU per frame of the model alone and of each `process` thread (decode, main, video,
  the runtime's), and the frames per second those allow with every core busy: what bounds
  the ratios on this machine (sinks/cpu_use.py);
- live: the clip paced like a camera through the live worker, capture-to-publish latency
  percentiles against the model's single-frame inference time;
- live: the cadence the stream's worker chose (the model on every Nth frame), whether its
  counts were reliable, and its crossings;
- many cameras (`--streams N`): for k = 1 .. N, k copies of the stream paced like cameras and
  played once, in one process as `serve` runs them (shared model, or batched; one capacity
  governor): each stream's cadence and counts against the review's, and how many cameras the
  box counts exactly (stream/bench/many_streams.py); `--streams-only` measures just that;
- when the config tiles its first stream or runs it at its own input size: that against
  neither, frames/s and the detection step's time per frame (stream/bench/robustness.py);
- a model comparison table over the models given (each measured in a child process, so peak
  memory is its own).

Figures are printed, with the ratios the performance targets are stated in; nothing here
asserts a timing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from lanewatch.sinks.cpu_use import cpu_bound_fps
from lanewatch.stream.bench.measurements import (
    Round,
    live_rate,
    load_frames,
    measure_live_latency,
    measure_model,
    measure_paced_inference,
    measure_process,
    measure_rounds,
    model_table,
)
from lanewatch.stream.bench.robustness import detection_cost, is_tiled_or_upscaled
from lanewatch.stream.bench.ultralytics_counter import (
    measure_object_counter,
    measure_ultralytics_track,
)
from lanewatch.stream.config.schema import Config
from lanewatch.stream.pipeline.cadence import ordinal
from lanewatch.stream.sources.file_source import FileSource

_ORDINAL = {2: "2nd", 3: "3rd"}


def report_cpu(measured: Round, preset: str, say) -> None:
    """Where the CPU goes, per frame: the model alone against `process`, thread by thread,
    and the frames per second each total allows with every core busy (the ceiling the
    ratios above are bound by, on this machine)."""
    raw, cores = measured.raw, os.cpu_count() or 1
    columns = ("runtime", "decode", "main", "video", "total")

    def line(name: str, cpu: dict[str, float], measured_fps: float) -> None:
        ceiling = cpu_bound_fps(cpu["total"], cores)
        cells = "".join(f"{cpu[k]:8.2f}" if cpu.get(k) else f"{'-':>8}" for k in columns)
        say(f"  {name:<50}{cells}   {ceiling:6.1f} = {ceiling / raw.inflight_fps:.2f}x raw "
            f"(measured {measured_fps:.1f})")

    say(f"\n  {'CPU per frame, ms (every thread)':<50}"
        + "".join(f"{k:>8}" for k in columns) + f"   frames/s at most on {cores} cores")
    line("model alone, in flight", {"runtime": raw.inflight_cpu_ms,
                                    "total": raw.inflight_cpu_ms}, raw.inflight_fps)
    line("process: counting only", measured.counting.cpu_ms, measured.counting.fps)
    line(f"process: counting + annotated H.264 ({preset})", measured.annotated.cpu_ms,
         measured.annotated.fps)
    say("  (runtime: the inference runtime's threads and the rest of the process; main: "
        "pre- and post-processing, tracking, counting, drawing; at most: every core busy "
        "with this CPU per frame; one round, the median's)")


def _many_streams(config: Config, video: Path, streams: int, seconds: float | None,
                  say) -> dict:
    """k = 1 .. `streams` cameras counted live against the review (stream/bench/many_streams.py)."""
    from lanewatch.stream.bench import many_streams as bench_streams

    return bench_streams.measure_streams(config, video, streams, seconds, say=say)


def _median(values) -> float:
    return float(np.median(list(values)))


def run(config: Config, video: Path, models: list[str], live_seconds: float,
        ultralytics: bool = True, out=sys.stdout, streams: int = 0,
        streams_seconds: float | None = None, rounds: int = 3,
        streams_only: bool = False) -> dict:
    """Measure everything and print the report; returns the figures (for --json). The raw
    model and `process` (counting only, annotated) are measured in `rounds` interleaved
    rounds and reported as medians; each target ratio is the median of its rounds' ratios.
    `streams_only`: only the many-cameras part (`streams` cameras, the clip's first
    `streams_seconds` when given)."""
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    with FileSource(video) as source:
        info = source.info
    say(f"lanewatch bench: {video.name} ({info.width}x{info.height}, {info.frame_count} "
        f"frames), model {Path(config.model.path).name}, {os.cpu_count()} CPU threads")
    if streams_only:
        return {"many_streams": _many_streams(config, video, max(streams, 1), streams_seconds,
                                              say)}
    frames = load_frames(video, 60)
    measured = measure_rounds(config, video, frames, rounds)
    middle = min(measured, key=lambda r: abs(r.raw.inflight_fps - _median(
        m.raw.inflight_fps for m in measured)))  # the median round (by the model alone)
    raw = middle.raw
    counting = _median(r.counting.fps for r in measured)
    annotated = _median(r.annotated.fps for r in measured)
    counting_ratio = _median(r.counting.fps / r.raw.inflight_fps for r in measured)
    annotated_ratio = _median(r.annotated.fps / r.raw.inflight_fps for r in measured)
    lanes = measured[0].counting.lanes
    preset = config.output.video_preset
    fastest = measure_process(config, video, video=True, video_preset="ultrafast")
    smaller = measure_process(config, video, video=True, video_width=640)
    skipping = {n: measure_process(config, video, every_nth_frame=n, video=False)
                for n in (2, 3)}
    padded = None
    if raw.refitted:  # also the export as Ultralytics runs it, padded to its own input
        padded = measure_model(config.model.model_copy(update={"rect": False}), frames)
    figures: dict = {"raw": raw.__dict__, "process_counting_fps": counting,
                     "process_annotated_fps": annotated, "video_preset": preset,
                     "rounds": [{"raw_inflight_fps": r.raw.inflight_fps,
                                 "raw_sync_fps": r.raw.sync_fps,
                                 "raw_inflight_cpu_ms": r.raw.inflight_cpu_ms,
                                 "counting_fps": r.counting.fps,
                                 "annotated_fps": r.annotated.fps, "lanes": r.counting.lanes,
                                 "lanes_annotated": r.annotated.lanes,
                                 "counting_cpu_ms": r.counting.cpu_ms,
                                 "annotated_cpu_ms": r.annotated.cpu_ms} for r in measured],
                     "counting_vs_raw": counting_ratio, "annotated_vs_raw": annotated_ratio,
                     "process_annotated_ultrafast_fps": fastest.fps,
                     "process_annotated_640_fps": smaller.fps, "lanes": lanes,
                     "process_every_nth_frame": {n: {"fps": skip.fps, "lanes": skip.lanes}
                                                 for n, skip in skipping.items()}}
    track_fps = counter_fps = counter_total = None
    if ultralytics:
        track_fps = measure_ultralytics_track(config, video)
        counter_fps, counter_total = measure_object_counter(config, video) or (None, None)
        figures.update(ultralytics_track_fps=track_fps, object_counter_fps=counter_fps,
                       object_counter_crossings=counter_total)

    def row(name: str, fps: float, note: str = "", ratio: float | None = None) -> None:
        vs_raw = f"{fps / raw.inflight_fps if ratio is None else ratio:5.2f}x"
        vs_counter = f"{fps / counter_fps:5.2f}x" if counter_fps else "     -"
        say(f"  {name:<58}{fps:8.1f}   {vs_raw}   {vs_counter}   {note}")

    say(f"\n  {'':<58}{'frames/s':>8}   {'vs raw':>6}   {'vs OC':>6}")
    shape = f"{raw.input_hw[1]}x{raw.input_hw[0]}"
    row(f"model alone at {shape}, synchronous", raw.sync_fps)
    row(f"model alone at {shape}, {raw.requests} requests in flight", raw.inflight_fps,
        "the raw reference: the input process gives this clip")
    if padded is not None:
        figures["raw_padded"] = padded.__dict__
        row(f"model alone padded to {padded.input_hw[1]}x{padded.input_hw[0]} (rect: false), "
            f"in flight", padded.inflight_fps, "the export's own input, as Ultralytics runs it")
    total = sum(lanes.values())
    def same(*found: dict) -> str:
        differ = [f for f in found if f != lanes]
        return "same counts" if not differ else f"COUNTS DIFFER {differ}"
    rounds_note = f"median of {rounds} rounds, " if rounds > 1 else ""
    row("process: counting only", counting, f"{rounds_note}{total} crossings {lanes}"
        + ("" if all(r.counting.lanes == lanes for r in measured) else
           f" ROUNDS DIFFER {[r.counting.lanes for r in measured]}"), counting_ratio)
    row(f"process: counting + annotated H.264 ({preset})", annotated,
        f"{rounds_note}{same(*(r.annotated.lanes for r in measured))}", annotated_ratio)
    if preset != "ultrafast":
        row("process: counting + annotated H.264 (ultrafast)", fastest.fps,
            same(fastest.lanes))
    row(f"process: counting + annotated H.264 at 640 px ({preset})", smaller.fps,
        same(smaller.lanes))
    for n, skip in skipping.items():
        row(f"process: counting, detection every {_ORDINAL[n]} frame", skip.fps,
            same(skip.lanes))
    if ultralytics:
        row("Ultralytics model.track (ByteTrack)", track_fps)
        if counter_fps:
            row("Ultralytics solutions.ObjectCounter", counter_fps,
                f"{counter_total} crossings of the joined line")
        else:
            say("  Ultralytics solutions.ObjectCounter: not measured, the stream has no "
                "counting line for it to count at")
    say("  (vs raw: against the model alone with requests in flight; vs OC: against "
        "ObjectCounter)")
    if rounds > 1:
        say(f"  (counting and annotated: medians of {rounds} rounds, each measuring the model "
            "alone, counting and annotated back to back; their 'vs raw' is the median of the "
            "rounds' ratios; the model rows are the median round's)")
    padded_note = ("" if padded is None else
                   f"; against the export padded to its own input: counting "
                   f"{counting / padded.inflight_fps:.2f}x, annotated "
                   f"{annotated / padded.inflight_fps:.2f}x")
    say(f"  targets: counting >= 0.85x raw ({counting_ratio:.2f}x)"
        + (f" and >= 2.0x ObjectCounter ({counting / counter_fps:.2f}x)" if counter_fps
           else "")
        + f"; annotated >= 0.70x raw ({annotated_ratio:.2f}x){padded_note}")
    report_cpu(middle, preset, say)
    if is_tiled_or_upscaled(config):  # what the tiles or the larger input cost (robustness.py)
        figures["detection_cost"] = detection_cost(config, video, say)

    if live_seconds > 0:
        rate = live_rate(info.fps, raw.latency_p50_ms)
        live = measure_live_latency(config, live_seconds, rate if rate < info.fps else None,
                                    info.frame_count)
        latency = live.latencies
        p50, p95, p99 = (float(np.percentile(latency, q) * 1000) for q in (50, 95, 99))
        paced_ms = float(np.median(measure_paced_inference(config, load_frames(video, 90),
                                                           rate)) * 1000)
        figures["live_latency_ms"] = {"p50": p50, "p95": p95, "p99": p99,
                                      "frames": int(len(latency)), "rate_fps": rate,
                                      "paced_inference_p50": paced_ms}
        paced = (f"the clip paced at {info.fps:.2f} frames/s" if rate >= info.fps else
                 f"the clip paced at {info.fps:.2f} frames/s, processed at {rate:.1f} "
                 "(half the model's one-frame-at-a-time rate: the target holds below "
                 "capacity)")
        say(f"\n  live ({paced}, {len(latency)} frames): "
            f"capture to publish p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
        say(f"  single-frame detection p50: {paced_ms:.1f} ms at the live pace, "
            f"{raw.latency_p50_ms:.1f} ms back to back; target p99 < 2x: "
            f"{p99 / paced_ms:.2f}x the model at the live pace "
            f"({p99 / raw.latency_p50_ms:.2f}x back to back)")
        st = live.status
        figures["live_stream"] = {
            "cadence": st["cadence"], "max_cadence": live.max_cadence,
            "processed_fraction": st["processed_fraction"],
            "largest_gap_frames": st["largest_gap_frames"],
            "largest_gap_s": st["largest_gap_s"], "gap_limit_s": st["gap_limit_s"],
            "counting_reliable": st["counting_reliable"],
            "counting_reason": st["counting_reason"],
            "frames_received": st["frames_received"],
            "frames_processed": st["frames_processed"],
            "frames_dropped": st["frames_dropped"], "crossings": live.crossings,
            "clip_passes": live.passes}
        say(f"  live stream: cadence {st['cadence']} (the model on every "
            f"{ordinal(st['cadence'])} frame; at most {live.max_cadence} during the run), "
            f"{st['processed_fraction']:.1%} of the frames it processed went to the model, "
            f"largest gap "
            f"{st['largest_gap_frames']} frames ({st['largest_gap_s']:.3f} s, limit "
            f"{st['gap_limit_s']:g} s), counting reliable: "
            f"{'yes' if st['counting_reliable'] else 'NO'}; {st['frames_received']} frames "
            f"received ({live.passes:.1f} plays of the looped clip), {st['frames_processed']} "
            f"processed, {st['frames_dropped']} dropped; {live.crossings} crossings counted")
        if not st["counting_reliable"] and st["counting_reason"]:
            say(f"  (not reliable: {st['counting_reason']})")

    if streams > 0:
        figures["many_streams"] = _many_streams(config, video, streams, streams_seconds, say)

    if models:
        rows = model_table(models, config.model, video)
        figures["models"] = rows
        say(f"\n  {'model':<36}{'sync f/s':>9}{'in flight':>10}{'p50 ms':>8}{'p95 ms':>8}"
            f"{'peak MB':>9}{'dets/frame':>11}")
        for r in rows:
            if "error" in r:
                say(f"  {r['model']:<36}error: {r['error']}")
                continue
            say(f"  {r['model']:<36}{r['sync_fps']:9.1f}{r['inflight_fps']:10.1f}"
                f"{r['latency_p50_ms']:8.1f}{r['latency_p95_ms']:8.1f}"
                f"{r['peak_rss_mb']:9.0f}{r['detections_per_frame']:11.1f}")
    return figures
