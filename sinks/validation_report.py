"""`lanewatch validate`'s outputs that are not HTML: validation.json, the text summary, and
the acceptance thresholds (docs/validation.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lanewatch.trackers.evaluation.count_matching import CountEvent
from lanewatch.trackers.evaluation.count_metrics import (
    AIC_SEGMENTS,
    NO_MATCH,
    CountRow,
    CountValidation,
)

VALIDATION_JSON = "validation.json"
MAX_LISTED = 20  # unmatched events printed on stdout; the JSON and HTML list them all


@dataclass(frozen=True)
class Thresholds:
    """What a run must reach to pass (None: not checked). Ratios are in [0, 1]."""

    min_precision: float | None = None
    min_recall: float | None = None
    min_f1: float | None = None
    max_interval_error_pct: float | None = None  # per (lane, direction, class) and interval

    def failures(self, v: CountValidation) -> list[str]:
        """Why the validation fails the thresholds; empty when it passes."""
        o = v.overall
        out = [f"overall {name} {value:.3f} is below {limit:g}"
               for name, value, limit in (("precision", o.precision, self.min_precision),
                                          ("recall", o.recall, self.min_recall),
                                          ("F1", o.f1, self.min_f1))
               if limit is not None and value < limit - 1e-12]
        if self.max_interval_error_pct is not None:
            for r in v.intervals:
                if r.class_name is None or r.abs_error == 0:
                    continue
                pct = r.pct_error
                if pct is None or pct > self.max_interval_error_pct + 1e-9:
                    shown = "none by hand" if pct is None else f"{pct:.1f}% error"
                    out.append(f"{r.lane} {r.direction} {r.class_name} "
                               f"{r.start_s:g}-{r.end_s:g} s: {r.automatic} counted "
                               f"against {r.manual} by hand ({shown}, limit "
                               f"{self.max_interval_error_pct:g}%)")
        return out


def event_dict(e: CountEvent) -> dict[str, Any]:
    """JSON form of a count event (the CSV or events.jsonl line it came from in `line`)."""
    return {"time_s": round(e.time_s, 3), "frame": e.frame, "lane": e.lane,
            "direction": e.direction, "class": e.class_name, "track_id": e.track_id,
            "line": e.line}


def row_dict(r: CountRow) -> dict[str, Any]:
    d = asdict(r)
    d["class"] = d.pop("class_name")
    d.update(precision=round(r.precision, 4), recall=round(r.recall, 4), f1=round(r.f1, 4))
    return d


def validation_dict(v: CountValidation, *, run_dir: str, manual_csv: str,
                    warnings: tuple[str, ...] = (), thresholds: Thresholds | None = None,
                    notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The content of validation.json."""
    m = v.matching
    failures = thresholds.failures(v) if thresholds else []
    return {
        "run_dir": run_dir, "manual_csv": manual_csv,
        "tolerance_s": m.tolerance_s, "interval_s": v.interval_s,
        "duration_s": round(v.duration_s, 3),
        "overall": row_dict(v.overall),
        "rows": [row_dict(r) for r in v.rows[:-1]],
        "confusion": [{"manual_class": a, "automatic_class": b, "count": n}
                      for a, b, n in v.confusion],
        "intervals": [{"start_s": r.start_s, "end_s": r.end_s, "lane": r.lane,
                       "direction": r.direction, "class": r.class_name, "manual": r.manual,
                       "automatic": r.automatic, "abs_error": r.abs_error,
                       "pct_error": None if r.pct_error is None else round(r.pct_error, 2)}
                      for r in v.intervals],
        "aicity": {"segments": AIC_SEGMENTS, "effectiveness": None if v.effectiveness is None
                   else round(v.effectiveness, 4),
                   "movements": [{"lane": r.lane, "direction": r.direction,
                                  "class": r.class_name, "manual": r.manual,
                                  "automatic": r.automatic, "wrmse": round(r.wrmse, 4),
                                  "nwrmse": round(r.nwrmse, 4)} for r in v.wrmse]},
        "matched": [{"manual": event_dict(p.manual), "automatic": event_dict(p.automatic),
                     "time_error_s": round(p.time_error_s, 3), "same_class": p.same_class}
                    for p in m.pairs],
        "missed": [event_dict(e) for e in m.missed],
        "extra": [event_dict(e) for e in m.extra],
        "warnings": list(warnings), "notes": list(notes),
        "thresholds": asdict(thresholds) if thresholds else None,
        "passed": not failures, "failures": failures,
    }


def _label(value: str | None) -> str:
    return "all" if value is None else (value or "-")


def describe_event(e: CountEvent) -> str:
    """One line for a person: when, where, what, and where it came from."""
    frame = "" if e.frame is None else f" frame {e.frame}"
    origin = f"track {e.track_id}" if e.track_id is not None else f"line {e.line}"
    return (f"{e.time_s:8.2f} s{frame}  {e.lane} {_label(e.direction)} {e.class_name} "
            f"({origin})")


def format_text(v: CountValidation, title: str) -> str:
    """The readable summary printed on stdout."""
    o, m = v.overall, v.matching
    lines = [title, f"tolerance {m.tolerance_s:g} s; {v.duration_s:g} s of video", "",
             f"overall: {o.manual} by hand, {o.automatic} automatic: {o.matched} matched, "
             f"{o.confused} class confusion(s), {o.missed} missed, {o.extra} extra; "
             f"precision {o.precision:.3f}, recall {o.recall:.3f}, F1 {o.f1:.3f}", ""]
    head = ("lane", "direction", "class", "manual", "auto", "matched", "confused", "missed",
            "extra", "precision", "recall")
    table = [head] + [(_label(r.lane), _label(r.direction), _label(r.class_name), r.manual,
                       r.automatic, r.matched, r.confused, r.missed, r.extra,
                       f"{r.precision:.3f}", f"{r.recall:.3f}") for r in v.rows[:-1]]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines += ["  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    confusions = [(a, b, n) for a, b, n in v.confusion if a != b and NO_MATCH not in (a, b)]
    if confusions:
        lines += ["", "class confusions (by hand -> automatic): "
                  + ", ".join(f"{a} -> {b}: {n}" for a, b, n in confusions)]
    worst = max((r for r in v.intervals if r.class_name is not None), default=None,
                key=lambda r: (r.abs_error, r.pct_error or 0.0))
    if worst is not None:
        pct = "" if worst.pct_error is None else f" ({worst.pct_error:.1f}%)"
        lines += ["", f"per {v.interval_s:g} s interval: largest error {worst.abs_error}{pct}"
                  f" in {worst.lane} {_label(worst.direction)} {worst.class_name}, "
                  f"{worst.start_s:g}-{worst.end_s:g} s"]
    if v.effectiveness is not None:
        lines += [f"AI City Challenge effectiveness (count-weighted nwRMSE of cumulative "
                  f"counts, {AIC_SEGMENTS} segments): {v.effectiveness:.3f}"]
    for name, events in (("missed (counted by hand only)", m.missed),
                         ("extra (counted automatically only)", m.extra)):
        if events:
            lines += ["", f"{name}: {len(events)}"]
            lines += ["  " + describe_event(e) for e in events[:MAX_LISTED]]
            if len(events) > MAX_LISTED:
                lines.append(f"  ... {len(events) - MAX_LISTED} more in the JSON and HTML")
    return "\n".join(lines)
