"""`lanewatch tune`'s search and tuned config file, without a model: coordinate descent on
synthetic score functions, the choice among equally good values, the candidate configs, and
the YAML rewriting (comments kept, keys inserted, paths made absolute)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from lanewatch.stream.config.loading import parse_config
from lanewatch.stream.tune.config_file import rebase_paths, rewrite
from lanewatch.stream.tune.search import choose, coordinate_descent, plateau_choice
from lanewatch.stream.tune.space import Dimension, apply, cadence_values, dimensions, get

from videos import write_video


@dataclass(frozen=True)
class FakeScore:
    key: tuple


# (case, values, good values, user's value, expected choice)
PLATEAU_CASES = [
    ("middle of the one run", (1, 2, 3, 4, 5), {2, 3, 4}, 5, 3),
    ("the widest run wins", (1, 2, 3, 4, 5, 6, 7), {1, 4, 5, 6}, 7, 5),
    ("equal runs: the one nearer the user's value", (1, 2, 3, 4, 5, 6), {1, 2, 5, 6}, 6, 6),
    ("even run: the middle value nearer the user's", (1, 2, 3, 4, 5), {1, 2, 3, 4}, 5, 3),
    ("even run, user below: the lower middle", (0, 1, 2, 3, 4), {1, 2, 3, 4}, 0, 2),
    ("a single good value", (1, 2, 3), {2}, 1, 2),
]


@pytest.mark.parametrize("values, good, own, expected",
                         [c[1:] for c in PLATEAU_CASES], ids=[c[0] for c in PLATEAU_CASES])
def test_plateau_choice(values, good, own, expected):
    assert plateau_choice(values, good, own) == expected


NUM = Dimension("x", ("model", "confidence"), (0.1, 0.2, 0.3, 0.4, 0.5))
CAT = Dimension("c", ("model", "classes"), ("a", "b", "c"), ordered=False)

# (case, dimension, keys by value, current, user's value, expected)
CHOOSE_CASES = [
    ("a better value replaces the current", NUM,
     {0.1: (0.5,), 0.2: (1.0,), 0.3: (0.5,), 0.4: (0.5,), 0.5: (0.5,)}, 0.5, 0.5, 0.2),
    ("a number held at the edge of the best run moves to its middle", NUM,
     {0.1: (1.0,), 0.2: (1.0,), 0.3: (1.0,), 0.4: (0.9,), 0.5: (0.9,)}, 0.1, 0.5, 0.2),
    ("a category held stays when it is among the best", CAT,
     {"a": (0.5,), "b": (1.0,), "c": (1.0,)}, "c", "a", "c"),
    ("else the user's value when among the best", NUM,
     {0.1: (1.0,), 0.2: (0.9,), 0.3: (0.9,), 0.4: (1.0,), 0.5: (1.0,)}, 0.2, 0.5, 0.5),
    ("else the middle of the widest best run", NUM,
     {0.1: (1.0,), 0.2: (1.0,), 0.3: (1.0,), 0.4: (0.9,), 0.5: (0.5,)}, 0.5, 0.5, 0.2),
    ("invalid values are never chosen", NUM,
     {0.1: None, 0.2: (0.4,), 0.3: (0.6,), 0.4: None, 0.5: (0.5,)}, 0.5, 0.5, 0.3),
    ("nothing valid: the current stays", NUM, {0.1: None, 0.2: None}, 0.5, 0.5, 0.5),
    ("categorical: the first listed of the best", CAT,
     {"a": (0.5,), "b": (1.0,), "c": (1.0,)}, "a", "a", "b"),
    ("the count error breaks an F1 tie", CAT,
     {"a": (1.0, -2), "b": (1.0, -1), "c": (1.0, -3)}, "a", "a", "b"),
]


@pytest.mark.parametrize("dim, keys, current, own, expected",
                         [c[1:] for c in CHOOSE_CASES], ids=[c[0] for c in CHOOSE_CASES])
def test_choose(dim, keys, current, own, expected):
    assert choose(dim, keys, current, own) == expected


A = Dimension("a", ("model", "confidence"), (1, 2, 3, 4, 5))
B = Dimension("b", ("tracker", "new_track_threshold"), (1, 2, 3, 4, 5))
C = Dimension("c", ("tracker", "high_threshold"), (1, 2, 3), ordered=False)


def _exact_when(pred, slope: bool = True):
    """A score function: F1 1 where `pred(values)` holds; elsewhere F1 0.5 with a count
    error growing with a + b (`slope`: lowering either helps a little, as lowering a
    threshold finds some of the missed vehicles) or flat. c = 3 is not a valid config."""
    def score(values):
        full = {"a": 5, "b": 5, "c": 1, **values}
        if full["c"] == 3:
            return None
        if pred(full):
            return FakeScore((1.0, 0))
        return FakeScore((0.5, -(full["a"] + full["b"]) if slope else 0))
    return score


# (case, dims, score function, budget, expected changes, budget spent)
DESCENT_CASES = [
    ("one setting off: the middle of its good values", [A, B],
     _exact_when(lambda v: v["b"] <= 3), 50, {"b": 2}, False),
    ("two settings off, fixed together in a second round", [A, B],
     _exact_when(lambda v: v["a"] <= 3 and v["b"] <= 2), 50, {"a": 2, "b": 2}, False),
    ("nothing helps: nothing changes", [A, B], _exact_when(lambda v: False, slope=False), 50,
     {}, False),
    ("a change that does not matter is not made, an invalid value never", [A, B, C],
     _exact_when(lambda v: v["b"] <= 3), 50, {"b": 2}, False),
    ("the budget stops the search with the best so far", [A, B],
     _exact_when(lambda v: v["b"] <= 3), 3, {"a": 1}, True),
]


@pytest.mark.parametrize("dims, score, budget, expected, spent",
                         [c[1:] for c in DESCENT_CASES], ids=[c[0] for c in DESCENT_CASES])
def test_coordinate_descent(dims, score, budget, expected, spent):
    own = {"a": 5, "b": 5, "c": 1}
    result = coordinate_descent(dims, {d.name: own[d.name] for d in dims}, score, budget)
    assert {name: new for name, _, new in result.changes} == expected
    assert result.budget_exhausted == spent
    assert len(result.trials) <= budget
    assert len({t.changes for t in result.trials}) == len(result.trials)  # never twice
    assert result.trials[0].changes == ()  # the user's config first
    assert result.score.key == max(t.score.key for t in result.trials if t.score is not None)


def test_descent_keeps_a_perfect_config_unchanged():
    result = coordinate_descent([A, B], {"a": 5, "b": 5}, lambda v: FakeScore((1.0, 0)), 100)
    assert result.changes == () and result.rounds == 1
    assert len(result.trials) == 1 + 4 + 4  # the user's, then each other value once


CONFIG = """\
# the user's notes
model:
  path: models/m.xml          # relative to this file
  confidence: 0.6             # too high
  classes:
    - car
    - truck
  iou: 0.7

counting:
  hysteresis: 0.1

streams:
  - id: cam1
    source: ${ASSETS:-../media}/a.mp4
    lanes:
      - name: l1
        line: [[0, 5], [10, 5]]
        direction: in
  - id: cam2
    source: rtsp://camera/stream
    detection:
      every_nth_frame: 4      # a busy box
    lanes:
      - name: l1
        line: [[0, 5], [10, 5]]
"""

# (case, changes, lines that must be in the result, comments kept)
REWRITE_CASES = [
    ("a scalar: its comment kept after the old value", {("model", "confidence"): 0.2},
     ["  confidence: 0.2  # tune: was 0.6; too high"], True),
    ("a block list replaced by a flow list", {("model", "classes"): ("car", "bus", "truck")},
     ["  classes: [car, bus, truck]  # tune: was [car, truck]", "  iou: 0.7"], True),
    ("every class", {("model", "classes"): None}, ["  classes: null  # tune: was [car, truck]"],
     True),
    ("a missing key inserted in its section", {("model", "agnostic_nms"): True},
     ["  agnostic_nms: true  # tune: was unset (the default)"], True),
    ("a missing section appended", {("tracker", "new_track_threshold"): 0.3},
     ["tracker:", "  new_track_threshold: 0.3  # tune: was unset (the default)"], True),
    ("a per-class confidence: the mapping written whole",
     {("model", "class_confidence", "car"): 0.2},
     ["  class_confidence: {car: 0.2}  # tune: was unset (the default)"], True),
    ("the second stream's cadence", {("streams", 1, "detection", "every_nth_frame"): 2},
     ["      every_nth_frame: 2  # tune: was 4; a busy box"], True),
    ("the first stream's missing detection section",
     {("streams", 0, "detection", "region"): "lanes"},
     ["    detection:", "      region: lanes  # tune: was unset (the default)"], True),
]


@pytest.mark.parametrize("changes, lines, kept", [c[1:] for c in REWRITE_CASES],
                         ids=[c[0] for c in REWRITE_CASES])
def test_rewrite_changes_only_the_tuned_lines(changes, lines, kept):
    written = rewrite(CONFIG, changes)
    assert written.comments_kept == kept
    for line in lines:
        assert line in written.text.splitlines()
    assert "# the user's notes" in written.text
    before = [x for x in CONFIG.splitlines() if x.strip()]
    after = written.text.splitlines()
    untouched = [x for x in before if x in after]
    assert len(before) - len(untouched) <= 3  # only the tuned key's own lines changed
    from lanewatch.stream.tune.config_file import apply_to_data
    assert yaml.safe_load(written.text) == apply_to_data(yaml.safe_load(CONFIG), changes)


def test_rewrite_falls_back_to_pyyaml_for_a_flow_style_section():
    text = "model: {path: m.xml, confidence: 0.6}  # flow\nstreams: []\n"
    written = rewrite(text, {("model", "confidence"): 0.2})
    assert not written.comments_kept
    assert yaml.safe_load(written.text)["model"] == {"path": "m.xml", "confidence": 0.2}


def test_rebase_paths_makes_relative_paths_absolute(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.xml").write_text("")
    written = rebase_paths(CONFIG, tmp_path)
    data = yaml.safe_load(written.text)
    assert data["model"]["path"] == str(tmp_path / "models" / "m.xml")
    # the variable stays, only its relative default moves
    assert data["streams"][0]["source"] == f"${{ASSETS:-{(tmp_path / '../media').resolve()}}}/a.mp4"
    assert data["streams"][1]["source"] == "rtsp://camera/stream"  # URLs untouched
    assert written.comments_kept and "# relative to this file" in written.text


def _config():
    return parse_config(yaml.safe_load(CONFIG.replace("${ASSETS:-../media}", "/media")),
                        base_dir=None)


def test_dimensions_values_and_candidates():
    config = _config()
    dims = {d.name: d for d in dimensions(config, 1, ["car", "bus"], ["bus", "car", "truck"])}
    assert 0.6 in dims["model.confidence"].values  # the user's own value is always tried
    assert dims["model.classes"].values[:2] == (("car", "truck"), ("car", "truck", "bus"))
    assert dims["streams(cam2).detection.every_nth_frame"].values == (1, 2, 3, 4)
    assert cadence_values(1) == (1,) and "streams(cam1).detection.every_nth_frame" not in {
        d.name for d in dimensions(config, 0, ["car"], ["car"])}  # cadence 1: nothing lower
    assert dims["model.imgsz"].detector_pass and not dims["model.confidence"].detector_pass
    quick = {d.name for d in dimensions(config, 1, ["car"], ["car"], quick=True)}
    assert "model.imgsz" not in quick and "tracker.new_track_threshold" in quick

    names = list(dims.values())
    tuned = apply(config, names, {"tracker.high_threshold": 0.4, "model.classes": None,
                                  "model.class_confidence.car": 0.3,
                                  "streams(cam2).detection.every_nth_frame": 2})
    assert tuned.tracker.high_threshold == 0.4 and tuned.model.classes is None
    assert tuned.model.class_confidence == {"car": 0.3}
    assert tuned.streams[1].detection.every_nth_frame == 2
    assert get(tuned, ("model", "class_confidence", "bus")) is None
    # a high threshold under the low one is not a config: the candidate is skipped
    assert apply(config, names, {"tracker.high_threshold": 0.05}) is None

    aliased = dimensions(config, 1, ["car"], ["car", "cell phone"],
                         aliases={"cell phone": "car"})
    alias = next(d for d in aliased if d.name == "model.class_aliases.cell phone")
    assert alias.values == (None, "car")
    assert apply(config, aliased, {alias.name: "car"}).model.class_aliases == {
        "cell phone": "car"}


def test_cli_errors_without_traceback(tmp_path, capsys):
    from lanewatch.stream.cli import main

    manual = tmp_path / "manual.csv"
    manual.write_text("time_s,frame,lane,direction,class\n1.0,,nolane,in,car\n")
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("${ASSETS:-../media}", str(tmp_path)))
    code = main(["tune", str(tmp_path / "missing.mp4"), str(manual), "-c", str(config),
                 "-o", str(tmp_path / "out"), "--stream", "cam1"])
    assert code == 2
    assert "video file not found" in capsys.readouterr().err
    code = main(["tune", str(tmp_path / "a.mp4"), str(manual), "-c", str(config),
                 "-o", str(tmp_path / "out"), "--stream", "nosuch"])
    assert code == 2 and "no stream 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a budget must allow one candidate
        main(["tune", "v.mp4", str(manual), "-c", str(config), "-o", "o", "--budget", "1"])
    # the manual count names a lane and a direction the stream does not have: file:line, the
    # lanes there are, before any model is loaded
    write_video(tmp_path / "a.mp4", frames=5, size=(64, 48))
    manual.write_text("time_s,frame,lane,direction,class\n1.0,,nolane,in,car\n"
                      "2.0,,l1,out,car\n")
    code = main(["tune", str(tmp_path / "a.mp4"), str(manual), "-c", str(config),
                 "-o", str(tmp_path / "out"), "--stream", "cam1"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{manual}:2: lane 'nolane' is not a lane of this run (lanes: l1)" in err
    assert f"{manual}:3: direction 'out' is not one of lane l1's (in)" in err


def _probe(pairs):
    """An evaluation whose matching pairs manual and automatic classes as given."""
    from lanewatch.stream.tune.evaluation import Evaluation
    from lanewatch.trackers.evaluation.count_matching import CountEvent, CountMatching, MatchedPair

    matching = CountMatching(1.0, tuple(
        MatchedPair(CountEvent(i, "l1", "in", m), CountEvent(i, "l1", "in", a))
        for i, (m, a) in enumerate(pairs)), (), ())

    @dataclass(frozen=True)
    class Validation:
        matching: CountMatching

    return Evaluation((), Validation(matching), None, 0.0)


# (case, (manual class, automatic class) pairs of a probe keeping every class, expected)
ALIAS_CASES = [
    ("no confusion: no alias", [("car", "car"), ("truck", "truck")], {}),
    ("a class the manual count never uses becomes an alias",
     [("car", "cell phone"), ("car", "car")], {"cell phone": "car"}),
    ("its most frequent manual class wins",
     [("car", "airplane"), ("truck", "airplane"), ("truck", "airplane")],
     {"airplane": "truck"}),
    ("a confusion between two counted classes is not an alias",
     [("car", "truck"), ("truck", "truck")], {}),
]


@pytest.mark.parametrize("pairs, expected", [c[1:] for c in ALIAS_CASES],
                         ids=[c[0] for c in ALIAS_CASES])
def test_alias_candidates(pairs, expected):
    from lanewatch.stream.tune.tuner import alias_candidates

    manual = {m for m, _ in pairs}
    assert alias_candidates(_probe(pairs), manual) == expected
