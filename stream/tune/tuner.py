"""`lanewatch tune`'s work: the cache passes, the search, the tuned config and the check.

1. The manual count is read and checked against the stream's lanes (as `validate` checks it
   against a review) before anything is detected (manual_input.py).
2. The detector runs once over the clip for the user's detection variant, permissively
   (detection_cache.py); a probe with every class kept shows which model classes the
   manual count's vehicles are confused with (candidate `class_aliases`).
3. Coordinate descent (search.py) over the dimensions (space.py), each candidate scored from
   the cached detections (evaluation.py); a new detection variant (input size, region) runs
   one more pass, shared by every candidate with that variant.
4. The best config is written (config_file.py) and loaded back: it must be the config that
   was scored.
5. Trust: the real review (`review_video`) runs with the written config and its events are
   validated as `lanewatch validate` would: they must be the cached evaluation's events,
   else `TuneMismatch` (a bug) is raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanewatch.sinks.errors import LanewatchError
from lanewatch.sinks.validation_input import load_run
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import Config
from lanewatch.stream.pipeline.review import review_video
from lanewatch.stream.tune.config_file import WrittenConfig, rebase_paths, rewrite
from lanewatch.stream.tune.detection_cache import (
    CachedClip,
    DetectionVariant,
    detect_clip,
    load_clip,
    save_clip,
)
from lanewatch.stream.tune.evaluation import Evaluation, Score, evaluate, score_events
from lanewatch.stream.tune.manual_input import read_manual
from lanewatch.stream.tune.search import SearchResult, Trial, coordinate_descent
from lanewatch.stream.tune.space import (
    CADENCES,
    Dimension,
    apply,
    dimensions,
    user_values,
)
from lanewatch.trackers.evaluation.count_matching import CountEvent
from lanewatch.trackers.evaluation.count_metrics import CountValidation

log = logging.getLogger(__name__)

FLOOR = 0.01  # the cache passes' confidence: under every value searched
CHECK_DIR = "check"


class TuneMismatch(LanewatchError):
    """The review of the tuned config does not count what the cached evaluation counted: a
    bug in `tune` (or in the review), never the user's doing."""

    exit_code = 1


@dataclass(frozen=True)
class TuneRequest:
    """What the user asked for."""

    video: Path
    manual: Path
    config: Path
    outdir: Path
    stream_id: str | None = None
    tolerance_s: float = 1.0
    interval_s: float = 900.0
    budget: int = 150
    quick: bool = False
    cache: bool = True  # keep detector passes in OUTDIR/detections-*.npz
    progress: bool = True


@dataclass(frozen=True)
class DetectorPass:
    """One detection variant's pass over the clip."""

    variant: str
    seconds: float
    from_file: bool
    error: str | None = None


@dataclass(frozen=True)
class Check:
    """The real review of the tuned config, validated as `lanewatch validate` does."""

    run_dir: Path
    validation: CountValidation
    score: Score
    agrees: bool  # the same events and score as the cached evaluation of the config
    seconds: float


@dataclass(frozen=True)
class TuneOutcome:
    """Everything the report shows."""

    request: TuneRequest
    stream_id: str
    dims: list[Dimension]
    search: SearchResult
    baseline: Evaluation
    best: Evaluation
    best_config: Config
    written: Path
    comments_kept: bool
    check: Check
    passes: list[DetectorPass]
    warnings: list[str]
    aliases: dict[str, str]
    headroom: list[tuple[int, Score]]  # the tuned config at higher cadences
    seconds: dict[str, float]  # total, search, detector, evaluations, check
    evaluations: dict[tuple, Evaluation]  # by the candidate's changes (sorted)


def cache_file(outdir: Path, variant: DetectionVariant) -> Path:
    """Where a variant's detector pass is kept in the output folder."""
    digest = hashlib.sha1(variant.key.encode()).hexdigest()[:10]
    return outdir / f"detections-{digest}.npz"


class _Clips:
    """The detector passes, one per detection variant, made on first use."""

    def __init__(self, request: TuneRequest, stream_id: str,
                 notify: Callable[[str], None]):
        self.request, self.stream_id, self.notify = request, stream_id, notify
        self.clips: dict[DetectionVariant, CachedClip | None] = {}
        self.passes: list[DetectorPass] = []

    def get(self, config: Config) -> CachedClip | None:
        """The pass of this config's variant (None when the model cannot run it)."""
        stream = config.stream(self.stream_id)
        variant = DetectionVariant.of(config, stream)
        if variant in self.clips:
            return self.clips[variant]
        path = cache_file(self.request.outdir, variant)
        clip = (load_clip(path, self.request.video, config.model, variant, FLOOR)
                if self.request.cache else None)
        if clip is not None:
            self.passes.append(DetectorPass(variant.label(), 0.0, True))
        else:
            self.notify(f"detecting every frame of {self.request.video.name} "
                        f"({variant.label()}) ...")
            try:
                clip = detect_clip(self.request.video, config, stream, FLOOR)
            except LanewatchError as err:
                if not self.passes:
                    raise  # the user's own variant: nothing can be tuned without it
                self.passes.append(DetectorPass(variant.label(), 0.0, False, str(err)))
                self.clips[variant] = None
                return None
            self.passes.append(DetectorPass(variant.label(), clip.detect_s, False))
            if self.request.cache:
                save_clip(path, clip, self.request.video, config.model)
        self.clips[variant] = clip
        return clip


def alias_candidates(evaluation: Evaluation, manual_classes: set[str]) -> dict[str, str]:
    """Model class -> manual class, for every automatic class matched to a manual vehicle of
    another class that the manual count never uses (a class the model mistakes it for)."""
    seen: dict[str, dict[str, int]] = {}
    for pair in evaluation.validation.matching.pairs:
        auto, manual = pair.automatic.class_name, pair.manual.class_name
        if auto != manual and auto not in manual_classes:
            seen.setdefault(auto, {}).setdefault(manual, 0)
            seen[auto][manual] += 1
    return {auto: max(targets, key=targets.get) for auto, targets in sorted(seen.items())}


def run_tune(request: TuneRequest, notify: Callable[[str], None] = lambda _: None,
             on_trial: Callable[[Trial, Evaluation | None], None] | None = None
             ) -> TuneOutcome:
    """Tune `request.config` on the clip (see the module docstring)."""
    started = time.perf_counter()
    config = load_config(request.config)
    stream = config.stream(request.stream_id)
    stream_index = next(i for i, s in enumerate(config.streams) if s.id == stream.id)
    try:
        request.outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LanewatchError(f"cannot create output folder {request.outdir}: "
                             f"{err.strerror}") from None
    manual, warnings = read_manual(request.video, request.manual, request.outdir, config,
                                   stream.id)
    clips = _Clips(request, stream.id, notify)
    clip = clips.get(config)
    names = set(clip.class_names.values())
    manual_classes = list(dict.fromkeys(e.class_name for e in manual))
    unknown = [c for c in manual_classes if c not in names]
    if unknown:
        warnings.append(f"{request.manual}: class(es) {', '.join(unknown)} are not classes of "
                        "the model: those rows can only be missed")

    def scored(candidate: Config, clip: CachedClip, perturb: bool = True) -> Evaluation:
        return evaluate(candidate, stream.id, clip, manual, request.tolerance_s,
                        request.interval_s, perturb)

    # The user's own config first, outside the search: a class name the model does not have
    # fails here with its message, not as "no valid candidate".
    evaluations: dict[tuple, Evaluation] = {(): scored(config, clip)}
    everything = config.model_copy(update={"model": config.model.model_copy(
        update={"classes": None})})
    probe = scored(everything, clip)
    aliases = alias_candidates(probe, set(manual_classes))
    dims = dimensions(config, stream_index, manual_classes, sorted(names), request.quick,
                      aliases)

    def score(changes: dict[str, Any]) -> Score | None:
        key = tuple(sorted(changes.items()))
        if key in evaluations:
            return evaluations[key].score
        candidate = apply(config, dims, changes)
        if candidate is None:
            return None
        candidate_clip = clips.get(candidate)
        if candidate_clip is None:
            return None
        try:
            evaluation = scored(candidate, candidate_clip)
        except LanewatchError as err:  # a class name the model lacks, a region off the frame
            log.info("candidate %s is not usable: %s", changes, err)
            return None
        evaluations[key] = evaluation
        return evaluation.score

    def trial_done(trial: Trial) -> None:
        if on_trial is not None:
            on_trial(trial, evaluations.get(trial.changes))

    search_started = time.perf_counter()
    result = coordinate_descent(dims, user_values(config, dims), score, request.budget,
                                trial_done)
    search_s = time.perf_counter() - search_started
    best_changes = tuple(sorted((n, new) for n, _, new in result.changes))
    best = evaluations[best_changes]
    baseline = evaluations[()]
    best_config = apply(config, dims, dict(best_changes))
    best_clip = clips.get(best_config)
    headroom = cadence_headroom(best_config, stream_index, best.score,
                                lambda c: scored(c, best_clip, False))
    written, kept = _write_config(request, config, dims, result, best_config)
    check_started = time.perf_counter()
    notify(f"checking: a review of {written.name} ...")
    check = check_review(request, written, stream.id, manual, best)
    seconds = {"total": time.perf_counter() - started, "search": search_s,
               "detector": sum(p.seconds for p in clips.passes),
               "evaluations": sum(e.seconds for e in evaluations.values()),
               "check": time.perf_counter() - check_started}
    return TuneOutcome(request, stream.id, dims, result, baseline, best, best_config, written,
                       kept, check, clips.passes, warnings, aliases, headroom, seconds,
                       evaluations)


def cadence_headroom(config: Config, stream_index: int, score: Score,
                     scored: Callable[[Config], Evaluation | None]
                     ) -> list[tuple[int, Score]]:
    """The tuned config at higher cadences (every_nth_frame), up to the first that counts
    worse: how much detector work the same score could save. Reported, never applied (see
    `space.cadence_values`)."""
    stream = config.streams[stream_index]
    out = []
    for n in (v for v in CADENCES if v > stream.detection.every_nth_frame):
        streams = list(config.streams)
        streams[stream_index] = stream.model_copy(update={
            "detection": stream.detection.model_copy(update={"every_nth_frame": n})})
        evaluation = scored(config.model_copy(update={"streams": streams}))
        if evaluation is None:
            break
        out.append((n, evaluation.score))
        if evaluation.score.primary_key < score.primary_key:
            break
    return out


def _write_config(request: TuneRequest, config: Config, dims: list[Dimension],
                  result: SearchResult, best_config: Config) -> tuple[Path, bool]:
    """The tuned YAML in OUTDIR, loaded back to prove it is the config that was scored."""
    by_name = {d.name: d for d in dims}
    changes = {by_name[name].path: new for name, _, new in result.changes}
    try:
        text = request.config.read_text(encoding="utf-8")
    except OSError as err:
        raise LanewatchError(f"cannot read {request.config}: {err.strerror}") from None
    edited: WrittenConfig = rewrite(text, changes)
    rebased = rebase_paths(edited.text, request.config.parent.resolve())
    path = request.outdir / f"{request.config.stem}.tuned.yaml"
    path.write_text(rebased.text, encoding="utf-8")
    loaded = load_config(path)
    for section in ("model", "tracker", "counting"):
        if getattr(loaded, section) != getattr(best_config, section):
            raise TuneMismatch(f"{path}: its {section} section is not the tuned one (a bug in "
                               "tune's config writing; the report's settings are right)")
    if [s.model_copy(update={"source": ""}) for s in loaded.streams] != [
            s.model_copy(update={"source": ""}) for s in best_config.streams]:
        raise TuneMismatch(f"{path}: its streams are not the tuned ones (a bug in tune's "
                           "config writing)")
    return path, edited.comments_kept and rebased.comments_kept


def _key(e: CountEvent) -> tuple:
    return (round(e.time_s, 3), e.lane, e.direction, e.class_name)


def check_review(request: TuneRequest, written: Path, stream_id: str,
                 manual: tuple[CountEvent, ...], best: Evaluation) -> Check:
    """Review the clip with the written config and validate its events (see the module
    docstring, step 5); `raise_on_mismatch` acts on a disagreement, after the report."""
    started = time.perf_counter()
    config = load_config(written)
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"video": False})})
    run_dir = request.outdir / CHECK_DIR
    review_video(request.video, config, run_dir, stream_id, progress=request.progress)
    run = load_run(run_dir)
    validation = score_events(run.events, manual, request.tolerance_s, run.duration_s or 0.0,
                              request.interval_s)
    score = Score.of(validation)
    equal = sorted(map(_key, run.events)) == sorted(map(_key, best.events))
    same = score == dataclasses.replace(best.score, perturbed=None)
    return Check(run_dir, validation, score, equal and same,
                 time.perf_counter() - started)


def raise_on_mismatch(outcome: TuneOutcome) -> None:
    """TuneMismatch when the check's review did not count what the cached evaluation did."""
    check = outcome.check
    if not check.agrees:
        raise TuneMismatch(
            f"the review of {outcome.written} counts {check.score.text()}, the cached "
            f"evaluation {outcome.best.score.text()}: tune's evaluation and the review "
            f"disagree (a bug: please report it with {outcome.request.outdir})")
