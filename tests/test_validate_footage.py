"""`lanewatch validate` on a real review of highway.mp4 against its hand count."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest

from conftest import REPO
from test_review_footage import HIGHWAY_TRUTH

pytestmark = pytest.mark.integration

MANUAL = REPO / "tests" / "data" / "highway_manual.csv"


def validate(run_dir, manual, out, *args):
    exe = shutil.which("lanewatch")
    assert exe, "the `lanewatch` console script is not installed (pip install -e .)"
    return subprocess.run([exe, "validate", str(run_dir), str(manual), "--json",
                           str(out / "v.json"), "--html", str(out / "v.html"), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_the_csv_is_the_hand_count():
    rows = list(csv.DictReader(line for line in MANUAL.read_text().splitlines()
                               if not line.startswith("#")))
    assert sorted((int(r["frame"]), r["lane"]) for r in rows) == sorted(HIGHWAY_TRUTH)


def test_highway_matches_every_hand_counted_vehicle(highway_run, tmp_path):
    run_dir, _ = highway_run
    proc = validate(run_dir, MANUAL, tmp_path, "--min-recall", "1", "--min-precision", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    o = report["overall"]
    assert (o["manual"], o["automatic"], o["matched"], o["missed"], o["extra"]) == \
        (11, 11, 11, 0, 0)
    assert report["aicity"]["effectiveness"] == 1.0
    # the pipeline counts once the anchor is past the line: the same frame or a few later
    assert all(0 <= p["time_error_s"] <= 0.5 for p in report["matched"])


def test_a_missed_vehicle_fails_and_is_shown_in_the_video(highway_run, tmp_path):
    run_dir, _ = highway_run
    manual = tmp_path / "m.csv"
    manual.write_text(MANUAL.read_text() + "5.500,,lane1,towards,car\n")
    proc = validate(run_dir, manual, tmp_path, "--min-recall", "1")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "missed (counted by hand only): 1" in proc.stdout
    page = (tmp_path / "v.html").read_text()
    assert page.count('data-kind="missed"') == 1
    assert page.count("data:image/jpeg;base64,") == 1  # its thumbnail, from highway.mp4
