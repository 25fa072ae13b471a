"""Choosing and creating the detector for `model:`."""

from __future__ import annotations

from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.detector import Detector
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.stream.detect.ultralytics_detector import UltralyticsDetector


def create_detector(config: ModelConfig, callers: int = 1) -> Detector:
    """The detector for `model:`: OpenVINO Runtime directly for OpenVINO/ONNX exports on
    CPU/Intel devices (backend auto or openvino), Ultralytics for everything else. `callers`:
    how many threads will call `detect` at once (a live service: one per stream)."""
    from lanewatch.stream.detect.openvino_detector import OpenVINODetector  # heavy: on demand

    _leave_cores_to_the_model()
    if config.backend == "openvino" or (
            config.backend == "auto" and config.device.lower().startswith(("cpu", "intel"))
            and exported_model_files(config.path) is not None):
        return OpenVINODetector(config, config.requests, callers)
    return UltralyticsDetector(config)


def _leave_cores_to_the_model() -> None:
    """OpenCV's helpers (letterbox, drawing, colour conversion, JPEG) run single-threaded.
    Its thread pool makes one 720p letterbox 0.1 ms faster but costs 0.4 ms more CPU (0.5 ->
    0.9 ms), and its workers spin on the cores the model is using: in a pipeline that is
    bound by the CPU, every core-millisecond is the model's."""
    import cv2

    cv2.setNumThreads(1)
