"""`lanewatch validate`: matching automatic counts to a manual count, the figures, the CSV
loader's errors and the command's exit codes. Fast: synthetic events, no model, no video."""

from __future__ import annotations

import json
import math

import pytest

from lanewatch.sinks.errors import LanewatchError
from lanewatch.sinks.validation_input import load_manual_counts, load_run
from lanewatch.stream.cli import main
from lanewatch.trackers.evaluation.count_matching import CountEvent, match_counts
from lanewatch.trackers.evaluation.count_metrics import (
    effectiveness,
    validate_counts,
    weighted_rmse,
)

from videos import write_video


def ev(t: float, lane: str = "l1", direction: str = "in", cls: str = "car") -> CountEvent:
    return CountEvent(t, lane, direction, cls)


# (case, manual, automatic, tolerance, expected (matched, confused, missed, extra))
MATCHING_CASES = [
    ("same time", [ev(1.0)], [ev(1.0)], 1.0, (1, 0, 0, 0)),
    ("late within the tolerance", [ev(1.0)], [ev(1.9)], 1.0, (1, 0, 0, 0)),
    ("early within the tolerance", [ev(1.0)], [ev(0.2)], 1.0, (1, 0, 0, 0)),
    ("late past the tolerance", [ev(1.0)], [ev(2.2)], 1.0, (0, 0, 1, 1)),
    ("exactly at the tolerance: inclusive", [ev(1.468)], [ev(2.468)], 1.0, (1, 0, 0, 0)),
    ("a millisecond past the tolerance", [ev(1.468)], [ev(2.469)], 1.0, (0, 0, 1, 1)),
    ("zero tolerance, same time", [ev(3.0)], [ev(3.0)], 0.0, (1, 0, 0, 0)),
    ("missed", [ev(1.0), ev(5.0)], [ev(1.1)], 1.0, (1, 0, 1, 0)),
    ("extra", [ev(1.0)], [ev(1.1), ev(1.3)], 1.0, (1, 0, 0, 1)),
    ("nothing by hand", [], [ev(1.0)], 1.0, (0, 0, 0, 1)),
    ("nothing automatic", [ev(1.0)], [], 1.0, (0, 0, 1, 0)),
    ("wrong class: a confusion, not a miss and an extra",
     [ev(1.0, cls="truck")], [ev(1.2, cls="car")], 1.0, (0, 1, 0, 0)),
    ("wrong direction: a miss and an extra",
     [ev(1.0, direction="in")], [ev(1.0, direction="out")], 1.0, (0, 0, 1, 1)),
    ("wrong lane: a miss and an extra", [ev(1.0, lane="l1")], [ev(1.0, lane="l2")], 1.0,
     (0, 0, 1, 1)),
    ("same classes are paired over closer times",
     [ev(0.0, cls="car"), ev(0.5, cls="truck")], [ev(0.05, cls="truck"), ev(0.55, cls="car")],
     1.0, (2, 0, 0, 0)),
    ("two pairs beat one closer pair (greedy nearest would find one)",
     [ev(0.0), ev(1.0)], [ev(0.6), ev(1.7)], 0.7, (2, 0, 0, 0)),
    ("a pair beats a class agreement",
     [ev(0.0, cls="car"), ev(0.9, cls="truck")], [ev(0.5, cls="truck")], 0.6, (1, 0, 1, 0)),
    ("far apart bursts are matched on their own",
     [ev(t) for t in (1, 1.2, 50, 50.3, 100)], [ev(t) for t in (1.1, 1.3, 50.2, 99.5)], 1.0,
     (4, 0, 1, 0)),
]


@pytest.mark.parametrize("manual, automatic, tolerance, expected",
                         [c[1:] for c in MATCHING_CASES], ids=[c[0] for c in MATCHING_CASES])
def test_matching(manual, automatic, tolerance, expected):
    o = validate_counts(match_counts(manual, automatic, tolerance), duration_s=200).overall
    assert (o.matched, o.confused, o.missed, o.extra) == expected
    assert o.manual == len(manual) == o.matched + o.confused + o.missed
    assert o.automatic == len(automatic) == o.matched + o.confused + o.extra


def test_pairs_keep_the_closest_times_among_equals():
    m = match_counts([ev(1.0), ev(2.0)], [ev(1.1), ev(2.05)], 1.5)
    assert [(p.manual.time_s, p.automatic.time_s) for p in m.pairs] == [(1.0, 1.1), (2.0, 2.05)]
    assert m.pairs[0].time_error_s == pytest.approx(0.1)


def test_per_class_rows_precision_recall_and_confusions():
    manual = [ev(1, cls="car"), ev(3, cls="car"), ev(5, cls="truck"), ev(7, cls="bus")]
    automatic = [ev(1.1, cls="car"), ev(5.2, cls="car"), ev(9, cls="car")]
    v = validate_counts(match_counts(manual, automatic), duration_s=10)
    rows = {r.class_name: r for r in v.rows if r.lane == "l1"}
    car, truck = rows["car"], rows["truck"]
    assert (car.manual, car.automatic, car.matched, car.missed, car.extra) == (2, 3, 1, 1, 1)
    assert (car.precision, car.recall) == (pytest.approx(1 / 3), 0.5)
    assert (truck.matched, truck.confused, truck.recall, truck.precision) == (0, 1, 0.0, 1.0)
    o = v.overall
    assert (o.matched, o.confused, o.missed, o.extra) == (1, 1, 2, 1)
    assert o.f1 == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert ("truck", "car", 1) in v.confusion and ("bus", "(none)", 1) in v.confusion
    assert ("(none)", "car", 1) in v.confusion and ("car", "car", 1) in v.confusion


def test_per_interval_absolute_and_percentage_error():
    manual = [ev(1), ev(5), ev(12)]
    automatic = [ev(1), ev(12), ev(13), ev(19.99)]
    v = validate_counts(match_counts(manual, automatic), duration_s=20, interval_s=10)
    rows = [(r.start_s, r.end_s, r.manual, r.automatic, r.abs_error, r.pct_error)
            for r in v.intervals if r.class_name == "car"]
    assert rows == [(0, 10, 2, 1, 1, 50.0), (10, 20, 1, 3, 2, 200.0)]


def test_interval_with_nothing_by_hand_has_no_percentage():
    v = validate_counts(match_counts([], [ev(3)]), duration_s=5, interval_s=900)
    (row,) = [r for r in v.intervals if r.class_name == "car"]
    assert (row.start_s, row.end_s, row.abs_error, row.pct_error) == (0, 5, 1, None)


def test_weighted_rmse_by_hand():
    # 10 s in 10 segments; by hand at 0.5 s and 1.5 s, automatic only at 0.5 s: the cumulative
    # counts differ by 1 from segment 2 on, so wRMSE^2 = (2 + ... + 10) / 55 = 54 / 55.
    wrmse, nwrmse = weighted_rmse([0.5, 1.5], [0.5], duration_s=10)
    assert wrmse == pytest.approx(math.sqrt(54 / 55))
    assert nwrmse == pytest.approx(1 - math.sqrt(54 / 55) / 2)
    # a late count is cheap: the same miss only in the last segment costs sqrt(10/55)
    assert weighted_rmse([9.5], [], 10)[0] == pytest.approx(math.sqrt(10 / 55))
    assert weighted_rmse([1.0], [1.0], 10) == (0.0, 1.0)
    assert weighted_rmse([1.0], [1, 2, 3, 4], 10)[1] == 0.0  # wRMSE > vc: scored 0


def test_effectiveness_weights_movements_by_their_true_count():
    manual = [ev(0.5), ev(1.5), ev(3.0, lane="l2")]
    v = validate_counts(match_counts(manual, [ev(0.5), ev(3.0, lane="l2")], 0.1), 10)
    by_lane = {r.lane: r for r in v.wrmse}
    assert (by_lane["l1"].manual, by_lane["l2"].nwrmse) == (2, 1.0)
    expected = (2 * (1 - math.sqrt(54 / 55) / 2) + 1 * 1.0) / 3
    assert v.effectiveness == pytest.approx(expected) == effectiveness(v.wrmse)


def write_run(run_dir, events, classes=("car", "truck"), video=None):
    """A synthetic `lanewatch process` output folder: summary.json and events.jsonl."""
    run_dir.mkdir(exist_ok=True)
    summary = {"video": video, "stream": "test", "video_fps": 30.0, "video_duration_s": 60.0,
               "interval_s": 60.0, "total_crossings": len(events),
               "lanes": {"l1": {"total": 0, "by_direction": {"in": 0, "out": 0}},
                         "l2": {"total": 0, "by_direction": {"in": 0}}},
               "classes": {c: 1 for c in classes}, "directions": {"in": 1}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    lines = [{"type": "congestion", "stream": "test", "time_s": 0.5, "frame": 15, "lane": "l1",
              "congested": True, "occupancy": 0.5}]
    lines += [{"type": "crossing", "stream": "test", "time_s": t, "frame": round(t * 30),
               "track_id": i, "class": c, "lane": lane, "direction": d}
              for i, (t, lane, d, c) in enumerate(events)]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir


HEADER = "time_s,frame,lane,direction,class\n"

# (case, CSV text, what the error says: file:line and the problem)
LOADER_ERRORS = [
    ("unknown column", "time_s,lane,direction,class,colour\n1,l1,in,car,red\n",
     ":1: bad header (unknown column(s) colour)"),
    ("missing column", "time_s,lane,class\n1,l1,car\n", ":1: bad header (missing column(s) "
     "direction)"),
    ("time not a number", HEADER + "1.0,,l1,in,car\n1:02,,l1,in,car\n",
     ":3: time_s '1:02' is not a number: write seconds"),
    ("negative time", HEADER + "-2,,l1,in,car\n", ":2: time_s -2 is negative"),
    ("frame not whole", HEADER + "2,3.5,l1,in,car\n", ":2: frame 3.5 is not a whole number"),
    ("unknown lane", HEADER + "# a comment\n\n2,,lane9,in,car\n",
     ":4: lane 'lane9' is not a lane of this run (lanes: l1, l2)"),
    ("unknown direction", HEADER + "2,,l2,out,car\n",
     ":2: direction 'out' is not one of lane l2's (in)"),
    ("empty class", HEADER + "2,,l1,in,\n", ":2: class is empty"),
    ("too many values", HEADER + "2,,l1,in,car,x\n", ":2: 6 values for 5 columns"),
    ("empty file", "", ": empty: the first line must be the header"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in LOADER_ERRORS],
                         ids=[c[0] for c in LOADER_ERRORS])
def test_loader_errors_name_the_line_and_the_fix(tmp_path, text, message):
    run = load_run(write_run(tmp_path / "run", []))
    csv_path = tmp_path / "manual.csv"
    csv_path.write_text(text)
    with pytest.raises(LanewatchError) as err:
        load_manual_counts(csv_path, run)
    assert f"{csv_path}{message}" in str(err.value)
    assert err.value.exit_code == 2


def test_loader_reads_rows_and_warns_of_unknown_classes(tmp_path):
    run = load_run(write_run(tmp_path / "run", [(1.0, "l1", "in", "car")]))
    csv_path = tmp_path / "manual.csv"
    csv_path.write_text("\ufefftime_s,lane,direction,class\n1.5,l1,in,car\n70,l2,in,bus\n")
    manual = load_manual_counts(csv_path, run)
    assert manual.events == (CountEvent(1.5, "l1", "in", "car", None, 2),
                             CountEvent(70.0, "l2", "in", "bus", None, 3))
    assert len(manual.warnings) == 2
    assert "line 3: class 'bus' was never counted" in manual.warnings[0]
    assert "line 3: time 70 s is past the video's end" in manual.warnings[1]
    assert [e.lane for e in run.events] == ["l1"]  # congestion is no count


def test_run_folder_without_summary_is_a_user_error(tmp_path):
    assert main(["validate", str(tmp_path), str(tmp_path / "m.csv")]) == 2


AUTO = [(1.0, "l1", "in", "car"), (5.0, "l1", "out", "car"), (9.0, "l2", "in", "truck"),
        (20.0, "l2", "in", "car")]
MANUAL = HEADER + "0.8,24,l1,in,car\n5.3,,l1,out,car\n9.1,,l2,in,car\n30,,l2,in,car\n"


# (case, extra arguments, exit code): 2 matched + 1 confused of 4 by hand and 4 automatic
CLI_CASES = [
    ("no threshold", [], 0),
    ("recall reached", ["--min-recall", "0.5"], 0),
    ("recall missed", ["--min-recall", "0.9"], 4),
    ("precision missed", ["--min-precision", "0.75"], 4),
    ("f1 reached", ["--min-f1", "0.5"], 0),
    ("interval error missed", ["--max-interval-error-pct", "100"], 4),  # truck: none by hand
    ("bad threshold", ["--min-recall", "95"], 2),
]


@pytest.mark.parametrize("args, code", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_exit_codes(tmp_path, capsys, args, code):
    run_dir = write_run(tmp_path / "run", AUTO)
    (tmp_path / "m.csv").write_text(MANUAL)
    try:
        rc = main(["validate", str(run_dir), str(tmp_path / "m.csv"), *args])
    except SystemExit as exit_:  # argparse rejects a bad value itself
        rc = exit_.code
    assert rc == code
    if code == 2:
        return
    out = capsys.readouterr()
    assert "overall: 4 by hand, 4 automatic: 2 matched, 1 class confusion(s), 1 missed, " \
           "1 extra" in out.out
    report = json.loads((run_dir / "validation.json").read_text())
    assert report["passed"] == (code == 0)
    assert report["overall"]["recall"] == 0.5
    assert [e["time_s"] for e in report["missed"]] == [30.0]
    assert [e["time_s"] for e in report["extra"]] == [20.0]
    assert "no thumbnails" in report["notes"][0]
    page = (run_dir / "validation.html").read_text()
    assert page.count('data-kind="missed"') == 1 and page.count('data-kind="extra"') == 1
    if code == 4:
        assert "below the acceptance threshold" in out.err


def test_cli_writes_where_asked_and_checks_interval_errors(tmp_path):
    run_dir = write_run(tmp_path / "run", AUTO)
    (tmp_path / "m.csv").write_text(MANUAL)
    out_json, out_html = tmp_path / "v.json", tmp_path / "v.html"
    rc = main(["validate", str(run_dir), str(tmp_path / "m.csv"), "--interval-s", "10",
               "--max-interval-error-pct", "50", "--json", str(out_json),
               "--html", str(out_html), "--tolerance-s", "0.5"])
    assert rc == 4  # l2 in car, 20-30 s: 1 automatic, none by hand
    report = json.loads(out_json.read_text())
    assert report["tolerance_s"] == 0.5 and report["interval_s"] == 10
    assert any("l2 in car 20-30 s: 1 counted against 0 by hand" in f
               for f in report["failures"])
    assert out_html.stat().st_size > 0 and not (run_dir / "validation.json").exists()


def test_thumbnails_of_unmatched_events_are_bounded(tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=90, size=(160, 120))  # 3 s at 30/s
    run_dir = write_run(tmp_path / "run", [(0.5, "l1", "in", "car"), (2.5, "l1", "in", "car")],
                        video=str(video))
    (tmp_path / "m.csv").write_text(HEADER + "1.5,,l1,in,car\n")
    rc = main(["validate", str(run_dir), str(tmp_path / "m.csv"), "--thumbnails", "2",
               "--tolerance-s", "0.2"])
    assert rc == 0
    page = (run_dir / "validation.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 2  # of 3 unmatched events
    notes = json.loads((run_dir / "validation.json").read_text())["notes"]
    assert notes == ["thumbnails of the first 2 of 3 unmatched events"]
