"""The annotated-video writer: every frame written and readable back, odd sizes padded, and the
encoder choice (x264, or a hardware encoder with a fall-back to x264 where the machine has
none: this one has neither an NVIDIA GPU nor Intel Quick Sync)."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from lanewatch.sinks.video import VideoWriter, choose_encoder, encoder_options, x264_threads


def frames(n: int, width: int, height: int) -> list[np.ndarray]:
    """A bright square moving across a dark frame."""
    out = []
    for i in range(n):
        image = np.full((height, width, 3), 30, np.uint8)
        image[20:60, 10 + 4 * i:50 + 4 * i] = (40, 200, 240)
        out.append(image)
    return out


def read_back(path) -> tuple[int, tuple[int, int], str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f for f in container.decode(stream)]
        return len(decoded), (stream.width, stream.height), stream.codec_context.name


@pytest.mark.parametrize("encoder", ["libx264", "auto", "h264_nvenc", "h264_qsv"])
def test_every_frame_is_written_whatever_encoder_was_asked_for(tmp_path, encoder, caplog):
    caplog.set_level(logging.INFO, logger="lanewatch.sinks.video")
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, 29.97, 321, 181, encoder=encoder)  # odd: padded to even
    for image in frames(30, 321, 181):
        writer.write(image)
    writer.close()
    assert writer.codec == "libx264"  # no hardware encoder on this machine
    assert read_back(path) == (30, (322, 182), "h264")
    if encoder in ("h264_nvenc", "h264_qsv"):  # asked for by name: a warning says why not
        warning = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warning and f"{encoder} cannot be used on this machine" in warning[0].message
        assert "encoding with libx264 on the CPU instead" in warning[0].message


@pytest.mark.parametrize("codec, crf, preset, expected", [
    ("libx264", 23, "superfast", {"crf": "23", "preset": "superfast",
                                  "threads": str(x264_threads())}),
    ("h264_nvenc", 28, "superfast", {"preset": "p2", "rc": "vbr", "cq": "28"}),
    ("h264_qsv", 20, "ultrafast", {"preset": "veryfast", "global_quality": "20"}),
])
def test_encoder_options(codec, crf, preset, expected):
    assert encoder_options(codec, crf, preset) == expected


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (4, 1), (6, 1), (8, 2), (16, 4),
                                            (64, 16)])
def test_x264_gets_a_quarter_of_the_cores(cores, threads):
    assert x264_threads(cores) == threads


def test_libx264_is_never_probed():
    assert choose_encoder("libx264", 640, 360, Fraction(30)) == "libx264"
