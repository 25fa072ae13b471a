"""Instance segmentation: `task: segment` with the -seg model draws masks in the annotated video."""

from __future__ import annotations

import shutil
import subprocess

import av
import cv2
import numpy as np
import pytest

from conftest import CONFIGS

pytestmark = pytest.mark.integration

FRAMES = 45


def run(tmp_path, segment_model, video, draw_masks: bool):
    text = (CONFIGS / "highway.yaml").read_text()
    text = text.replace("${LANEWATCH_ASSETS:-../../shared}/models/yolo11n_int8_openvino_model",
                        str(segment_model))
    text = text.replace("task: detect ", "task: segment")
    text = text.replace("trail_seconds: 1.5", f"trail_seconds: 1.5\n  draw_masks: {draw_masks}")
    assert "task: segment" in text and str(segment_model) in text
    config = tmp_path / f"seg_{draw_masks}.yaml"
    config.write_text(text)
    config_dir_video = video.resolve()
    out = tmp_path / f"out_{draw_masks}"
    proc = subprocess.run(
        [shutil.which("lanewatch"), "process", str(config_dir_video), "-c", str(config),
         "-o", str(out), "-q", "--max-frames", str(FRAMES)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with av.open(str(out / "annotated.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == FRAMES
    return frames, (out / "events.jsonl").read_text()


def test_segment_task_draws_masks(tmp_path, segment_model, highway_video):
    with_masks, events_a = run(tmp_path, segment_model, highway_video, draw_masks=True)
    without, events_b = run(tmp_path, segment_model, highway_video, draw_masks=False)
    assert events_a == events_b  # masks change the picture, never the counts
    assert events_a.count('"crossing"') == 2  # the first two cars of the hand count (frames 41, 43)
    diff = np.abs(with_masks[-1].astype(int) - without[-1].astype(int)).sum(axis=2)
    # Opening removes the speckle of two H.264 encodes of textured grass; masks are solid blobs.
    tinted = cv2.morphologyEx((diff > 40).astype(np.uint8), cv2.MORPH_OPEN,
                              np.ones((5, 5), np.uint8)) > 0
    # Several vehicles are tracked at frame 44; each mask tints hundreds of pixels.
    assert tinted.sum() > 1500
    # The tint is local to objects: the top-left verge has no vehicles.
    assert tinted[300:700, 0:250].mean() < 0.001
