"""The OpenVINO fast path against Ultralytics on the real models and footage: the same
detections (and masks), in order with several frames in flight, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Picture
from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.openvino_detector import OpenVINODetector
from lanewatch.stream.detect.ultralytics_detector import UltralyticsDetector
from lanewatch.stream.detect.yolo_io import letterbox, nms, place
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.bytetrack.association import iou_matrix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def frames(video, every=40):
    with FileSource(video) as source:
        return [f for f in source.frames() if f.index % every == 0]


def assert_same(a, b, box_iou=0.99, score=1e-3, mask_iou=None):
    """Every detection of `a` has one in `b` with the same class, box and score."""
    assert len(a) == len(b)
    if not len(a):
        return
    iou = iou_matrix(a.xyxy.astype(float), b.xyxy.astype(float))
    j = iou.argmax(1)
    assert iou.max(1).min() >= box_iou
    assert (a.class_id == b.class_id[j]).all()
    assert np.abs(a.confidence - b.confidence[j]).max() <= score
    if mask_iou is not None:
        inter = (a.masks & b.masks[j]).sum((1, 2))
        union = np.maximum((a.masks | b.masks[j]).sum((1, 2)), 1)
        assert (inter / union).min() >= mask_iou


def test_detection_equals_ultralytics(detector_model, highway_video):
    """Ultralytics pads every frame to a fixed-size export's 640x640; so does `rect: false`
    (the refitted 640x384 input is compared in tests/test_export_reshape.py)."""
    config = ModelConfig(path=str(detector_model), confidence=0.1, rect=False,
                         classes=["car", "truck", "bus", "motorcycle"])
    fast, reference = OpenVINODetector(config), UltralyticsDetector(config)
    for frame in frames(highway_video):
        assert_same(reference.detect(frame.image), fast.detect(frame.image))


def test_segmentation_equals_ultralytics_for_the_same_input_shape(segment_model,
                                                                  pedestrians_video):
    """The seg export has dynamic input shapes. We pad each frame only to the stride (640x384
    for 1920x1080); Ultralytics does the same on most CPUs but pads to 640x640 on CPUs with AMX
    (an OpenVINO crash work-around), so compare with both shapes: one must match exactly."""
    config = ModelConfig(path=str(segment_model), task="segment", confidence=0.25)
    fast, reference = OpenVINODetector(config), UltralyticsDetector(config)
    square = OpenVINODetector(config)
    # Ultralytics' shape on AMX CPUs: the whole 640x640
    square._placement = lambda frame_wh, imgsz: place(frame_wh, (640, 640), 32, False)
    for frame in frames(pedestrians_video, every=100):
        expected = reference.detect(frame.image)
        outcomes = []
        for candidate in (fast, square):
            try:
                assert_same(expected, candidate.detect(frame.image), mask_iou=0.98)
                outcomes.append(True)
            except AssertionError:
                outcomes.append(False)
        assert any(outcomes), f"frame {frame.index}: neither input shape matches Ultralytics"
        got = fast.detect(frame.image)
        assert got.masks.shape == (len(got), 1080, 1920)


def test_frames_in_flight_come_back_in_order_with_the_same_detections(detector_model,
                                                                      highway_video):
    config = ModelConfig(path=str(detector_model), requests=3)
    detector = OpenVINODetector(config, config.requests)
    assert detector.requests == 3
    clip = frames(highway_video, every=7)
    pipelined = list(detector.detect_frames(iter(clip)))
    assert [f.index for f, _ in pipelined] == [f.index for f in clip]
    for frame, detections in pipelined:
        assert_same(detector.detect(frame.picture), detections, box_iou=0.999, score=1e-6)
    assert list(detector.detect_frames(iter([]))) == []


def test_a_pipeline_stopped_early_leaves_no_inference_running(detector_model, highway_video):
    detector = OpenVINODetector(ModelConfig(path=str(detector_model), requests=2), 2)
    assert detector.in_flight == 4  # two queued per runtime stream
    clip = frames(highway_video, every=30)
    pipelined = detector.detect_frames(iter(clip))
    first = next(pipelined)
    pipelined.close()  # a review interrupted: the queued requests are waited for
    again = next(detector.detect_frames(iter(clip)))
    assert again[0] is first[0]
    assert_same(first[1], again[1], box_iou=0.999, score=1e-6)
    batch = detector.detect_batch([f.picture for f in clip[:5]])
    for frame, found in zip(clip, batch):
        assert_same(detector.detect(frame.picture), found, box_iou=0.98, score=0.02)


def test_callers_added_at_run_time_switch_to_the_throughput_compilation(detector_model,
                                                                      highway_video):
    """A service that gains streams at run time recompiles the shared model for throughput
    (and back for one stream); the detections do not change."""
    detector = OpenVINODetector(ModelConfig(path=str(detector_model), imgsz=640), callers=1)
    image = frames(highway_video, every=200)[1].image
    alone = detector.detect(image)
    detector.set_callers(3)
    shared = detector.detect(image)
    detector.set_callers(1)
    assert_same(alone, shared, box_iou=0.98, score=0.02)
    assert_same(alone, detector.detect(image))
    assert {hint for _, hint in detector._compiled} == {"LATENCY", "THROUGHPUT"}


def test_backend_choice_and_errors(detector_model, tmp_path):
    assert isinstance(create_detector(ModelConfig(path=str(detector_model))), OpenVINODetector)
    assert isinstance(create_detector(ModelConfig(path=str(detector_model),
                                                  backend="ultralytics")), UltralyticsDetector)
    with pytest.raises(ModelError, match="not an OpenVINO device"):
        OpenVINODetector(ModelConfig(path=str(detector_model), device="cuda:0"))
    with pytest.raises(ModelError, match="is a 'detect' model but model.task is 'segment'"):
        OpenVINODetector(ModelConfig(path=str(detector_model), task="segment"))
    with pytest.raises(ModelError, match="not an OpenVINO export directory or an ONNX file"):
        OpenVINODetector(ModelConfig(path=str(tmp_path)))
    with pytest.raises(ModelError, match="'cars' .*did you mean 'car'"):
        OpenVINODetector(ModelConfig(path=str(detector_model), classes=["cars"]))


@pytest.mark.parametrize("boxes, scores, threshold, kept", [
    ([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], [0.9, 0.8, 0.7], 0.5, [0, 2]),
    ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.8, 0.9], 0.5, [1]),
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),  # IoU 1/3: both stay
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),
    (np.zeros((0, 4)), [], 0.5, []),
    ([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.7, 0.6], 0.7, [1]),  # equal
    ([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.2, 0.9, 0.5], 0.5, [1, 2, 0]),
    ([[0, 0, 10, 10], [0, 0, 10, 8]], [0.9, 0.8], 0.8, [0, 1]),  # IoU 0.8: not above 0.8
    ([[0, 0, 10, 10], [0, 0, 10, 8]], [0.9, 0.8], 0.79, [0]),
])
def test_nms(boxes, scores, threshold, kept):
    result = nms(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), threshold)
    assert result.tolist() == kept


@pytest.mark.parametrize("size, minimal, shape, pad", [
    ((1080, 1920), False, (640, 640), (0, 140)),
    ((1080, 1920), True, (384, 640), (0, 12)),
    ((720, 1280), True, (384, 640), (0, 12)),
    ((640, 640), False, (640, 640), (0, 0)),
])
def test_letterbox(size, minimal, shape, pad):
    image = np.full((*size, 3), 200, np.uint8)
    boxed, gain, offset = letterbox(image, (640, 640), 32, minimal)
    assert boxed.shape[:2] == shape and offset == pad
    assert gain == pytest.approx(min(640 / size[0], 640 / size[1]))
    if pad[1]:
        assert (boxed[0] == 114).all() and (boxed[pad[1]] == 200).all()


@pytest.mark.parametrize("frame_wh, minimal", [
    ((1280, 720), True),  # 640x360 in 640x384: grey rows above and below
    ((1280, 740), True),  # the same 640x384 input, the frame a little taller
    ((720, 1280), False),  # portrait in a square: grey columns left and right
    ((640, 640), False),  # no grey at all
])
def test_a_request_buffer_is_filled_whole_whatever_it_held(frame_wh, minimal):
    """Frames are letterboxed straight into an inference request's input buffer, which holds
    the previous frame: every pixel is written again, frame and grey, as a fresh letterbox."""
    w, h = frame_wh
    image = np.random.default_rng(w + h).integers(0, 256, (h, w, 3), np.uint8)
    fresh, _, _ = letterbox(image, (640, 640), 32, minimal)
    placement = place((w, h), (640, 640), 32, minimal)
    buffer = np.random.default_rng(1).integers(0, 256, (*placement.input_hw, 3), np.uint8)
    placement.fill(Picture(bgr=image), buffer)
    assert np.array_equal(buffer, fresh)


def test_frames_of_two_aspect_ratios_share_requests_of_one_input_size(detector_model,
                                                                     highway_video):
    """A 1280x720 and a 1280x740 frame both letterbox to 640x384, placed differently, and so
    use the same requests one after the other: each frame's boxes are its own (the earlier
    frame's pixels or grey never stay behind in the reused input buffer)."""
    config = ModelConfig(path=str(detector_model), confidence=0.1,
                         classes=["car", "motorcycle", "bus", "truck"])
    detector = OpenVINODetector(config, requests=2)
    with FileSource(highway_video) as source:
        image = next(f for f in source.frames() if f.index == 150).image
    taller = np.vstack([image, np.full((20, 1280, 3), 114, np.uint8)])  # grey at the bottom
    cars, again_taller, cars_again = (detector.detect(i) for i in (image, taller, image))
    assert len(cars) >= 3
    assert np.array_equal(cars.xyxy, cars_again.xyxy)
    fresh = OpenVINODetector(config, requests=2).detect(taller)  # its first use of a request
    assert len(fresh) and np.array_equal(again_taller.xyxy, fresh.xyxy)


def test_a_model_that_cannot_run_at_the_streams_input_fails_at_start_up(detector_model,
                                                                       monkeypatch):
    """`prepare` runs the model once for the stream's input before any frame: a runtime
    failure there is a ModelError naming the model and the input size, not a traceback."""
    detector = OpenVINODetector(ModelConfig(path=str(detector_model)))

    class Broken:
        def __init__(self, request):
            self._request = request

        def get_input_tensor(self):
            return self._request.get_input_tensor()

        def infer(self):
            raise RuntimeError("Exception from src/inference: out of memory\ndetails")

    compiled = detector._compiled_for((384, 640))
    monkeypatch.setattr(detector, "_compiled_for", lambda hw, hint="THROUGHPUT": type(
        "C", (), {"create_infer_request": lambda self: Broken(compiled.create_infer_request())
                  })())
    with pytest.raises(ModelError, match=r"cannot run model .* at 640x384 \(the input of "
                                         r"1280x720 frames\): Exception from src/inference: "
                                         r"out of memory$"):
        detector.prepare((1280, 720))


def test_the_letterbox_is_worked_out_once_per_frame_size(detector_model):
    detector = OpenVINODetector(ModelConfig(path=str(detector_model)))
    first = detector._placement((1280, 720), None)
    assert detector._placement((1280, 720), None) is first
    assert first.input_hw == (384, 640) and (first.left, first.top) == (0, 12)
    assert detector._placement((1280, 720), 320).input_hw == (192, 320)
