"""DetectionPolicy (trackers/detection_policy.py, issue 21 item 4): each rule, their order,
idempotence, and on the real model that a permissive detector plus the policy gives, frame
for frame, the boxes of the detector run with the policy's own settings, tiled frames too
(`lanewatch tune` relies on it); the config keys' checks."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.sinks.errors import ModelError
from lanewatch.stream.config.schema import DetectionSettings, ModelConfig
from lanewatch.stream.detect.detection_plan import DetectionPlan
from lanewatch.stream.detect.openvino_detector import OpenVINODetector
from lanewatch.stream.detect.policy_config import build_policy, permissive
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.detection_policy import DetectionPolicy, greedy_nms
from lanewatch.trackers.detections import Detections

PERSON, CAR, AIRPLANE, TRUCK, PHONE = 0, 2, 4, 7, 67
NAMES = {PERSON: "person", CAR: "car", AIRPLANE: "airplane", TRUCK: "truck",
         PHONE: "cell phone"}
A = [0, 0, 100, 100]
A2 = [2, 2, 102, 100]  # IoU with A about 0.94
B = [200, 0, 300, 100]  # apart from A
INSIDE_A = [5, 5, 95, 60]  # inside A: IoU 0.5, contained fully


def dets(rows: list[tuple[list[float], float, int]]) -> Detections:
    if not rows:
        return Detections.empty(NAMES)
    return Detections(xyxy=np.array([r[0] for r in rows], np.float32),
                      confidence=np.array([r[1] for r in rows], np.float32),
                      class_id=np.array([r[2] for r in rows], np.int32), class_names=NAMES)


def rows_of(d: Detections) -> list[tuple[list[float], float, int]]:
    return [(box, round(float(s), 4), int(c))
            for box, s, c in zip(d.xyxy.tolist(), d.confidence, d.class_id)]


# name: (policy, input rows, expected rows (box, score, class)), in input order.
CASES = {
    "nothing on keeps everything": (
        DetectionPolicy(), [(A, 0.5, CAR), (A2, 0.4, TRUCK)],
        [(A, 0.5, CAR), (A2, 0.4, TRUCK)]),
    "alias rewrites the class": (
        DetectionPolicy(aliases={PHONE: CAR, AIRPLANE: CAR}),
        [(A, 0.5, PHONE), (B, 0.4, AIRPLANE)], [(A, 0.5, CAR), (B, 0.4, CAR)]),
    "class filter": (
        DetectionPolicy(classes={CAR}), [(A, 0.5, CAR), (B, 0.9, PERSON)], [(A, 0.5, CAR)]),
    "aliases come before the filter": (
        DetectionPolicy(classes={CAR}, aliases={PHONE: CAR}), [(A, 0.5, PHONE)],
        [(A, 0.5, CAR)]),
    "global floor is strict": (
        DetectionPolicy(confidence=0.25), [(A, 0.25, CAR), (B, 0.26, CAR)], [(B, 0.26, CAR)]),
    "a class's floor below the global one": (
        DetectionPolicy(confidence=0.25, class_confidence={CAR: 0.18}),
        [(A, 0.2, CAR), (B, 0.2, TRUCK)], [(A, 0.2, CAR)]),
    "a class's floor above the global one": (
        DetectionPolicy(confidence=0.1, class_confidence={PERSON: 0.5}),
        [(A, 0.4, PERSON), (B, 0.4, CAR)], [(B, 0.4, CAR)]),
    "the floor of the counted class, after aliasing": (
        DetectionPolicy(class_confidence={CAR: 0.5}, aliases={PHONE: CAR}),
        [(A, 0.4, PHONE), (B, 0.6, PHONE)], [(B, 0.6, CAR)]),
    "class-aware by default: car and truck on one vehicle both stay": (
        DetectionPolicy(), [(A, 0.9, CAR), (A2, 0.6, TRUCK)],
        [(A, 0.9, CAR), (A2, 0.6, TRUCK)]),
    "agnostic suppression keeps the better of car and truck": (
        DetectionPolicy(agnostic_iou=0.7), [(A2, 0.6, TRUCK), (A, 0.9, CAR), (B, 0.3, TRUCK)],
        [(A, 0.9, CAR), (B, 0.3, TRUCK)]),
    "agnostic suppression after the floor: a dropped box suppresses nothing": (
        DetectionPolicy(agnostic_iou=0.7, class_confidence={TRUCK: 0.5, CAR: 0.1}),
        [(A2, 0.3, TRUCK), (A, 0.2, CAR)], [(A, 0.2, CAR)]),
    "agnostic suppression after the filter: another class suppresses nothing": (
        DetectionPolicy(classes={CAR}, agnostic_iou=0.7), [(A2, 0.9, PERSON), (A, 0.2, CAR)],
        [(A, 0.2, CAR)]),
    "contained box of the same class goes": (
        DetectionPolicy(suppress_contained=0.9), [(INSIDE_A, 0.5, CAR), (A, 0.8, CAR)],
        [(A, 0.8, CAR)]),
    "contained box of another class stays": (
        DetectionPolicy(suppress_contained=0.9), [(INSIDE_A, 0.5, TRUCK), (A, 0.8, CAR)],
        [(INSIDE_A, 0.5, TRUCK), (A, 0.8, CAR)]),
    "contained suppression sees the aliased class": (
        DetectionPolicy(suppress_contained=0.9, aliases={PHONE: CAR}),
        [(INSIDE_A, 0.5, PHONE), (A, 0.8, CAR)], [(A, 0.8, CAR)]),
    "a car seen as car and as cell phone is one car": (
        DetectionPolicy(aliases={PHONE: CAR}, alias_iou=0.7),
        [(A2, 0.3, PHONE), (A, 0.6, CAR), (B, 0.4, PHONE)], [(A, 0.6, CAR), (B, 0.4, CAR)]),
    "alias suppression stays inside the alias's class": (
        DetectionPolicy(aliases={PHONE: CAR}, alias_iou=0.7),
        [(A2, 0.3, TRUCK), (A, 0.6, PHONE)], [(A2, 0.3, TRUCK), (A, 0.6, CAR)]),
    "empty in, empty out": (DetectionPolicy(classes={CAR}, agnostic_iou=0.5), [], []),
}


@pytest.mark.parametrize("policy, given, expected", CASES.values(), ids=CASES.keys())
def test_each_rule_and_their_order(policy, given, expected):
    once = policy.apply(dets(given))
    assert rows_of(once) == rows_of(dets(expected))
    assert rows_of(policy.apply(once)) == rows_of(once)  # idempotent


@pytest.mark.parametrize("kwargs, message", [
    ({"aliases": {PHONE: CAR, CAR: TRUCK}}, "both aliased and alias targets"),
    ({"classes": {TRUCK}, "aliases": {PHONE: CAR}}, "not among the kept classes"),
    ({"confidence": 1.0}, "confidence must be in 0..1"),
    ({"class_confidence": {CAR: -0.1}}, r"class_confidence\[2\] must be in 0..1"),
    ({"agnostic_iou": 0.0}, "agnostic_iou must be in"),
])
def test_inconsistent_policies_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DetectionPolicy(**kwargs)


def test_policies_compare_and_hash_by_value():
    a = DetectionPolicy(classes={CAR}, class_confidence={CAR: 0.2}, aliases={PHONE: CAR})
    b = DetectionPolicy(classes=[CAR], class_confidence={CAR: 0.2}, aliases={PHONE: CAR})
    assert a == b and hash(a) == hash(b) and len({a, b, DetectionPolicy()}) == 2
    a.apply(dets([(A, 0.5, CAR)]))  # caches its class array: still equal
    assert a == b and hash(a) == hash(b)


def test_floor_and_detected_classes_are_what_a_detector_must_keep():
    policy = DetectionPolicy(classes={CAR, TRUCK}, confidence=0.25,
                             class_confidence={CAR: 0.18}, aliases={PHONE: CAR})
    assert policy.floor == pytest.approx(0.18)
    assert policy.detected_classes == {CAR, TRUCK, PHONE}
    assert DetectionPolicy().detected_classes is None


def test_idempotent_on_random_detections():
    rng = np.random.default_rng(7)
    classes = np.array([PERSON, CAR, AIRPLANE, TRUCK, PHONE])
    policies = [DetectionPolicy(agnostic_iou=0.5, suppress_contained=0.8),
                DetectionPolicy(classes={CAR, TRUCK}, confidence=0.2,
                                class_confidence={CAR: 0.1}, aliases={PHONE: CAR},
                                agnostic_iou=0.6, suppress_contained=0.9)]
    for _ in range(50):
        n = int(rng.integers(0, 40))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(5, 120, (n, 2))
        d = Detections(xyxy=np.hstack([xy, xy + wh]).astype(np.float32),
                       confidence=rng.uniform(0, 1, n).astype(np.float32),
                       class_id=rng.choice(classes, n).astype(np.int32), class_names=NAMES)
        for policy in policies:
            once = policy.apply(d)
            assert rows_of(policy.apply(once)) == rows_of(once)


@pytest.mark.parametrize("boxes, scores, threshold, kept", [
    ([A, A2, B], [0.9, 0.8, 0.7], 0.5, [0, 2]),
    ([A, A2], [0.8, 0.9], 0.5, [1]),
    ([A, A, A], [0.5, 0.5, 0.5], 0.5, [0]),  # ties: input order
    ([A, INSIDE_A], [0.9, 0.8], 0.5, [0, 1]),  # IoU exactly 0.5: not above, stays
    (np.zeros((0, 4)), [], 0.5, []),
])
def test_greedy_nms(boxes, scores, threshold, kept):
    assert greedy_nms(np.asarray(boxes, float), np.asarray(scores), threshold).tolist() == kept


def test_unknown_class_names_are_named_with_a_hint(detector_model):
    names = {0: "person", 2: "car", 7: "truck", 67: "cell phone"}
    config = ModelConfig(path=str(detector_model), class_aliases={"cell phon": "car"},
                         class_confidence={"cars": 0.2})
    with pytest.raises(ModelError) as err:
        build_policy(config, names)
    assert "model.class_confidence.cars: 'cars' (did you mean 'car'?) not among" in str(err.value)
    assert "model.class_aliases.cell phon: 'cell phon' (did you mean 'cell phone'?)" in \
        str(err.value)


# Settings the real-footage equivalence runs: each a policy the permissive run must reproduce.
SETTINGS = {
    "highway.yaml's": dict(confidence=0.1, classes=["car", "motorcycle", "bus", "truck"]),
    "per-class floors": dict(confidence=0.3, classes=["car", "truck", "bus"],
                             class_confidence={"car": 0.18, "truck": 0.45}),
    "aliases + agnostic": dict(confidence=0.2, classes=["car", "truck"], agnostic_nms=True,
                               class_aliases={"cell phone": "car", "airplane": "car"}),
    "all classes, agnostic": dict(confidence=0.25, agnostic_nms=True, suppress_contained=None),
}


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_permissive_detections_plus_policy_equal_the_detector_with_those_settings(
        detector_model, highway_video, pedestrians_video):
    frames = []
    for video, every in ((highway_video, 12), (pedestrians_video, 30)):
        with FileSource(video) as source:
            frames += [f.picture for f in source.frames() if f.index % every == 0]
    base = ModelConfig(path=str(detector_model))
    loose = OpenVINODetector(permissive(base))
    cached = [loose.detect(picture) for picture in frames]
    assert max(len(d) for d in cached) < 300  # under the detector's cap: nothing cut off
    # Tiled (2x1) highway frames: the permissive run's tiles joined for each policy.
    tiled = [p for p in frames if p.size == (1280, 720)][::4]
    plan = DetectionPlan(DetectionSettings(tiles=(2, 1)), None, (1280, 720))
    cached_tiles = [[loose.detect(crop) for crop in plan.crops(p)] for p in tiled]
    compared = 0
    for name, settings in SETTINGS.items():
        config = ModelConfig(path=str(detector_model), **settings)
        detector = OpenVINODetector(config)
        policy = build_policy(config, detector.class_names)
        for picture, raw in zip(frames, cached):
            direct = policy.apply(detector.detect(picture))
            replayed = policy.apply(raw)
            assert rows_of(replayed) == rows_of(direct), name
            assert rows_of(policy.apply(direct)) == rows_of(direct), name
            compared += len(direct)
        own_plan = DetectionPlan(DetectionSettings(tiles=(2, 1)), None, (1280, 720),
                                 config.iou, policy)
        for picture, parts in zip(tiled, cached_tiles):
            direct = policy.apply(own_plan.merge([detector.detect(c)
                                                  for c in own_plan.crops(picture)]))
            replayed = policy.apply(plan.merge(parts, policy))
            assert rows_of(replayed) == rows_of(direct), f"{name}, tiled"
    assert compared > 100  # the comparison saw real boxes


# name: (model: keys, fragments of check-config's error line). Each must exit with code 2.
BAD_MODEL = {
    "a threshold on a class not kept": (
        "classes: [car]\n  class_confidence: {bus: 0.2}",
        ["model.class_confidence: 'bus' is not in model.classes"]),
    "a threshold on an aliased class": (
        "class_aliases: {cell phone: car}\n  class_confidence: {cell phone: 0.2}",
        ["model.class_confidence: 'cell phone' is counted as 'car'",
         "set the minimum score on 'car'"]),
    "an alias to a class not kept": (
        "classes: [car]\n  class_aliases: {airplane: truck}",
        ["model.class_aliases: 'airplane' maps to 'truck', which is not in model.classes"]),
    "chained aliases": (
        "class_aliases: {airplane: truck, truck: car}",
        ["'airplane' maps to 'truck', which is itself aliased to 'car'"]),
    "a score out of range": (
        "class_confidence: {car: 1.5}", ["model.class_confidence.car", "less than 1"]),
    "an alias source the model lacks": (
        "class_aliases: {cell phon: car}",
        ["model.class_aliases.cell phon: 'cell phon' (did you mean 'cell phone'?) not among "
         "the model's classes"]),
    "an alias target the model lacks": (
        "classes: [car, trucks]\n  class_aliases: {bus: trucks}",
        ["model.classes: 'trucks' (did you mean 'truck'?)",
         "model.class_aliases.bus: 'trucks' (did you mean 'truck'?)"]),
    "a tile grid of one number": (
        "classes: [car]\nstreams_detection: {tiles: [2]}", ["tiles"]),
}


@pytest.mark.parametrize("model_keys, fragments", BAD_MODEL.values(), ids=BAD_MODEL.keys())
def test_check_config_names_the_key_of_a_bad_class_rule(tmp_path, capsys, detector_model,
                                                        model_keys, fragments):
    from lanewatch.stream.cli import main

    model_keys, _, detection = model_keys.partition("\nstreams_detection: ")
    path = tmp_path / "c.yaml"
    path.write_text(f"model:\n  path: {detector_model}\n  {model_keys}\nstreams:\n"
                    f"  - id: a\n    source: rtsp://example/s\n"
                    + (f"    detection: {detection}\n" if detection else ""))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err
    assert "Traceback" not in err


def test_check_config_accepts_the_robustness_keys(tmp_path, capsys, detector_model):
    from lanewatch.stream.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(f"model:\n  path: {detector_model}\n  classes: [car, truck]\n"
                    "  class_confidence: {car: 0.18, truck: 0.4}\n"
                    "  class_aliases: {cell phone: car, airplane: car}\n  agnostic_nms: true\n"
                    "streams:\n  - id: a\n    source: rtsp://example/s\n"
                    "    detection: {tiles: [2, 1], tile_overlap: 0.25, imgsz: 960}\n")
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
