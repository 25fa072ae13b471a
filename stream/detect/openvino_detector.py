"""The fast path for exported YOLO models: OpenVINO IR directories and ONNX files run directly
on OpenVINO Runtime, with pre- and post-processing in NumPy/OpenCV and several inference
requests in flight.

Ultralytics' `predict` adds per-call overhead (argument handling, torch tensors, result
objects) and runs one request at a time; here the letterbox is one resize and one border,
colour conversion and scaling are compiled into the model (OpenVINO's PrePostProcessor), NMS
is OpenCV's, and `detect_frames` keeps two requests queued per runtime stream so the CPU's
cores stay busy while the caller tracks, counts and draws. The results follow
Ultralytics' own processing (letterbox, class-aware NMS, box and mask scaling), which the
tests check on the real models.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Frame, Image, Picture, as_picture
from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.stream.detect.export_reshape import fit_fixed_export
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.stream.detect.policy_config import build_policy
from lanewatch.stream.detect.yolo_io import (
    PAD_VALUE,
    Placement,
    instance_masks,
    minimal_size,
    nms,
    place,
)
from lanewatch.trackers.detections import Detections

log = logging.getLogger(__name__)

_MAX_WH = 7680  # class offset of class-aware NMS (as Ultralytics)
_MAX_DET = 300
_DEVICES = {"cpu": "CPU", "intel:cpu": "CPU", "intel:gpu": "GPU", "intel:npu": "NPU"}


@dataclass(frozen=True)
class _InFlight:
    """A frame being inferred by `detect_frames`."""

    request: Any  # openvino.InferRequest, its input filled with the frame
    frame: Frame
    placement: Placement


class OpenVINODetector(DetectorDefaults):
    """YOLO detection or segmentation from an OpenVINO IR directory or an ONNX file. Every
    optional `Detector` capability is its own: `prepare` compiles, `set_callers` picks the
    performance hint, `detect_frames` keeps several frames in flight."""

    def __init__(self, config: ModelConfig, requests: int | None = None, callers: int = 1):
        found = exported_model_files(config.path)
        if found is None:
            raise ModelError(f"{config.path} is not an OpenVINO export directory or an ONNX "
                             "file (use the Ultralytics backend)")
        model_file, meta = found
        device = _DEVICES.get(config.device.lower())
        if device is None:
            raise ModelError(f"model.device {config.device!r} is not an OpenVINO device "
                             f"({', '.join(_DEVICES)}); use backend: ultralytics for CUDA")
        self.config = config
        self.task = meta.get("task", config.task)
        if self.task != config.task:
            raise ModelError(f"model {config.path} is a '{self.task}' model but model.task is "
                             f"'{config.task}'; set model.task: {self.task}")
        names = meta.get("names") or {}
        self.class_names: dict[int, str] = {int(k): str(v) for k, v in names.items()}
        if not self.class_names:
            raise ModelError(f"{config.path}: no class names in the export's metadata")
        # The early filter keeps what the stream's DetectionPolicy may keep (the counted
        # classes, the classes aliased to them, the lowest per-class score); the policy
        # itself runs in the stream processor.
        policy = build_policy(config, self.class_names)
        self._threshold = policy.floor
        ids = None if policy.detected_classes is None else sorted(policy.detected_classes)
        self._class_ids = None if ids is None else np.asarray(ids)
        self._kept_class = np.zeros(len(self.class_names), bool)  # class id -> kept?
        self._kept_class[self._class_ids if ids is not None else slice(None)] = True
        self.stride = int(meta.get("stride", 32))
        self._device = device
        self._model, self.dynamic = self._prepare_model(model_file)
        # A fixed-size export's own input (h, w) (NHWC after preprocessing); read once: every
        # frame compares its size with it, and the runtime's shape query is slow.
        self._fixed_hw: tuple[int, int] | None = (
            None if self.dynamic else tuple(int(d) for d in self._model.inputs[0].get_shape()[1:3]))
        self._input_size = (config.imgsz, config.imgsz)
        self._compiled: dict[tuple, Any] = {}  # (letterboxed (h, w), hint) -> compiled model
        self._idle_requests: dict[tuple, list] = {}  # for `detect`, per input size and hint
        self._batch_requests: dict[tuple[int, int], list] = {}  # idle, for `detect_batch`
        # A fixed-size export refitted to other input sizes (config.rect): (h, w) -> model,
        # None where it does not fit (frames are then padded to the export's size).
        self._refitted: dict[tuple[int, int], Any] = {}
        # Each stream's frames have one size: their letterbox is worked out once.
        self._placements: dict[tuple[tuple[int, int], int | None], Placement] = {}
        self._lock = threading.RLock()  # guards the dictionaries
        self.requests = requests or 0  # set from the runtime's optimum at the first compile
        self.set_callers(callers)
        self.check_input_size(config.imgsz)
        try:
            self.detect(np.zeros((config.imgsz, config.imgsz, 3), np.uint8))
        except ModelError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure here means "cannot run"
            raise ModelError(f"cannot run model {config.path}: {err}") from None

    def _prepare_model(self, model_file: Path):
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        try:
            model = ov.Core().read_model(str(model_file))
        except RuntimeError as err:
            raise ModelError(f"cannot read model {model_file}: {str(err).splitlines()[0]}"
                             ) from None
        dynamic = model.inputs[0].get_partial_shape().is_dynamic
        # Feed BGR uint8 NHWC straight from OpenCV: conversion, scaling and layout change run
        # inside the compiled model.
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(
            ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(
            ColorFormat.RGB).scale(255.0)
        return ppp.build(), dynamic

    def _compiled_for(self, hw: tuple[int, int], hint: str = "THROUGHPUT"):
        """The model compiled for one letterboxed input size and performance hint. LATENCY
        (one inference on every core) serves `detect` for a single caller, one frame at a
        time: on a 2-core CPU it halves the single-frame time against THROUGHPUT, at the same
        frames per second. THROUGHPUT (one core per request) serves `detect_frames`, whose
        requests in flight leave the caller's own work room between them, and `detect` when
        several streams call it at once (their requests then run side by side; with LATENCY
        they would queue: 20% fewer frames for two cameras here). A dynamic export is compiled with
        static shapes, once per size (a stream has one): the CPU plugin has crashed on INT8
        models with dynamic shapes on AMX CPUs (OpenVINO issue 37577), and static shapes run
        faster anyway."""
        compiled = self._compiled.get((hw, hint))
        if compiled is None:
            import openvino as ov

            model = self._model
            if self.dynamic:
                model = model.clone()
                model.reshape({model.inputs[0]: ov.PartialShape([1, hw[0], hw[1], 3])})
            elif hw != self._fixed_hw:
                if not self._fits(hw):
                    raise ModelError(f"{self.config.path} cannot run at {hw[1]}x{hw[0]}: it "
                                     f"has a fixed {self._fixed_hw[1]}x{self._fixed_hw[0]} input")
                model = self._refitted[hw]
            try:
                compiled = ov.Core().compile_model(model, self._device,
                                                   {"PERFORMANCE_HINT": hint})
            except RuntimeError as err:
                raise ModelError(f"cannot compile {self.config.path} for {self._device}: "
                                 f"{str(err).splitlines()[0]}") from None
            if hint == "THROUGHPUT" and not self.requests:
                optimal = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
                self.requests = max(1, min(int(optimal), 4))
            self._compiled[(hw, hint)] = compiled
        return compiled

    # -- pre and post-processing ---------------------------------------------------------------
    def _fits(self, hw: tuple[int, int]) -> bool:
        """Whether the model runs at input (h, w): a dynamic export at any size, a fixed-size
        one at its own, and at others when `rect` is on and its head can be refitted (see
        stream/detect/export_reshape.py; refitted once per size)."""
        if self.dynamic or hw == self._fixed_hw:
            return True
        if not self.config.rect:
            return False
        refitted = self._refitted.get(hw, self)  # every frame asks: no lock once known
        if refitted is not self:
            return refitted is not None
        with self._lock:
            if hw not in self._refitted:
                try:
                    self._refitted[hw] = fit_fixed_export(self._model.clone(), *hw)
                except ValueError as err:
                    log.warning("%s: cannot run this fixed-size export at %dx%d (%s); frames "
                                "are padded to %dx%d", self.config.path, hw[1], hw[0], err,
                                self._fixed_hw[1], self._fixed_hw[0])
                    self._refitted[hw] = None
            return self._refitted[hw] is not None

    def check_input_size(self, imgsz: int) -> None:
        """ModelError unless the model can run at `imgsz` (a fixed-size export: at its own,
        or at any when `rect` refits it)."""
        if not self._fits((imgsz, imgsz)):
            height, width = self._fixed_hw
            raise ModelError(
                f"input size {imgsz} does not match {self.config.path}, which has a fixed "
                f"{width}x{height} input; export the model with dynamic=True (or at that "
                "size), or use its size")

    def _placement(self, frame_wh: tuple[int, int], imgsz: int | None) -> Placement:
        """A frame's letterbox: at its own aspect ratio when the model runs at that size.
        Remembered per frame size (no lock: two threads may both work it out, alike)."""
        placement = self._placements.get((frame_wh, imgsz))
        if placement is None:
            size = self._input_size if imgsz is None else (imgsz, imgsz)
            minimal = self._fits(minimal_size(frame_wh, size, self.stride))
            placement = place(frame_wh, size, self.stride, minimal)
            self._placements[(frame_wh, imgsz)] = placement
        return placement

    def _prepare(self, image: Image, imgsz: int | None) -> tuple[np.ndarray, Placement]:
        """A standalone (1, h, w, 3) input tensor and its placement (the bench's inputs; the
        detection paths write into their requests' own input buffers instead)."""
        picture = as_picture(image)
        placement = self._placement(picture.size, imgsz)
        tensor = np.empty((1, *placement.input_hw, 3), np.uint8)
        placement.fill(picture, tensor[0])
        return tensor, placement

    @staticmethod
    def _fill_request(request, picture: Picture, placement: Placement) -> None:
        """Letterbox the frame straight into the request's own input buffer: no input-sized
        array per frame, and the request starts without OpenVINO's input dispatch (0.2 ms
        of Python per frame when a NumPy array is handed over)."""
        placement.fill(picture, request.get_input_tensor().data[0])

    def _candidates(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """The predictions scoring above the threshold, copied out of the request's buffers
        (a few hundred of the 8400 columns: the buffers are reused by the next inference)."""
        out = outputs[0][0]  # (4 + classes + mask coefficients, N): a row per quantity
        nc = len(self.class_names)
        # With a class filter only the kept classes' score rows are read for the threshold
        # (4 of 80 for traffic); a cell whose best class overall is another is dropped in
        # `_postprocess`, as Ultralytics does.
        scores = out[4:4 + nc] if self._class_ids is None else out[4 + self._class_ids]
        columns = np.flatnonzero(scores.max(axis=0) > self._threshold)
        rows = np.ascontiguousarray(out[:, columns].T)
        proto = outputs[1][0].copy() if self.task == "segment" and len(columns) else None
        return rows, proto

    def _postprocess(self, candidates: tuple[np.ndarray, np.ndarray | None],
                     placement: Placement) -> Detections:
        """Class, class filter, class-aware NMS and scaling back to the frame."""
        pred, proto = candidates
        gain, left, top = placement.gain, placement.left, placement.top
        h, w = placement.frame_hw
        nc = len(self.class_names)
        best = pred[:, 4:4 + nc].argmax(1)
        conf = pred[np.arange(len(pred)), 4 + best]
        if self._class_ids is not None:
            keep = self._kept_class[best]
            pred, best, conf = pred[keep], best[keep], conf[keep]
        xy, wh = pred[:, :2], pred[:, 2:4] / 2
        boxes = np.concatenate([xy - wh, xy + wh], axis=1)
        kept = nms(boxes + best[:, None] * _MAX_WH, conf, self.config.iou)[:_MAX_DET]
        pred, best, conf, boxes = pred[kept], best[kept], conf[kept], boxes[kept]
        boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - left) / gain).clip(0, w)
        boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - top) / gain).clip(0, h)
        masks = None
        if self.task == "segment":
            masks = (instance_masks(pred[:, 4 + nc:], proto, boxes, (h, w)) if proto is not None
                     else np.zeros((0, h, w), bool))
        return Detections(xyxy=boxes.astype(np.float32), confidence=conf.astype(np.float32),
                          class_id=best.astype(np.int32), class_names=self.class_names,
                          masks=masks)

    def set_callers(self, callers: int) -> None:
        """How many threads call `detect` at once (a live service: one per stream; changes
        when streams are added or removed at run time). One caller: the LATENCY compilation
        (every core on the frame); several: THROUGHPUT, one request per core side by side.
        Requests in flight finish on the compilation they started on."""
        self._detect_hint = "LATENCY" if callers <= 1 else "THROUGHPUT"

    # -- inference -----------------------------------------------------------------------------
    def prepare(self, frame_size: tuple[int, int], imgsz: int | None = None,
                single: bool = False) -> None:
        """Get the model ready for `detect_frames` (or, `single`, for `detect`: a live
        stream) on frames of `frame_size` (w, h): refitted and compiled for their input, and
        run once. Start-up work, done before the first frame instead of on it (0.6 s of wall
        time on 2 cores: a tenth of a short clip's review, which the review's frames per
        second would otherwise count; 18 frames of a live camera queued behind it)."""
        placement = self._placement(frame_size, imgsz)
        hint = self._detect_hint if single else "THROUGHPUT"
        with self._lock:  # streams starting together compile the model once, not each
            request = self._compiled_for(placement.input_hw, hint).create_infer_request()
        request.get_input_tensor().data[:] = PAD_VALUE
        try:
            request.infer()
        except RuntimeError as err:
            height, width = placement.input_hw
            raise ModelError(f"cannot run model {self.config.path} at {width}x{height} (the "
                             f"input of {frame_size[0]}x{frame_size[1]} frames): "
                             f"{str(err).splitlines()[0]}") from None

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        """Objects in one image (BGR pixels or a frame's Picture; one request, waits for it),
        at input size `imgsz` (default model.imgsz). Thread-safe: callers on several threads
        (live streams sharing the model) each get their own request, and the runtime runs
        them side by side."""
        picture = as_picture(image)
        placement = self._placement(picture.size, imgsz)
        hw = placement.input_hw
        with self._lock:
            hint = self._detect_hint
            compiled = self._compiled_for(hw, hint)
            idle = self._idle_requests.setdefault((hw, hint), [])
            request = idle.pop() if idle else compiled.create_infer_request()
        try:
            self._fill_request(request, picture, placement)
            request.infer()  # waits here
            candidates = self._candidates([request.get_output_tensor(i).data
                                           for i in range(len(compiled.outputs))])
        finally:
            with self._lock:
                idle.append(request)
        return self._postprocess(candidates, placement)

    def detect_batch(self, images: list[Image], imgsz: int | None = None
                     ) -> list[Detections]:
        """Several images inferred together (all queued at once on the THROUGHPUT-compiled
        model), for one caller at a time: the batching detector's dispatcher."""
        pictures = [as_picture(image) for image in images]
        placements = [self._placement(picture.size, imgsz) for picture in pictures]
        started: list = []
        try:
            for picture, placement in zip(pictures, placements):
                hw = placement.input_hw
                compiled = self._compiled_for(hw, "THROUGHPUT")
                pool = self._batch_requests.setdefault(hw, [])
                request = pool.pop() if pool else compiled.create_infer_request()
                started.append((request, hw))  # back to the pool whatever happens next
                self._fill_request(request, picture, placement)
                request.start_async()
            return [self._postprocess(self._wait_candidates(request), placement)
                    for (request, _), placement in zip(started, placements)]
        finally:
            for request, hw in started:
                request.wait()
                self._batch_requests[hw].append(request)

    def detect_frames(self, frames: Iterable[Frame], imgsz: int | None = None
                      ) -> Iterator[tuple[Frame, Detections]]:
        """Detections for each frame, in order, with up to `in_flight` inferences queued:
        while the caller works on one frame's results the next frames are being inferred.

        No Python callback runs on the runtime's threads: a callback needs the GIL, and while
        the caller's thread holds it the finished request, and with it a core, would wait. The
        requests are collected here in order instead, and twice as many are queued as run at
        once, so every runtime stream has the next frame waiting when it finishes one."""
        in_flight: collections.deque[_InFlight] = collections.deque()
        idle: dict[tuple[int, int], list] = {}
        try:
            for frame in frames:
                placement = self._placement(frame.picture.size, imgsz)
                hw = placement.input_hw
                compiled = self._compiled_for(hw)  # the first compilation sets `requests`
                if len(in_flight) >= self.in_flight:
                    yield self._finish(in_flight.popleft(), idle)
                pool = idle.setdefault(hw, [])
                request = pool.pop() if pool else compiled.create_infer_request()
                self._fill_request(request, frame.picture, placement)
                request.start_async()
                in_flight.append(_InFlight(request, frame, placement))
            while in_flight:
                yield self._finish(in_flight.popleft(), idle)
        finally:
            for item in in_flight:
                item.request.wait()

    @property
    def in_flight(self) -> int:
        """Frames queued at once by `detect_frames`: two per runtime stream."""
        return 2 * self.requests

    def _finish(self, item: _InFlight, idle: dict) -> tuple[Frame, Detections]:
        candidates = self._wait_candidates(item.request)
        idle[item.placement.input_hw].append(item.request)
        return item.frame, self._postprocess(candidates, item.placement)

    def _wait_candidates(self, request) -> tuple[np.ndarray, np.ndarray | None]:
        """Wait for a request (the GIL released meanwhile) and copy out its candidates."""
        request.wait()
        return self._candidates([request.get_output_tensor(i).data
                                 for i in range(len(request.model_outputs))])

    def describe(self) -> str:
        return json.dumps({"backend": "openvino", "requests": self.requests,
                           "dynamic": self.dynamic, "rect": self.config.rect})
