"""Detector adapter around Ultralytics YOLO: every format Ultralytics loads (.pt, ONNX, an
OpenVINO directory, a TensorRT engine, ...), detection or instance segmentation.

Ultralytics objects stay inside this module; callers get `Detections`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Image, as_picture
from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.stream.detect.policy_config import build_policy
from lanewatch.trackers.detections import Detections


def _looks_like_hub_name(path: str) -> bool:
    """A bare weights name such as 'yolo11n.pt' that Ultralytics may download."""
    p = Path(path)
    return p.parent == Path(".") and p.suffix == ".pt"


def _first_line(err: Exception) -> str:
    """Ultralytics errors carry multi-line advice; the CLI shows one line."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class UltralyticsDetector(DetectorDefaults):
    """YOLO detection/segmentation through Ultralytics. Ultralytics loads lazily and runs one
    call at a time, so the `DetectorDefaults` fit: no start-up work beyond the warm-up
    inference below, one frame at a time."""

    def __init__(self, config: ModelConfig):
        self.config = config
        path = config.path
        if not Path(path).exists() and not _looks_like_hub_name(path):
            raise ModelError(f"model not found: {path} (a .pt/.onnx/.engine file or an "
                             "Ultralytics export directory such as yolo11n_openvino_model/)")
        try:
            from ultralytics import YOLO

            # No task argument: Ultralytics then reads it from the checkpoint or the export's
            # metadata, and a mismatch with the config is reported below instead of crashing.
            self._model = YOLO(path)
            names = dict(self._model.names)  # loads lazily-loaded formats
        except Exception as err:  # Ultralytics raises many types; all mean "cannot load"
            raise ModelError(f"cannot load model {path}: {_first_line(err)}") from None
        model_task = getattr(self._model, "task", config.task)
        if model_task != config.task:
            raise ModelError(
                f"model {path} is a '{model_task}' model but model.task is '{config.task}'; "
                f"set model.task: {model_task} or use a {config.task} model"
            )
        self.task = config.task
        self._lock = threading.Lock()
        self.class_names: dict[int, str] = names
        # The early filter of the stream's DetectionPolicy (see openvino_detector.py).
        policy = build_policy(config, self.class_names)
        self._threshold = policy.floor
        self._class_ids = (None if policy.detected_classes is None
                           else sorted(policy.detected_classes))
        # Some formats load lazily: one warm-up inference surfaces a broken file now (as a
        # ModelError) and takes the first-frame latency out of the measured run.
        try:
            self.detect(np.zeros((config.imgsz, config.imgsz, 3), np.uint8))
        except Exception as err:
            raise ModelError(f"cannot run model {path} on {config.device}: {_first_line(err)}"
                             ) from None

    def check_input_size(self, imgsz: int) -> None:
        """.pt models and dynamic exports run at any size; a static export at its own."""
        found = exported_model_files(self.config.path)
        meta = found[1] if found else {}
        fixed = meta.get("imgsz") if not (meta.get("args") or {}).get("dynamic", True) else None
        if fixed and list(fixed) != [imgsz, imgsz]:
            raise ModelError(
                f"input size {imgsz} does not match {self.config.path}, which has a fixed "
                f"{fixed[0]}x{fixed[1]} input; export the model with dynamic=True (or at that "
                "size), or leave the stream's imgsz out")

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        """Run the model on one image; boxes and masks at the image's resolution."""
        return self.detect_batch([image], imgsz)[0]

    def detect_batch(self, images: list[Image], imgsz: int | None = None
                     ) -> list[Detections]:
        """Several images in one `predict` call (one batch on a GPU)."""
        c = self.config
        images = [as_picture(image).bgr for image in images]
        with self._lock:  # an Ultralytics model is not safe to call from two threads
            results = self._model.predict(
                list(images),
                imgsz=imgsz or c.imgsz,
                conf=self._threshold,
                iou=c.iou,
                classes=self._class_ids,
                device=c.device,
                half=c.half,
                retina_masks=True,  # masks at frame resolution, aligned with the boxes
                verbose=False,
            )
        return [self._detections(r, image) for r, image in zip(results, images)]

    def _detections(self, result, image: np.ndarray) -> Detections:
        boxes = result.boxes
        masks = None
        if self.task == "segment":
            h, w = image.shape[:2]
            if result.masks is not None:
                masks = result.masks.data.cpu().numpy().astype(bool)
                if masks.shape[1:] != (h, w):  # defensive: some backends return letterboxed
                    import cv2

                    masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h)) > 0 for m in masks])
            else:
                masks = np.zeros((0, h, w), bool)
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
            confidence=boxes.conf.cpu().numpy().astype(np.float32),
            class_id=boxes.cls.cpu().numpy().astype(np.int32),
            class_names=self.class_names,
            masks=masks,
        )
