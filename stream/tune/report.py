"""`tune`'s report: the text on stdout, tune.md (tables) and tune.json (everything).

Each shows the settings changed (old -> new), the score before and after (precision, recall,
F1, count error per lane and direction), the real review's check of the tuned config, every
candidate tried with its score, the time spent and the detector passes made against the
candidates evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lanewatch.stream.tune.config_file import yaml_value
from lanewatch.stream.tune.evaluation import Score
from lanewatch.stream.tune.tuner import TuneOutcome

TUNE_JSON = "tune.json"
TUNE_MD = "tune.md"


def _value(value: Any) -> str:
    return yaml_value(value)


def _score_dict(score: Score) -> dict[str, Any]:
    return {"precision": round(score.precision, 4), "recall": round(score.recall, 4),
            "f1": round(score.f1, 4), "matched": score.matched, "manual": score.manual,
            "automatic": score.automatic, "count_error": score.count_error,
            "lane_errors": [{"lane": lane, "direction": d, "automatic_minus_manual": e}
                            for lane, d, e in score.lane_errors],
            **({} if score.perturbed is None else
               {"one_more_frame_skipped": _score_dict(score.perturbed)})}


def _changes_text(changes) -> str:
    return ", ".join(f"{n}={_value(v)}" for n, v in changes) or "(your config)"


def tune_dict(o: TuneOutcome) -> dict[str, Any]:
    """tune.json."""
    r = o.request
    check = o.check
    return {
        "video": str(r.video), "manual_csv": str(r.manual), "config": str(r.config),
        "stream": o.stream_id, "tuned_config": str(o.written),
        "comments_kept": o.comments_kept, "tolerance_s": r.tolerance_s, "quick": r.quick,
        "budget": r.budget, "budget_exhausted": o.search.budget_exhausted,
        "rounds": o.search.rounds,
        "changes": [{"setting": n, "old": old, "new": new} for n, old, new in o.search.changes],
        "before": _score_dict(o.baseline.score), "after": _score_dict(o.best.score),
        "check": {
            "run_dir": str(check.run_dir), "agrees": check.agrees,
            "score": _score_dict(check.score), "seconds": round(check.seconds, 2)},
        "searched": [{"setting": d.name, "values": list(d.values),
                      "detector_pass": d.detector_pass} for d in o.dims],
        "alias_candidates": o.aliases,
        "cadence_headroom": [{"every_nth_frame": n, "score": _score_dict(s)}
                             for n, s in o.headroom],
        "candidates": [
            {"changes": dict(t.changes), "searching": t.dimension,
             "score": None if t.score is None else _score_dict(t.score)}
            for t in o.search.trials],
        "detector_passes": [{"variant": p.variant, "seconds": round(p.seconds, 2),
                             "from_file": p.from_file, "error": p.error} for p in o.passes],
        "candidates_evaluated": len(o.evaluations),
        "seconds": {k: round(v, 2) for k, v in o.seconds.items()},
        "warnings": o.warnings,
    }


def _lane_rows(before: Score, after: Score) -> list[tuple[str, int, int]]:
    old = {(lane, d): e for lane, d, e in before.lane_errors}
    new = {(lane, d): e for lane, d, e in after.lane_errors}
    return [(f"{lane} {d}", old.get((lane, d), 0), new.get((lane, d), 0))
            for lane, d in sorted(old.keys() | new.keys())]


def headroom_lines(o: TuneOutcome) -> list[str]:
    """What the cadence headroom says: how much detector work the same score could save, or
    that the tuned config is near an edge (one more skipped frame already loses counts)."""
    if not o.headroom:
        return []
    best = o.best.score.primary_key
    kept = [n for n, s in o.headroom if s.primary_key >= best]
    if kept:
        return [f"cadence: the tuned config counts the same up to every_nth_frame {kept[-1]} "
                f"(not applied: detector work / {kept[-1]} for the same score on this clip)"]
    n, score = o.headroom[0]
    return [f"note: at every_nth_frame {n} the tuned config already counts worse "
            f"({score.text()}): it is near an edge on this clip; a longer clip (more "
            "vehicles) would tune it more reliably"]


def format_text(o: TuneOutcome) -> str:
    """The summary printed on stdout."""
    b, a = o.baseline.score, o.best.score
    lines = [f"tune: {o.request.video.name}, stream {o.stream_id}, against {o.request.manual}",
             f"  before: {b.text()}", f"  after:  {a.text()}"]
    if o.search.changes:
        lines.append("changed:")
        lines += [f"  {n}: {_value(old)} -> {_value(new)}" for n, old, new in o.search.changes]
    else:
        lines.append("changed: nothing (no candidate counted better than your config, or "
                     "with a wider margin)")
    lanes = [row for row in _lane_rows(b, a) if row[1] or row[2]]
    if lanes:
        lines.append("count error by lane (automatic - manual), before -> after:")
        lines += [f"  {name}: {old:+d} -> {new:+d}" for name, old, new in lanes]
    lines += headroom_lines(o)
    lines.append(f"check (a real review of the tuned config, validated): {o.check.score.text()}"
                 + ("" if o.check.agrees else "  DISAGREES with the cached evaluation"))
    made = [p for p in o.passes if not p.from_file and p.error is None]
    lines.append(
        f"{len(o.evaluations)} candidates evaluated from {len(o.passes)} detector pass(es) "
        f"({len(made)} run, {len(o.passes) - len(made)} from the cache file or failed); "
        f"{o.search.rounds} round(s)"
        + ("; budget spent (raise --budget to search further)"
           if o.search.budget_exhausted else ""))
    s = o.seconds
    lines.append(f"time: {s.get('total', 0):.1f} s (detector {s.get('detector', 0):.1f} s, "
                 f"candidates {s.get('evaluations', 0):.1f} s, check {s.get('check', 0):.1f} s)")
    lines.append(f"tuned config: {o.written}"
                 + ("" if o.comments_kept else " (written by PyYAML: your comments are lost)"))
    lines += [f"warning: {w}" for w in o.warnings]
    return "\n".join(lines)


def format_markdown(o: TuneOutcome) -> str:
    """tune.md: the tables."""
    b, a = o.baseline.score, o.best.score
    out = [f"# lanewatch tune: {o.request.video.name} (stream {o.stream_id})", "",
           f"Manual count: `{o.request.manual}`; config: `{o.request.config}`; "
           f"tuned config: `{o.written}`.", "", "## Changed settings", "",
           "| setting | old | new |", "|---|---|---|"]
    out += [f"| `{n}` | {_value(old)} | {_value(new)} |" for n, old, new in o.search.changes]
    if not o.search.changes:
        out.append("| (none) | | |")
    out += ["", "## Score", "", "| | precision | recall | F1 | matched | counted | "
            "count error |", "|---|---|---|---|---|---|---|"]
    rows = [("before", b), ("after", a)]
    rows.append(("check (review)", o.check.score))
    out += [f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
            f"{s.matched}/{s.manual} | {s.automatic} | {s.count_error} |" for name, s in rows]
    out += ["", "Count error by lane and direction (automatic - manual):", "",
            "| lane | before | after |", "|---|---|---|"]
    out += [f"| {name} | {old:+d} | {new:+d} |" for name, old, new in _lane_rows(b, a)]
    out += ["", "## Candidates tried", "",
            "Ranked by F1, then count error, then the same with one more frame skipped between "
            "detections (a margin).", "",
            "| # | searching | changes from your config | F1 | matched | counted | count error "
            "| F1, one more frame skipped |", "|---|---|---|---|---|---|---|---|"]
    for i, t in enumerate(o.search.trials, start=1):
        s = t.score
        figures = ("invalid | | | |" if s is None else
                   f"{s.f1:.3f} | {s.matched}/{s.manual} | {s.automatic} | {s.count_error} | "
                   + ("" if s.perturbed is None else f"{s.perturbed.f1:.3f}"))
        out.append(f"| {i} | {t.dimension or '-'} | {_changes_text(t.changes)} | {figures} |")
    if o.headroom:
        out += ["", "## Cadence headroom (not applied)", "", *headroom_lines(o), "",
                "The tuned config with the model on fewer frames, up to the first that counts "
                "worse:", "", "| every_nth_frame | F1 | matched | counted |", "|---|---|---|---|"]
        out += [f"| {n} | {s.f1:.3f} | {s.matched}/{s.manual} | {s.automatic} |"
                for n, s in o.headroom]
    sec = o.seconds
    out += ["", "## Cost", "",
            f"{len(o.evaluations)} candidates evaluated, {len(o.passes)} detector pass(es):", ""]
    out += [f"- {p.variant}: " + (f"failed: {p.error}" if p.error else
                                  "from the cache file" if p.from_file else
                                  f"{p.seconds:.1f} s") for p in o.passes]
    out += ["", f"Total {sec.get('total', 0):.1f} s: detector {sec.get('detector', 0):.1f} s, "
            f"candidates {sec.get('evaluations', 0):.1f} s, check {sec.get('check', 0):.1f} s."]
    if o.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in o.warnings]
    return "\n".join(out) + "\n"


def write_reports(o: TuneOutcome) -> tuple[Path, Path]:
    """tune.json and tune.md in the output folder."""
    json_path = o.request.outdir / TUNE_JSON
    md_path = o.request.outdir / TUNE_MD
    json_path.write_text(json.dumps(tune_dict(o), indent=2, default=list) + "\n",
                         encoding="utf-8")
    md_path.write_text(format_markdown(o), encoding="utf-8")
    return json_path, md_path
