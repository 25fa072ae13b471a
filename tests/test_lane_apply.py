"""The lane editor's "Apply to stream" (issue 22): the diff shown before applying, the same
validation as the config, the change logged, and the rollback when the stream does not come
back. In-process service (tests/inprocess.py: stub detector, a 10-frame camera file)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve import lane_apply
from lanewatch.stream.serve.lane_apply import lane_diff, stream_with_lanes
from lanewatch.trackers.analytics.lanes import LaneSpec

from inprocess import STREAM, served

JSON = {"Content-Type": "application/json"}
A = {"name": "a", "line": [[10, 100], [300, 100]], "direction": "in"}
B = {"name": "b", "polygon": [[0, 0], [50, 0], [50, 50]]}


def specs(*lanes: dict) -> list[LaneSpec]:
    return [LaneSpec.model_validate(lane) for lane in lanes]


@pytest.mark.parametrize("old, new, summary, changed", [
    ([A], [A], "no change", []),
    ([A], [A, B], "+b", []),
    ([A, B], [B], "-a", []),
    ([A], [{**A, "line": [[10, 110], [300, 110]]}], "a line moved",
     [("a", "line", [[10, 100], [300, 100]], [[10, 110], [300, 110]])]),
    ([A], [{**A, "direction": "both"}], "a direction in -> both", [("a", "direction", "in",
                                                                    "both")]),
    ([A], [{**A, "polygon": B["polygon"]}], "a polygon added",
     [("a", "polygon", None, B["polygon"])]),
    ([A, B], [{**A, "in_label": "north"}, {**B, "name": "c"}],
     "+c; -b; a in_label None -> north", [("a", "in_label", None, "north")]),
], ids=["same", "added", "removed", "line", "direction", "polygon", "mixed"])
def test_lane_diff(old, new, summary, changed):
    diff = lane_diff(specs(*old), specs(*new))
    assert diff.summary() == summary
    assert [(c.name, f.field, f.old, f.new) for c in diff.changed for f in c.fields] == changed
    assert diff.empty == (summary == "no change")


def test_new_lanes_are_checked_against_the_whole_stream():
    """A turning zone's lane, the calibration and the rest are checked with the new lanes, as
    a config file would be; the stream's other settings are kept."""
    stream = StreamConfig(id="cam", source="cam.mp4", lanes=specs(A),
                          source_options={"loop": True})
    new = stream_with_lanes(stream, specs(A, B))
    assert [lane.name for lane in new.lanes] == ["a", "b"]
    assert new.source_options == stream.source_options and new.source == "cam.mp4"


def run(tmp_path, scenario):
    async def go():
        async with served(tmp_path) as (service, client):
            return await scenario(service, client)
    return asyncio.run(go())


NEW_LANES = {"lanes": [{"name": "l1", "line": [[10, 130], [310, 130]], "direction": "in"},
                       {"name": "l2", "polygon": [[20, 20], [120, 20], [120, 90]]}]}


@pytest.mark.timeout(60)
def test_dry_run_then_apply_replaces_the_running_lanes_and_logs_the_change(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lanewatch.stream.serve.lane_apply")

    async def scenario(service, client):
        url = f"/api/streams/{STREAM}/lanes/apply"
        dry = await client.post(url, json={**NEW_LANES, "dry_run": True})
        dry_reply = await dry.json()
        unchanged = [lane.name for lane in service.runners[STREAM].stream.lanes]
        applied = await client.post(url, json=NEW_LANES)
        reply = await applied.json()
        lanes = await (await client.get(f"/api/streams/{STREAM}/lanes")).json()
        bad = await client.post(url, json={"lanes": [{"name": "x", "line": [[5, 5], [5, 5]]}]})
        unknown = await client.post("/api/streams/nope/lanes/apply", json=NEW_LANES)
        return (dry.status, dry_reply, unchanged, applied.status, reply, lanes, bad.status,
                await bad.json(), unknown.status)

    (dry_status, dry, unchanged, status, reply, lanes, bad_status, bad,
     unknown) = run(tmp_path, scenario)
    assert dry_status == 200 and dry["applied"] is False
    assert dry["diff"]["summary"] == "+l2; l1 line moved, direction both -> in"
    assert unchanged == ["l1"]  # a dry run changes nothing
    assert status == 200 and reply["applied"] is True, reply
    assert reply["status"]["frames_processed"] > 0  # the reply waited for the new runner
    assert [lane["name"] for lane in lanes["lanes"]] == ["l1", "l2"]
    assert lanes["lanes"][0]["line"] == [[10, 130], [310, 130]]
    assert f"stream {STREAM}: lanes changed: +l2; l1 line moved" in caplog.text
    assert bad_status == 400 and bad["error"] == "invalid_lanes"
    assert "line needs two distinct points" in bad["message"]
    assert unknown == 404


@pytest.mark.timeout(60)
def test_a_stream_that_does_not_come_back_gets_its_old_lanes_back(tmp_path, monkeypatch,
                                                                   caplog):
    """The camera is gone when the lanes are applied (its file deleted): the new runner gets
    no frame, and the previous config is restored and said so."""
    monkeypatch.setattr(lane_apply, "FIRST_FRAME_TIMEOUT_S", 2.0)
    caplog.set_level(logging.INFO)

    async def scenario(service, client):
        (tmp_path / "cam.mp4").unlink()
        r = await client.post(f"/api/streams/{STREAM}/lanes/apply", json=NEW_LANES)
        runner = service.runners[STREAM]
        return r.status, await r.json(), [lane.name for lane in runner.stream.lanes], \
            runner.stream.lanes[0].line

    status, reply, names, line = run(tmp_path, scenario)
    assert status == 409 and reply["error"] == "apply_failed" and reply["rolled_back"]
    assert "previous lanes are back" in reply["message"]
    assert "no frame within 2 s" in reply["message"] or "failed" in reply["message"]
    assert names == ["l1"] and line == ((10, 120), (310, 120))
    assert "the new lanes did not start" in caplog.text


def test_a_camera_password_stays_an_environment_reference(tmp_path, monkeypatch):
    """The applied stream is stored (like a PUT) with its source as the config file wrote it:
    the password the service substituted is never stored in clear."""
    from types import SimpleNamespace

    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.serve.stream_registry import keep_source_as_written

    monkeypatch.setenv("CAM_PASSWORD", "hunter22")
    (tmp_path / "model").mkdir()
    path = tmp_path / "site.yaml"
    path.write_text("model: {path: model}\nstreams:\n  - id: gate\n"
                    "    source: rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/stream1\n"
                    "    lanes: [{name: a, line: [[0, 10], [50, 10]]}]\n")
    stream = load_config(path).streams[0]
    assert "hunter22" in stream.source  # what the service runs
    written = lane_apply._written_source(SimpleNamespace(config_path=path), stream)
    assert written == "rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/stream1"
    new = keep_source_as_written(stream_with_lanes(stream, specs(A, B)), written)
    assert new._source_as_written == written and new.source == stream.source
