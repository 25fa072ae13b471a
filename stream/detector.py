"""Detector adapter around Ultralytics YOLO: every format Ultralytics loads (.pt, ONNX, an
OpenVINO directory, a TensorRT engine, ...), detection or instance segmentation.

Ultralytics objects stay inside this module; callers get `Detections`. Run-time package
installs by Ultralytics are switched off: every dependency is declared in pyproject.toml.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from lanewatch.stream.config import ModelConfig
from lanewatch.stream.detection_plan import DetectionPlan
from lanewatch.stream.errors import ModelError
from lanewatch.stream.frames import Frame, Image, as_picture
from lanewatch.trackers.detections import Detections

# Must be set before Ultralytics is imported: it reads them at import time.
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ.setdefault("YOLO_VERBOSE", "false")

log = logging.getLogger(__name__)


class Detector(Protocol):
    """What the pipeline needs from a detector. Optional extras, looked up with getattr:
    `detect_frames(frames, imgsz)` (pipelined, several frames in flight) and
    `prepare(frame_size, imgsz)` (start-up work for a stream's frames before the first one,
    such as compiling the model for their input size)."""

    class_names: dict[int, str]
    task: str

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        """Objects in one image (BGR pixels or a frame's Picture), at network input size
        `imgsz` (default model.imgsz)."""
        ...

    def check_input_size(self, imgsz: int) -> None:
        """ModelError (saying what to change) when the model cannot run at `imgsz`."""
        ...

    def detect_batch(self, images: list[Image], imgsz: int | None = None
                     ) -> list[Detections]:
        """Objects in several images, inferred together."""
        ...


def detect_frames(detector: Detector, frames: Iterable[Frame], plan: DetectionPlan
                  ) -> Iterator[tuple[Frame, Detections | None]]:
    """Each frame in order with its detections, or None for a frame the plan skips (the
    tracker predicts it). Pipelined (several frames in flight) when the detector can do that,
    one at a time otherwise; crops and restores as the plan says."""
    pipelined = getattr(detector, "detect_frames", None)
    if pipelined is None:
        for frame in frames:
            yield frame, (plan.restore(detector.detect(plan.crop(frame.picture), plan.imgsz))
                          if plan.due() else None)
        return
    pending: collections.deque[tuple[Frame, bool]] = collections.deque()

    def due_frames() -> Iterator[Frame]:
        for frame in frames:
            due = plan.due()
            pending.append((frame, due))
            if due:
                yield dataclasses.replace(frame, picture=plan.crop(frame.picture))

    for _, detections in pipelined(due_frames(), plan.imgsz):
        # Frames the plan skipped come out in order before the detected frame after them.
        while not pending[0][1]:
            yield pending.popleft()[0], None
        yield pending.popleft()[0], plan.restore(detections)
    while pending:  # skipped frames after the last detected one
        yield pending.popleft()[0], None


def create_detector(config: ModelConfig, callers: int = 1) -> Detector:
    """The detector for `model:`: OpenVINO Runtime directly for OpenVINO/ONNX exports on
    CPU/Intel devices (backend auto or openvino), Ultralytics for everything else. `callers`:
    how many threads will call `detect` at once (a live service: one per stream)."""
    from lanewatch.stream.openvino_detector import OpenVINODetector, exported_model_files

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


def _looks_like_hub_name(path: str) -> bool:
    """A bare weights name such as 'yolo11n.pt' that Ultralytics may download."""
    p = Path(path)
    return p.parent == Path(".") and p.suffix == ".pt"


def resolve_class_ids(wanted: list[str] | None, names: dict[int, str]) -> list[int] | None:
    """Class ids for the configured class names; ModelError naming unknown ones."""
    if wanted is None:
        return None
    by_name = {v: k for k, v in names.items()}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, list(by_name), n=1)
            hints.append(f"'{u}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ModelError(
            f"model.classes: {', '.join(hints)} not among the model's classes "
            f"({', '.join(list(by_name)[:12])}{', ...' if len(by_name) > 12 else ''})"
        )
    return [by_name[w] for w in wanted]


def _first_line(err: Exception) -> str:
    """Ultralytics errors carry multi-line advice; the CLI shows one line."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class UltralyticsDetector:
    """YOLO detection/segmentation through Ultralytics."""

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
        self._class_ids = resolve_class_ids(config.classes, self.class_names)
        # Some formats load lazily: one warm-up inference surfaces a broken file now (as a
        # ModelError) and takes the first-frame latency out of the measured run.
        try:
            self.detect(np.zeros((config.imgsz, config.imgsz, 3), np.uint8))
        except Exception as err:
            raise ModelError(f"cannot run model {path} on {config.device}: {_first_line(err)}"
                             ) from None

    def check_input_size(self, imgsz: int) -> None:
        """.pt models and dynamic exports run at any size; a static export at its own."""
        from lanewatch.stream.openvino_detector import exported_model_files

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
                conf=c.confidence,
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
