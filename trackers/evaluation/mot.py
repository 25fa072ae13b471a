"""MOTChallenge data and CLEAR/identity metrics, for measuring trackers on public benchmarks.

Loads sequences in the MOTChallenge layout (`seqinfo.ini`, `det/det.txt`, `gt/gt.txt`) and
scores tracker output with py-motmetrics (IoU distance, matched at IoU >= 0.5; ground-truth rows
whose flag column is 0 are ignored, as the MOT15 evaluation does).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MotSequence:
    """One benchmark sequence: detections and ground truth per frame (1-based frames)."""

    name: str
    frame_rate: float
    length: int
    detections: dict[int, np.ndarray]  # frame -> (N, 5) x1 y1 x2 y2 score
    ground_truth: dict[int, tuple[np.ndarray, np.ndarray]]  # frame -> (ids, (M, 4) xyxy)


def _read_rows(path: Path) -> np.ndarray:
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    return rows


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    if len(rows) == 0:
        return out
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    frames, starts = np.unique(rows[:, 0].astype(int), return_index=True)
    for frame, chunk in zip(frames, np.split(rows, starts[1:])):
        out[int(frame)] = chunk
    return out


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:4]])


def load_sequence(folder: Path) -> MotSequence:
    """Read one MOTChallenge sequence folder."""
    info = configparser.ConfigParser()
    if not info.read(folder / "seqinfo.ini"):
        raise FileNotFoundError(f"{folder}: no seqinfo.ini (not a MOTChallenge sequence)")
    seq = info["Sequence"]
    dets = {f: np.hstack([_xywh_to_xyxy(r[:, 2:6]), r[:, 6:7]])
            for f, r in _by_frame(_read_rows(folder / "det" / "det.txt")).items()}
    gt_rows = _read_rows(folder / "gt" / "gt.txt")
    gt_rows = gt_rows[gt_rows[:, 6] != 0]  # flag 0: ignored by the benchmark
    gt = {f: (r[:, 1].astype(int), _xywh_to_xyxy(r[:, 2:6]))
          for f, r in _by_frame(gt_rows).items()}
    return MotSequence(seq.get("name", folder.name), float(seq.get("frameRate", 30)),
                       int(seq.get("seqLength", max(dets, default=0))), dets, gt)


def load_benchmark(root: Path) -> list[MotSequence]:
    """Every sequence folder under `root`, sorted by name."""
    folders = sorted(p for p in Path(root).iterdir() if (p / "seqinfo.ini").exists())
    if not folders:
        raise FileNotFoundError(f"no MOTChallenge sequences under {root}")
    return [load_sequence(p) for p in folders]


@dataclass(frozen=True)
class MotScores:
    """Overall scores across sequences (percentages, as MOTChallenge reports them)."""

    mota: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    hota: float | None = None


def evaluate(sequences: list[MotSequence],
             results: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]) -> MotScores:
    """Score tracker output {sequence: {frame: (ids, (K, 4) xyxy)}} with py-motmetrics."""
    import motmetrics as mm

    accumulators, names = [], []
    empty = (np.zeros(0, int), np.zeros((0, 4)))
    for seq in sequences:
        acc = mm.MOTAccumulator(auto_id=True)
        out = results.get(seq.name, {})
        for frame in range(1, seq.length + 1):
            gt_ids, gt_boxes = seq.ground_truth.get(frame, empty)
            tr_ids, tr_boxes = out.get(frame, empty)
            dist = iou_distance(gt_boxes, np.asarray(tr_boxes, float).reshape(-1, 4))
            acc.update(gt_ids.tolist(), np.asarray(tr_ids).tolist(), dist)
        accumulators.append(acc)
        names.append(seq.name)
    mh = mm.metrics.create()
    summary = mh.compute_many(accumulators, names=names, generate_overall=True,
                              metrics=["mota", "idf1", "num_switches", "num_false_positives",
                                       "num_misses"])
    overall = summary.loc["OVERALL"]
    return MotScores(float(overall["mota"]) * 100, float(overall["idf1"]) * 100,
                     int(overall["num_switches"]), int(overall["num_false_positives"]),
                     int(overall["num_misses"]))


def iou_distance(gt: np.ndarray, hyp: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """1 - IoU, NaN (no match allowed) where IoU < min_iou; what motmetrics' iou_matrix
    computes, written here because that helper does not run on NumPy 2."""
    from lanewatch.trackers.bytetrack.association import iou_matrix

    iou = iou_matrix(np.ascontiguousarray(gt, float), np.ascontiguousarray(hyp, float))
    return np.where(iou >= min_iou, 1.0 - iou, np.nan)
