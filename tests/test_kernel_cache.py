"""The tracker's compiled kernels (issue 18): install.sh compiles them into Numba's cache once;
a run that must compile them after all says so before the wait (and before the progress bar);
a run with the cache in place says nothing and loads them from it.

The cold case compiles for real in a subprocess with NUMBA_CACHE_DIR pointed at an empty folder
(about 20-35 s); the rest replaces warm_up, so the messages' order is tested without a compile.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from lanewatch.stream import cli
from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.stream.pipeline import review
from lanewatch.trackers.bytetrack import kernels
from lanewatch.trackers.detections import Detections

from conftest import CONFIGS, REPO

# One process's view of the kernels: whether cached before, the notice (and how many cache
# files existed when it came: none, it is said before anything compiles), where they came from.
PROBE = """
import json, os, sys
from lanewatch.trackers.bytetrack import kernels
from lanewatch.trackers.bytetrack.warm_up import warm_up

def files():
    return sum(len(names) for _, _, names in os.walk(os.environ["NUMBA_CACHE_DIR"]))

notices = []
def notice():
    notices.append(files())
    print(kernels.COMPILING_MESSAGE, file=sys.stderr, flush=True)

cached_before = kernels.is_cached()
warm_up(on_compile=notice)
use = kernels.cache_use()
print(json.dumps({"cached_before": cached_before, "cached_after": kernels.is_cached(),
                  "files_at_notice": notices, "loaded": use.loaded, "compiled": use.compiled,
                  "cache_dirs": use.cache_dirs}))
"""


def run(args, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=110, cwd=REPO)


@pytest.mark.timeout(120)
def test_compiled_once_then_loaded_from_the_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    check = run(["-m", "lanewatch.trackers.bytetrack.warm_up", "--check"], cache)
    assert check.returncode == 1, check.stdout + check.stderr  # nothing cached: compile due

    cold = run(["-c", PROBE], cache)
    assert cold.returncode == 0, cold.stderr
    first = json.loads(cold.stdout)
    assert not first["cached_before"]
    assert cold.stderr.count(kernels.COMPILING_MESSAGE) == 1
    assert first["files_at_notice"] == [0]  # said before the first kernel compiled
    assert first["compiled"] > 0 and first["cached_after"]
    assert all(d.startswith(str(cache)) for d in first["cache_dirs"])

    warm = run(["-c", PROBE], cache)
    assert warm.returncode == 0, warm.stderr
    second = json.loads(warm.stdout)
    assert kernels.COMPILING_MESSAGE not in warm.stderr  # nothing to say
    assert second["cached_before"] and second["files_at_notice"] == []
    assert second["compiled"] == 0 and second["loaded"] > 0  # cache hits, no misses

    # install.sh's step, a second time: loads, says so, compiles nothing.
    install = run(["-m", "lanewatch.trackers.bytetrack.warm_up"], cache)
    assert install.returncode == 0, install.stderr
    assert kernels.INSTALL_MESSAGE not in install.stdout
    assert "already compiled" in install.stdout
    assert run(["-m", "lanewatch.trackers.bytetrack.warm_up", "--check"], cache).returncode == 0


def test_install_script_compiles_the_kernels():
    script = (REPO / "install.sh").read_text()
    pip = script.index("pip install -e")
    assert script.index("python3 -m lanewatch.trackers.bytetrack.warm_up", pip) > pip


def test_every_kernel_is_known():
    names = {k.py_func.__name__ for k in kernels.kernels()}
    assert {"associate", "mark_duplicates", "iou_matrix", "update", "initiate",
            "_replay_gap"} <= names


class _NoObjects(DetectorDefaults):
    """Stands in for the model: sees nothing, instantly."""

    class_names = {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
    task = "detect"

    def detect(self, image, imgsz=None):
        return Detections.empty(self.class_names)

    def check_input_size(self, imgsz):
        pass


def _compiling_warm_up(on_compile=None):
    """warm_up as on a machine whose kernel cache is gone: announces a compile."""
    if on_compile is not None:
        on_compile()


def _cached_warm_up(on_compile=None):
    """warm_up with the cache in place: loads, announces nothing."""


def _process(monkeypatch, warm_up, highway_video, tmp_path, *extra):
    monkeypatch.setattr(review, "warm_up", warm_up)
    monkeypatch.setattr(review, "create_detector", lambda model: _NoObjects())
    return cli.main(["process", str(highway_video), "-c", str(CONFIGS / "highway.yaml"),
                     "-o", str(tmp_path / "out"), "--no-video", "--max-frames", "3", *extra])


def test_process_says_it_compiles_before_the_progress_bar(monkeypatch, capsys, tmp_path,
                                                          highway_video):
    assert _process(monkeypatch, _compiling_warm_up, highway_video, tmp_path) == 0
    err = capsys.readouterr().err
    notice = err.index(f"lanewatch: {kernels.COMPILING_MESSAGE}")
    bar = err.index("frame")  # tqdm's first draw: "highway:   0%| | 0/3 [..., ?frame/s]"
    assert notice < bar, err


def test_process_says_nothing_when_the_kernels_are_cached(monkeypatch, capsys, tmp_path,
                                                          highway_video):
    assert _process(monkeypatch, _cached_warm_up, highway_video, tmp_path) == 0
    assert "compiling" not in capsys.readouterr().err


def test_quiet_process_only_logs_the_compile(monkeypatch, capsys, caplog, tmp_path,
                                             highway_video):
    with caplog.at_level(logging.INFO, logger="lanewatch.stream.pipeline.review"):
        assert _process(monkeypatch, _compiling_warm_up, highway_video, tmp_path, "-q") == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert kernels.COMPILING_MESSAGE in caplog.text


def test_serve_says_it_compiles_before_the_service_starts(monkeypatch, capsys):
    import lanewatch.trackers.bytetrack.warm_up as loading

    monkeypatch.setattr(loading, "warm_up", _compiling_warm_up)
    cli._load_tracker_kernels()
    assert capsys.readouterr().err == f"lanewatch: {kernels.COMPILING_MESSAGE}\n"
    monkeypatch.setattr(loading, "warm_up", _cached_warm_up)
    cli._load_tracker_kernels()
    assert capsys.readouterr().err == ""


def _slow_compiling_warm_up(on_compile=None):
    """A first run: the kernels compile, and that takes a while."""
    if on_compile is not None:
        on_compile()
    time.sleep(1.5)


def test_a_first_runs_progress_output(monkeypatch, capsys, tmp_path, highway_video):
    """What a user sees on a first run (issue 22: "silent for 40 s", "1/335 [00:41<3:48:24,
    41.03s/frame]"): each start-up step said as it starts, the bar counting from the first
    frame (start-up is not in its rate or ETA), and the start-up and wall time at the end."""
    assert _process(monkeypatch, _slow_compiling_warm_up, highway_video, tmp_path,
                    "--max-frames", "40") == 0
    captured = capsys.readouterr()
    err = captured.err.replace("\r", "\n")
    steps = [err.index("lanewatch: loading model "),
             err.index(f"lanewatch: {kernels.COMPILING_MESSAGE}"),
             err.index("lanewatch: ready in "), err.index("frame/s]")]
    assert steps == sorted(steps), err
    first_bar = next(line for line in err.splitlines() if "/40 [" in line)
    assert "0/40 [00:00<?" in first_bar, first_bar  # 1.5 s of start-up are not in the bar
    ready = float(re.search(r"ready in ([\d.]+) s", err).group(1))
    assert ready >= 1.5
    out = captured.out
    startup = float(re.search(r"after ([\d.]+) s of start-up", out).group(1))
    assert startup == pytest.approx(ready, abs=0.1)
    assert re.search(r"processed 40 frames in [\d.]+ s \([\d.]+ frames/s\)", out), out
    wall = float(re.search(r"wall time ([\d.]+) s", out).group(1))
    assert wall >= startup
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["startup_s"] >= 1.5 and summary["elapsed_s"] < wall
