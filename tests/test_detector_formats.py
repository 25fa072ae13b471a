"""The detector adapter loads what Ultralytics loads and returns only our own types.

Weights here are random (built from the model definitions that ship inside Ultralytics, since
nothing can be downloaded): the test is about formats, tasks and types, not accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lanewatch.sinks.errors import ModelError
from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.ultralytics_detector import UltralyticsDetector
from lanewatch.trackers.detections import Detections

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def random_models(tmp_path_factory, detector_model):
    from ultralytics import YOLO

    coco = yaml.safe_load((detector_model / "metadata.yaml").read_text())["names"]
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for task, yaml_name in (("detect", "yolo11n.yaml"), ("segment", "yolo11n-seg.yaml")):
        model = YOLO(yaml_name)
        model.model.names = coco
        pt = folder / f"random-{task}.pt"
        model.save(str(pt))
        paths[(task, "pt")] = pt
        paths[(task, "onnx")] = YOLO(str(pt)).export(format="onnx", imgsz=320, verbose=False)
    return paths


IMAGE = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)


@pytest.mark.parametrize("task", ["detect", "segment"])
@pytest.mark.parametrize("fmt", ["pt", "onnx"])
def test_formats_and_tasks(random_models, task, fmt):
    config = ModelConfig(path=str(random_models[(task, fmt)]), task=task, imgsz=320,
                         confidence=0.0001, classes=["car", "person"])
    detector = UltralyticsDetector(config)
    assert detector.class_names[2] == "car"
    result = detector.detect(IMAGE)
    assert type(result) is Detections
    assert set(result.class_id.tolist()) <= {0, 2}  # filtered by name: person=0, car=2
    assert result.xyxy.dtype == np.float32
    if task == "segment":
        assert result.masks is not None and result.masks.shape == (len(result), 240, 320)
        assert result.masks.dtype == bool
    else:
        assert result.masks is None


def test_openvino_export_directory(detector_model):
    detector = UltralyticsDetector(ModelConfig(path=str(detector_model)))
    assert detector.task == "detect" and len(detector.class_names) == 80


def test_wrong_task_for_a_pt_model(random_models):
    with pytest.raises(ModelError, match="is a 'segment' model but model.task is 'detect'"):
        UltralyticsDetector(ModelConfig(path=str(random_models[("segment", "pt")])))


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="broken.onnx"):
        UltralyticsDetector(ModelConfig(path=str(bad)))
