"""`lanewatch count`, the server side: frames by index exactly as `process` numbers and times
them, the board's keys, the CSV it saves, its errors and its clean exit. The page itself is
driven in Chromium in test_manual_count_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from lanewatch.sinks.errors import ConfigError, LanewatchError, SourceError
from lanewatch.sinks.manual_count_csv import ManualEntry, manual_count_csv
from lanewatch.sinks.validation_input import ReviewRun, load_manual_counts
from lanewatch.stream.cli import main
from lanewatch.stream.serve.count_app import CountApp, _static_dir
from lanewatch.stream.serve.manual_count import CountSession, class_keys, lane_keys
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.stream.sources.frame_reader import FrameReader
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes

from conftest import CONFIGS, REPO

HIGHWAY_CONFIG = CONFIGS / "highway.yaml"


READER_FRAMES = (0, 167, 334, 100, 101, 102, 103, 90, 89, 88, 0)
SERVED_FRAMES = (0, 200, 334, 321, 120, 121, 122, 60, 59)  # each with its successor, but 334


@pytest.fixture(scope="module")
def reference(highway_video):
    """The frames of highway.mp4 the tests look at, decoded in order by PyAV (BGR; None for
    the others: all 335 would take 900 MB), and FileSource's times of all."""
    wanted = {*READER_FRAMES, *SERVED_FRAMES, *(n + 1 for n in SERVED_FRAMES), 201, 202}
    with av.open(str(highway_video)) as c:
        images = [f.to_ndarray(format="bgr24") if n in wanted else None
                  for n, f in enumerate(c.decode(video=0))]
    with FileSource(highway_video) as source:
        times = [f.pts_s for f in source.frames()]
    return images, times


def test_frame_reader_gives_frame_n_in_any_order(highway_video, reference):
    images, times = reference
    reader = FrameReader(highway_video)
    assert len(reader) == len(images) == 335
    # first, a seek into the middle, the last, a forward run, a step back across a keyframe
    # (90 frames a group of pictures), the first again
    for n in READER_FRAMES:
        frame = reader.read(n)
        assert frame.index == n
        assert np.array_equal(frame.image, images[n]), n
        assert frame.time_s == times[n]
    with pytest.raises(IndexError):
        reader.read(335)
    reader.close()
    reader.close()  # twice: harmless


def test_every_frame_time_is_the_one_process_uses(highway_video, reference):
    _, times = reference
    reader = FrameReader(highway_video)
    assert [reader.table.time_s(n) for n in range(len(reader))] == times
    reader.close()


def test_times_agree_with_the_reviews_events(highway_video, highway_run):
    out, _ = highway_run
    session = CountSession(highway_video, HIGHWAY_CONFIG)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    crossings = [e for e in events if e["type"] == "crossing"]
    assert len(crossings) == 11
    for e in crossings:
        assert float(session.times[e["frame"]]) == pytest.approx(e["time_s"], abs=1e-9), e
    session.close()


@pytest.mark.parametrize("suffix, codec", [(".avi", "mpeg4"), (".mkv", "libx264"),
                                           (".h264", "libx264")])
def test_other_containers_and_codecs_are_frame_exact(tmp_path, suffix, codec):
    """Frames by index on files other than MP4/H.264: AVI with MPEG-4 part 2 (B-frames off),
    Matroska with H.264 and B-frames, keyframes every 12 frames, and a raw H.264 stream (no
    timestamps at all: frames counted, times index / fps, as FileSource gives them)."""
    path = tmp_path / f"clip{suffix}"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.gop_size = 12
        for n in range(50):
            image = np.full((96, 160, 3), 40, np.uint8)
            image[:, (n * 3) % 160:(n * 3) % 160 + 8] = 250  # a bar that moves: frames differ
            image[:8, :8] = rng.integers(0, 255, (8, 8, 3))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as c:
        images = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    with FileSource(path) as source:
        times = [f.pts_s for f in source.frames()]
    reader = FrameReader(path)
    assert len(reader) == len(images) == 50
    for n in (49, 0, 25, 26, 11, 12, 13, 5, 37):
        frame = reader.read(n)
        assert np.array_equal(frame.image, images[n]), n
        assert frame.time_s == pytest.approx(times[n], abs=1e-9), n
    reader.close()


def test_a_file_cut_inside_an_open_gop_numbers_frames_as_process(tmp_path):
    """A clip cut at a keyframe of an open group of pictures starts with B-frames that need
    the frame before the cut: the decoder drops them and FileSource never counts them, so
    frame 0 is the first frame decoded, in `count` as in `process`."""
    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    with av.open(str(whole), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={
            "x264-params": "open-gop=1:keyint=20:min-keyint=20:bframes=3:b-adapt=0:scenecut=0"})
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for n in range(60):
            image = np.full((96, 160, 3), 40, np.uint8)
            image[:, (n * 3) % 150:(n * 3) % 150 + 8] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(whole)) as source, av.open(str(cut), "w") as out:
        video = source.streams.video[0]
        copy = out.add_stream_from_template(video)
        keyframes = 0
        for packet in source.demux(video):
            keyframes += bool(packet.size and packet.is_keyframe)
            if packet.size and keyframes >= 2:  # from the second keyframe on
                packet.stream = copy
                out.mux(packet)
    with av.open(str(cut)) as c:
        images = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    with FileSource(cut) as source:
        times = [f.pts_s for f in source.frames()]
    reader = FrameReader(cut)
    assert len(reader) == len(images) == len(times) == 40
    for n in (1, 0, 39, 20, 19, 2):
        frame = reader.read(n)
        assert np.array_equal(frame.image, images[n]), n
        assert frame.time_s == times[n]
    reader.close()


def _get(session: CountSession, requests):
    """Run `requests(client)` against the app of `session` (aiohttp's test server)."""
    async def run():
        count = CountApp(session, _static_dir())
        async with TestClient(TestServer(count.app())) as client:
            return await requests(client)
    return asyncio.run(run())


def _errors(jpeg: bytes, images, n):
    """Mean error of a served JPEG against frame n overall, and against frames n and n+1
    where those two differ (highway.mp4 repeats every 6th frame and freezes from 322 on:
    frames whose successor is a copy are not asked for with a neighbour)."""
    served = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    overall = np.abs(served - images[n]).mean()
    if n + 1 == len(images):
        return overall, None, None
    moving = np.abs(images[n].astype(int) - images[n + 1]).max(axis=2) > 40
    assert moving.sum() > 500, "pick frames with motion"
    return (overall, np.abs(served - images[n])[moving].mean(),
            np.abs(served - images[n + 1])[moving].mean())


def test_served_jpegs_are_frame_n_and_not_its_neighbour(highway_video, reference):
    images, times = reference
    session = CountSession(highway_video, HIGHWAY_CONFIG)

    async def requests(client):
        meta = await (await client.get("/api/recording")).json()
        got = {}
        for n in SERVED_FRAMES:  # seeks, the last, in order, back
            r = await client.get(meta["frame_url"].replace("{n}", str(n)))
            assert r.status == 200 and r.content_type == "image/jpeg"
            assert r.headers["X-Frame-Index"] == str(n)
            got[n] = (await r.read(), float(r.headers["X-Frame-Time"]))
        # Half size for fast playback: the same frame, a quarter of the pixels.
        r = await client.get(meta["frame_url"].replace("{n}", "201") + "&size=reduced")
        assert r.headers["X-Frame-Reduced"] == "1"
        return meta, got, await r.read()

    meta, got, reduced = _get(session, requests)
    assert meta["frame_count"] == 335 and meta["width"] == 1280 and meta["height"] == 720
    assert meta["times"][41] == "1.368" and len(meta["times"]) == 335
    assert [k["key"] for k in meta["keys"]] == ["1", "2", "3", "4"]
    assert [c["key"] for c in meta["classes"]] == ["c", "m", "b", "t"]
    for n, (jpeg, time_s) in got.items():
        assert time_s == pytest.approx(times[n], abs=1e-6)
        overall, same, neighbour = _errors(jpeg, images, n)
        assert overall < 3, (n, overall)  # JPEG's loss only
        assert same is None or (same < 6 and neighbour > 3 * same), (n, same, neighbour)
    small = cv2.imdecode(np.frombuffer(reduced, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert small.shape == (360, 640, 3)
    for n, bound in ((201, 4), (202, None)):
        error = np.abs(small - cv2.resize(images[n], (640, 360), interpolation=cv2.INTER_AREA))
        if bound:
            assert error.mean() < bound
        else:  # the next frame is clearly further off where things move
            assert error.mean() > np.abs(small - cv2.resize(images[201], (640, 360),
                                         interpolation=cv2.INTER_AREA)).mean()


def test_api_errors_are_clear(highway_video, tmp_path):
    session = CountSession(highway_video, HIGHWAY_CONFIG, output=tmp_path / "m.csv")
    good = {"entries": [{"frame": 41, "lane": "lane3", "direction": "towards", "class": "car"}]}

    async def requests(client):
        answers = []
        for path in ("/api/recording/frames/335.jpg", "/api/recording/frames/-1.jpg",
                     "/api/recording/frames/abc.jpg", "/api/recording/frames/7.png"):
            r = await client.get(path)
            answers.append((r.status, (await r.json())["message"]))
        for body, headers in [
            ({"entries": [{**good["entries"][0], "lane": "lane9"}]}, {}),
            ({"entries": [{**good["entries"][0], "frame": 400}]}, {}),
            ({"entries": [{**good["entries"][0], "class": "tram"}]}, {}),
            ({"rows": []}, {}),
            (good, {"Origin": "http://elsewhere.example"}),
        ]:
            r = await client.post("/api/manual-count", json=body, headers=headers)
            answers.append((r.status, (await r.json())["message"]))
        for path, headers in [("/api/recording/frames/1.jpg?size=huge", {}),
                              ("/api/recording", {"Host": "rebound.example:8765"})]:
            r = await client.get(path, headers=headers)
            answers.append((r.status, (await r.json())["message"]))
        r = await client.post("/api/manual-count", data="x", headers={"Content-Type": "text/plain"})
        answers.append((r.status, (await r.json())["message"]))
        r = await client.post("/api/manual-count", json=good)
        answers.append((r.status, await r.json()))
        return answers

    answers = _get(session, requests)
    expected = [(404, "frame 335 is past the end: the video has 335 frames (0..334)"),
                (404, "not a frame"), (404, "not a frame"), (404, "not a frame"),
                (400, "'lane9' 'towards' is not a counted lane"),
                (400, "frame 400 is not a frame of the video (0..334)"),
                (400, "class 'tram' is not one of bus, car, motorcycle, truck"),
                (400, 'expected {"entries"'),
                (403, "only this page"), (400, "size='huge': use full or reduced"),
                (421, "answers to 127.0.0.1 or localhost, not rebound.example:8765"),
                (415, "takes JSON")]
    for (status, message), (want_status, want) in zip(answers[:-1], expected, strict=True):
        assert status == want_status and want in message, (status, message)
    assert answers[-1] == (200, {"saved": str(tmp_path / "m.csv"), "rows": 1})
    assert (tmp_path / "m.csv").read_text().splitlines()[-2:] == [
        "time_s,frame,lane,direction,class", "1.368,41,lane3,towards,car"]


def test_saving_without_output_says_how(highway_video):
    session = CountSession(highway_video, HIGHWAY_CONFIG)

    async def requests(client):
        r = await client.post("/api/manual-count", json={"entries": []})
        return r.status, (await r.json())["message"]

    status, message = _get(session, requests)
    assert status == 400 and "--output" in message


def _config_with(tmp_path: Path, **stream_updates) -> Path:
    config = yaml.safe_load(HIGHWAY_CONFIG.read_text())
    config["model"]["path"] = "model"  # never loaded by `count`
    config["streams"][0].update(stream_updates)
    config["streams"][0] = {k: v for k, v in config["streams"][0].items() if v is not None}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


SESSION_ERRORS = [
    ("missing video", "missing.mp4", None, {}, SourceError, "video file not found"),
    ("not a video", "text.mp4", None, {}, SourceError, "as video"),
    ("unknown stream", None, "north", {}, ConfigError, "no stream 'north' in the config "
     "(streams: highway)"),
    ("no counting line", None, None,
     {"lanes": [{"name": "zone", "polygon": [[0, 0], [100, 0], [100, 100]]}]}, ConfigError,
     "has no lane with a counting line"),
    ("lanes off the frame", None, None,
     {"lanes": [{"name": "far", "line": [[0, 10], [5000, 10]]}]}, ConfigError,
     "outside the 1280x720 frame"),
]


@pytest.mark.parametrize("video, stream, updates, error, message",
                         [c[1:] for c in SESSION_ERRORS], ids=[c[0] for c in SESSION_ERRORS])
def test_session_errors_name_the_fix(tmp_path, highway_video, video, stream, updates, error,
                                     message):
    (tmp_path / "text.mp4").write_text("not a video\n")
    path = highway_video if video is None else tmp_path / video
    with pytest.raises(error, match=re.escape(message)):
        CountSession(path, _config_with(tmp_path, **updates), stream)


def test_normalized_lanes_are_sent_in_the_videos_pixels(tmp_path, highway_video):
    config = _config_with(tmp_path, coordinates="normalized", calibration=None, lanes=[
        {"name": "a", "line": [[0.25, 0.5], [0.5, 0.5]], "direction": "both"},
        {"name": "zone", "polygon": [[0, 0], [0.5, 0], [0.5, 0.25]]}])
    session = CountSession(highway_video, config)
    lanes = session.metadata("")["lanes"]
    assert lanes[0]["line"] == [[320.0, 360.0], [640.0, 360.0]]
    assert lanes[1]["polygon"] == [[0.0, 0.0], [640.0, 0.0], [640.0, 180.0]]
    assert [lane["countable"] for lane in lanes] == [True, False]
    assert [(k["key"], k["direction"]) for k in session.metadata("")["keys"]] == [
        ("1", "in"), ("2", "out")]
    session.close()


def test_output_must_be_a_file_in_an_existing_folder(tmp_path, highway_video):
    with pytest.raises(LanewatchError, match="is a folder"):
        CountSession(highway_video, HIGHWAY_CONFIG, output=tmp_path)
    with pytest.raises(LanewatchError, match="does not exist: create it first"):
        CountSession(highway_video, HIGHWAY_CONFIG, output=tmp_path / "no" / "m.csv")


def test_cli_prints_the_error_without_a_traceback(tmp_path, capsys):
    code = main(["count", str(tmp_path / "none.mp4"), "-c", str(HIGHWAY_CONFIG)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lanewatch: error: video file not found") and \
        "Traceback" not in err


def _lane(name: str, direction: str = "in", line=((0, 10), (100, 10)), polygon=None):
    return LaneSpec(name=name, line=line, polygon=polygon, direction=direction,
                    in_label=f"{name}-in", out_label=f"{name}-out")


KEY_CASES = [
    ("one direction each", [_lane("a"), _lane("b", "out")],
     [("1", "a", "a-in", "in"), ("2", "b", "b-out", "out")]),
    ("both directions: in first", [_lane("a", "both")],
     [("1", "a", "a-in", "in"), ("2", "a", "a-out", "out")]),
    ("a polygon-only lane gets no key",
     [_lane("zone", line=None, polygon=[(0, 0), (50, 0), (50, 50)]), _lane("a")],
     [("1", "a", "a-in", "in")]),
    ("the tenth is 0, the eleventh has none", [_lane(f"l{i}") for i in range(11)],
     [(k, f"l{i}", f"l{i}-in", "in") for i, k in enumerate("1234567890")]
     + [(None, "l10", "l10-in", "in")]),
]


@pytest.mark.parametrize("specs, expected", [c[1:] for c in KEY_CASES],
                         ids=[c[0] for c in KEY_CASES])
def test_lane_keys(specs, expected):
    lanes = resolve_lanes(specs, "pixels", 200, 100)
    assert [(k.key, k.lane, k.direction, k.side) for k in lane_keys(lanes)] == expected


CLASS_CASES = [
    (("car", "truck", "bus", "motorcycle", "person"), "ctbmp"),
    (("car", "cat", "cow"), "cao"),  # a later letter of the name when the first is taken
    (("bus", "bus2", "b"), "bua"),  # then the first free letter
    (("person", "bicycle", "car", "motorcycle", "bus", "truck"), "pbcmut"),
]


@pytest.mark.parametrize("names, keys", CLASS_CASES)
def test_class_keys(names, keys):
    assert "".join(k.key for k in class_keys(names)) == keys


def test_csv_loads_with_validate_and_quotes_odd_names(tmp_path):
    entries = [ManualEntry(80, "2.669", "lane3", "towards", "car"),
               ManualEntry(41, "1.368", "lane,odd", "towards", "truck"),
               ManualEntry(41, "1.368", "lane4", "towards", "car")]
    text = manual_count_csv(entries, ["on a.mp4\nsecond line"])
    assert text.splitlines() == ["# on a.mp4 second line", "time_s,frame,lane,direction,class",
                                 '1.368,41,"lane,odd",towards,truck',
                                 "1.368,41,lane4,towards,car", "2.669,80,lane3,towards,car"]
    path = tmp_path / "m.csv"
    path.write_text(text)
    run = ReviewRun(tmp_path, "s", None, 29.97, 11.2,
                    {"lane3": ("towards",), "lane4": ("towards",), "lane,odd": ("towards",)},
                    None, ("car", "truck"), ())
    loaded = load_manual_counts(path, run)
    assert [(e.time_s, e.frame, e.lane, e.class_name) for e in loaded.events] == [
        (1.368, 41, "lane,odd", "truck"), (1.368, 41, "lane4", "car"),
        (2.669, 80, "lane3", "car")]


@pytest.mark.timeout(60)
def test_command_prints_its_url_and_stops_cleanly_on_ctrl_c(highway_video):
    """(SIGTERM: the browser test's server is stopped with it.)"""
    exe = shutil.which("lanewatch")
    process = subprocess.Popen([exe, "count", str(highway_video), "-c", str(HIGHWAY_CONFIG),
                                "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = process.stdout.readline()
        assert line.startswith("lanewatch count: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b"lanewatch count" in r.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0, process.stderr.read()
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_counting_goes_on_from_an_existing_output_file(tmp_path, highway_video):
    output = tmp_path / "m.csv"
    shutil.copy(REPO / "tests" / "data" / "highway_manual.csv", output)
    session = CountSession(highway_video, HIGHWAY_CONFIG, output=output)
    saved = session.metadata("")["saved_entries"]
    assert [(e["frame"], e["lane"], e["direction"], e["class"]) for e in saved] == [
        (int(r[1]), r[2], r[3], r[4]) for r in csv_rows(output)]
    # Saved again: the same rows (the comments are this tool's own).
    assert csv_rows_of(session.csv_text(session.saved)) == csv_rows(output)
    session.close()


RESUME_ERRORS = [
    ("time_s,lane,direction,class\n1.37,lane3,towards,tram\n",
     "m.csv:2: class 'tram' is not one of car, motorcycle, bus, truck"),
    ("time_s,frame,lane,direction,class\n1.37,41,lane9,towards,car\n",
     "m.csv:2: lane 'lane9' is not a lane of this run"),
    ("time_s,frame,lane,direction,class\n99,3000,lane3,towards,car\n",
     "m.csv:2: frame 3000 is past the video's end (0..334)"),
]


@pytest.mark.parametrize("text, message", RESUME_ERRORS)
def test_an_output_file_the_board_cannot_go_on_with_is_refused(tmp_path, highway_video, text,
                                                                message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(LanewatchError, match=re.escape(message)):
        CountSession(highway_video, HIGHWAY_CONFIG, output=tmp_path / "m.csv")


def test_rows_without_a_frame_go_on_the_nearest_frame(tmp_path, highway_video):
    (tmp_path / "m.csv").write_text("time_s,lane,direction,class\n1.37,lane3,towards,car\n"
                                    "0.01,lane1,towards,car\n")
    session = CountSession(highway_video, HIGHWAY_CONFIG, output=tmp_path / "m.csv")
    assert [e.frame for e in session.saved] == [41, 0]
    session.close()


def csv_rows(path: Path) -> list[list[str]]:
    return csv_rows_of(path.read_text())


def csv_rows_of(text: str) -> list[list[str]]:
    lines = [t for t in text.splitlines() if t.strip() and not t.startswith("#")]
    return [line.split(",") for line in lines[1:]]
