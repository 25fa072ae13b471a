"""A fixed-size export refitted to the frame's aspect ratio (`model.rect`): the anchor grid,
the same vehicles as the padded 640x640 input on the real detector and footage, other input
sizes, and a graph it does not understand falling back to padding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.export_reshape import anchor_grid, fit_fixed_export
from lanewatch.stream.detect.openvino_detector import OpenVINODetector
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.bytetrack.association import iou_matrix

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("height, width, cells, checks", [
    # (index, x, y, stride): level by level, row by row, x across a row
    (64, 96, 8 * 12 + 4 * 6 + 2 * 3, [(0, 0.5, 0.5, 8), (1, 1.5, 0.5, 8), (12, 0.5, 1.5, 8),
                                      (96, 0.5, 0.5, 16), (125, 2.5, 1.5, 32)]),
    (640, 640, 8400, [(6399, 79.5, 79.5, 8), (6400, 0.5, 0.5, 16), (8399, 19.5, 19.5, 32)]),
    (384, 640, 5040, [(80, 0.5, 1.5, 8), (3839, 79.5, 47.5, 8), (5039, 19.5, 11.5, 32)]),
])
def test_anchor_grid(height, width, cells, checks):
    points, strides = anchor_grid(height, width)
    assert points.shape == (2, cells) and strides.shape == (cells,)
    for index, x, y, stride in checks:
        assert (points[0, index], points[1, index], strides[index]) == (x, y, stride)


def _export_constant(model_dir, shape):
    import openvino as ov

    model = ov.Core().read_model(str(next(model_dir.glob("*.xml"))))
    return next(op.get_data() for op in model.get_ordered_ops()
                if op.get_type_name() == "Constant" and tuple(op.get_output_shape(0)) == shape)


@pytest.mark.integration
def test_the_grid_is_the_exports_own(detector_model):
    points, strides = anchor_grid(640, 640)
    assert np.array_equal(_export_constant(detector_model, (1, 2, 8400))[0], points)
    assert np.array_equal(_export_constant(detector_model, (1, 1, 8400))[0, 0], strides)


@pytest.mark.integration
def test_refitted_export_finds_the_same_vehicles_with_less_input(detector_model,
                                                                 highway_video):
    config = ModelConfig(path=str(detector_model), classes=["car", "truck", "bus", "motorcycle"])
    refitted = OpenVINODetector(config)
    padded = OpenVINODetector(config.model_copy(update={"rect": False}))
    matched = total = 0
    with FileSource(highway_video) as source:
        for frame in source.frames():
            if frame.index % 25:
                continue
            assert refitted._prepare(frame.picture, None)[0].shape == (1, 384, 640, 3)
            assert padded._prepare(frame.picture, None)[0].shape == (1, 640, 640, 3)
            a, b = padded.detect(frame.picture), refitted.detect(frame.picture)
            sure = a.confidence >= 0.4
            total += sure.sum()
            if not sure.any():
                continue
            if not len(b):
                continue
            iou = iou_matrix(a.xyxy[sure].astype(float), b.xyxy.astype(float))
            best = iou.argmax(1)
            same = (iou.max(1) >= 0.9) & (a.class_id[sure] == b.class_id[best])
            matched += same.sum()
    assert total >= 40
    assert matched >= 0.95 * total, f"{matched} of {total} confident vehicles found again"


@pytest.mark.integration
def test_a_fixed_size_export_runs_at_another_input_size(detector_model, highway_video):
    detector = OpenVINODetector(ModelConfig(path=str(detector_model), imgsz=320,
                                            classes=["car", "truck", "bus", "motorcycle"]))
    found = 0
    with FileSource(highway_video) as source:
        for frame in source.frames():
            if frame.index % 30:
                continue
            assert detector._prepare(frame.picture, None)[0].shape == (1, 192, 320, 3)
            small, full = detector.detect(frame.picture), detector.detect(frame.picture, 640)
            sure = small.xyxy[small.confidence >= 0.5].astype(float)
            if len(sure):
                assert (iou_matrix(sure, full.xyxy.astype(float)).max(1) >= 0.5).all()
            found += len(sure)
    assert found >= 5


def _headless_export(folder):
    """A valid OpenVINO export whose graph is not a YOLO head: one 1x1 convolution giving
    (1, 5, cells), 64x64 fixed input, one class."""
    import openvino as ov
    from openvino import opset13 as ops

    image = ops.parameter([1, 3, 64, 64], np.float32, name="images")
    conv = ops.convolution(image, np.full((5, 3, 1, 1), 0.01, np.float32), [1, 1], [0, 0],
                           [0, 0], [1, 1])
    flat = ops.reshape(conv, np.array([1, 5, 4096], np.int64), special_zero=False)
    folder.mkdir()
    ov.save_model(ov.Model([flat], [image]), str(folder / "tiny.xml"))
    (folder / "metadata.yaml").write_text(yaml.safe_dump(
        {"task": "detect", "stride": 32, "imgsz": [64, 64], "names": {0: "car"}}))
    return folder


def test_a_graph_it_does_not_understand_is_padded_as_exported(tmp_path, caplog):
    import openvino as ov

    folder = _headless_export(tmp_path / "tiny_openvino_model")
    with pytest.raises(ValueError, match="no YOLO detection head"):
        fit_fixed_export(ov.Core().read_model(str(folder / "tiny.xml")), 32, 64)
    detector = OpenVINODetector(ModelConfig(path=str(folder), imgsz=64))
    with caplog.at_level(logging.WARNING):
        tensor, _ = detector._prepare(np.zeros((32, 128, 3), np.uint8), None)
    assert tensor.shape == (1, 64, 64, 3)
    assert "cannot run this fixed-size export at 64x32" in caplog.text
    assert "padded to 64x64" in caplog.text
    assert len(detector.detect(np.zeros((32, 128, 3), np.uint8))) == 0


@pytest.mark.integration
def test_a_refitted_onnx_export_computes_what_the_model_computes_at_that_size(tmp_path):
    """The strongest check of the rewrite: an ONNX export (fixed 320x320, random weights)
    refitted to 320x192 gives the raw output of the PyTorch model itself run at 320x192
    (which takes any size), cell for cell: anchors, strides and reshapes all in place."""
    import openvino as ov
    import torch
    from ultralytics import YOLO

    pt = tmp_path / "random.pt"
    YOLO("yolo11n.yaml").save(str(pt))
    onnx = YOLO(str(pt)).export(format="onnx", imgsz=320, verbose=False)
    model = fit_fixed_export(ov.Core().read_model(onnx), 192, 320)
    x = np.random.default_rng(0).random((1, 3, 192, 320), dtype=np.float32)
    got = ov.Core().compile_model(model, "CPU")(x)[0]
    network = YOLO(str(pt)).model.float().eval()
    with torch.no_grad():
        want = network(torch.from_numpy(x))[0].numpy()
    assert got.shape == want.shape == (1, 84, 40 * 24 + 20 * 12 + 10 * 6)
    assert np.abs(got[0, :4] - want[0, :4]).max() < 1e-2  # box centres and sizes in pixels
    assert np.abs(got[0, 4:] - want[0, 4:]).max() < 1e-4  # class scores
