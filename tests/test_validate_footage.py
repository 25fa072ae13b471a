"""`lanewatch validate` on real reviews of highway.mp4 and pedestrians.mp4 against their hand
counts (tests/data/*_manual.csv, the ground truth of tests/test_review_footage.py)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest

from conftest import REPO
from test_review_footage import HIGHWAY_TRUTH, PEDESTRIAN_TRUTH

pytestmark = pytest.mark.integration

MANUAL = REPO / "tests" / "data" / "highway_manual.csv"
PEDESTRIANS_MANUAL = REPO / "tests" / "data" / "pedestrians_manual.csv"


def validate(run_dir, manual, out, *args):
    exe = shutil.which("lanewatch")
    assert exe, "the `lanewatch` console script is not installed (pip install -e .)"
    return subprocess.run([exe, "validate", str(run_dir), str(manual), "--json",
                           str(out / "v.json"), "--html", str(out / "v.html"), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def own_copy(run_dir, tmp_path):
    """The run's folder without its annotated video: validate writes into report.html, and
    the session's run is shared by other tests."""
    return shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("*.mp4"))


def manual_rows(path):
    return list(csv.DictReader(line for line in path.read_text().splitlines()
                               if not line.startswith("#")))


def test_the_csvs_are_the_hand_counts():
    assert sorted((int(r["frame"]), r["lane"]) for r in manual_rows(MANUAL)) == \
        sorted(HIGHWAY_TRUTH)
    assert sorted((int(r["frame"]), r["lane"], r["direction"])
                  for r in manual_rows(PEDESTRIANS_MANUAL)) == sorted(PEDESTRIAN_TRUTH)
    assert {r["class"] for r in manual_rows(PEDESTRIANS_MANUAL)} == {"person"}


def test_highway_matches_every_hand_counted_vehicle(highway_run, tmp_path):
    run_dir = own_copy(highway_run[0], tmp_path)
    proc = validate(run_dir, MANUAL, tmp_path, "--min-recall", "1", "--min-precision", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    o = report["overall"]
    assert (o["manual"], o["automatic"], o["matched"], o["missed"], o["extra"]) == \
        (11, 11, 11, 0, 0)
    assert report["aicity"]["effectiveness"] == 1.0
    # the pipeline counts once the anchor is past the line: the same frame or a few later
    assert all(0 <= p["time_error_s"] <= 0.5 for p in report["matched"])
    # the review's own report shows the validation, once, however often it is validated
    assert "the report's validation section" in proc.stdout
    assert validate(run_dir, MANUAL, tmp_path).returncode == 0
    page = (run_dir / "report.html").read_text()
    assert page.count('<section id="validation">') == 1
    assert page.index("<h2>Counts</h2>") < page.index("Validation against a manual count")
    assert "11 counted by hand, 11 automatically: 11 matched" in page
    assert page.rstrip().endswith("</section></body></html>")


def test_pedestrians_match_every_hand_counted_person(pedestrians_run, tmp_path):
    run_dir = own_copy(pedestrians_run[0], tmp_path)
    proc = validate(run_dir, PEDESTRIANS_MANUAL, tmp_path, "--min-recall", "1",
                    "--min-precision", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    o = report["overall"]
    assert (o["manual"], o["automatic"], o["matched"], o["missed"], o["extra"]) == (4, 4, 4, 0, 0)
    # slow walkers: the anchor needs a while to get the hysteresis margin past the line
    assert all(0 <= p["time_error_s"] <= 0.5 for p in report["matched"])
    assert "4 counted by hand, 4 automatically: 4 matched" in (run_dir / "report.html").read_text()


def test_a_missed_vehicle_fails_and_is_shown_in_the_video(highway_run, tmp_path):
    run_dir = own_copy(highway_run[0], tmp_path)
    manual = tmp_path / "m.csv"
    manual.write_text(MANUAL.read_text() + "5.500,,lane1,towards,car\n")
    proc = validate(run_dir, manual, tmp_path, "--min-recall", "1")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "missed (counted by hand only): 1" in proc.stdout
    page = (tmp_path / "v.html").read_text()
    assert page.count('data-kind="missed"') == 1
    assert page.count("data:image/jpeg;base64,") == 1  # its thumbnail, from highway.mp4
