"""Shared fixtures: where the real models and footage live (../shared or $LANEWATCH_ASSETS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("LANEWATCH_ASSETS", REPO.parent / "shared")).resolve()
CONFIGS = REPO / "configs"


def asset(relative: str) -> Path:
    """Path of a shared asset; fails (never skips) when it is missing."""
    path = ASSETS / relative
    if not path.exists():
        pytest.fail(f"missing test asset {path}: set LANEWATCH_ASSETS to the shared folder")
    return path


@pytest.fixture(scope="session")
def detector_model() -> Path:
    return asset("models/yolo11n_int8_openvino_model")


@pytest.fixture(scope="session")
def segment_model() -> Path:
    return asset("models/yolo11n-seg_int8_openvino_model")


@pytest.fixture(scope="session")
def highway_video() -> Path:
    return asset("media/highway.mp4")


@pytest.fixture(scope="session")
def pedestrians_video() -> Path:
    return asset("media/pedestrians.mp4")
