"""The `DetectionPolicy` (trackers/detection_policy.py) of a `model:` section: class names
resolved against the model's own, with an error naming the key and the closest class for a
name the model does not have.

The detectors build it to know their early filter (the classes and the lowest score the policy
can keep: `DetectionPolicy.detected_classes`, `.floor`); the stream processor builds it to
apply it to every detected frame.
"""

from __future__ import annotations

from lanewatch.sinks.errors import ModelError
from lanewatch.stream.config.checks import class_name_problems
from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.trackers.detection_policy import DetectionPolicy


def build_policy(model: ModelConfig, class_names: dict[int, str],
                 agnostic: bool | None = None) -> DetectionPolicy:
    """The policy of `model` for a model with these classes (id -> name); `agnostic`: a
    stream's own `detection.agnostic_nms` (None: the model's). ModelError, one line per
    unknown class name, when the config names a class the model does not have."""
    problems = class_name_problems(model.classes, model.class_confidence, model.class_aliases,
                                   class_names)
    if problems:
        raise ModelError("; ".join(problems))
    ids = {name: i for i, name in sorted(class_names.items(), reverse=True)}  # first id wins
    return DetectionPolicy(
        classes=None if model.classes is None else frozenset(ids[c] for c in model.classes),
        confidence=model.confidence,
        class_confidence={ids[c]: v for c, v in model.class_confidence.items()},
        aliases={ids[s]: ids[t] for s, t in model.class_aliases.items()},
        alias_iou=model.iou if model.class_aliases else None,
        agnostic_iou=model.iou if (model.agnostic_nms if agnostic is None else agnostic)
        else None,
        suppress_contained=model.suppress_contained,
    )


def permissive(model: ModelConfig, confidence: float = 0.01) -> ModelConfig:
    """`model` with every class kept at a low score and no policy rule on: a detector built
    from it finds a superset of what any policy at or above `confidence` keeps (`lanewatch
    tune` runs it once and tries policies on its cached detections)."""
    return model.model_copy(update={"confidence": confidence, "classes": None,
                                    "class_confidence": {}, "class_aliases": {},
                                    "agnostic_nms": False, "suppress_contained": None})


def model_class_problems(model: ModelConfig) -> list[str]:
    """check-config: the `model:` section's class names the model does not have, read from
    an export's metadata without loading the model (nothing for a .pt file: the names are in
    the checkpoint, checked when the model loads)."""
    found = exported_model_files(model.path)
    names = (found[1].get("names") or {}) if found else {}
    if not names:
        return []
    names = {int(k): str(v) for k, v in names.items()}
    return class_name_problems(model.classes, model.class_confidence, model.class_aliases,
                               names)
