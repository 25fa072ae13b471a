"""Frame pixels: decoder planes kept until BGR is needed, and the model's input made from them
close to converting first (sinks/frames.py)."""

from __future__ import annotations

import pickle

import av
import cv2
import numpy as np
import pytest

from lanewatch.sinks.frames import Frame, Picture, as_picture
from lanewatch.stream.detect.yolo_io import letterbox
from lanewatch.stream.sources.file_source import FileSource

from videos import write_video


def scene(width: int = 1280, height: int = 720) -> np.ndarray:
    """A BGR test picture with smooth gradients, hard edges and saturated colours."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)],
                     axis=-1).astype(np.uint8)
    cv2.rectangle(image, (width // 5, height // 4), (width // 2, height // 2), (0, 0, 255), -1)
    cv2.circle(image, (3 * width // 4, height // 2), height // 5, (255, 255, 0), -1)
    cv2.putText(image, "lanewatch", (width // 10, 9 * height // 10), cv2.FONT_HERSHEY_SIMPLEX,
                height / 200, (255, 255, 255), 3)
    return image


def i420_of(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


LINEAR, AREA = cv2.INTER_LINEAR, cv2.INTER_AREA


@pytest.mark.parametrize("size, to, interpolation", [
    ((1280, 720), (640, 360), LINEAR),  # the 16:9 letterbox of a 640 model: exactly half
    ((1280, 720), (416, 234), LINEAR),
    ((1920, 1080), (640, 360), LINEAR),
    ((1280, 720), (960, 540), LINEAR),
    ((640, 480), (320, 240), LINEAR),
    ((1280, 720), (639, 359), LINEAR),  # odd sizes too
    ((1280, 720), (640, 360), AREA),  # the annotator's downscale (video_width, dashboards)
    ((1920, 1080), (960, 540), AREA),
    ((1280, 720), (800, 450), AREA),
])
def test_smaller_pictures_from_planes_match_converting_first(size, to, interpolation):
    planes = i420_of(scene(*size))
    expected = cv2.resize(cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420), to,
                          interpolation=interpolation).astype(int)
    picture = Picture(i420=planes)
    got = picture.resized(*to, interpolation)
    assert got.shape == (to[1], to[0], 3) and got.dtype == np.uint8
    difference = np.abs(got.astype(int) - expected)
    assert np.percentile(difference, 99) <= 2, "more than 1% of values off by over 2 levels"
    assert difference.mean() < 0.6
    assert picture._bgr is None, "a resize must not convert the full frame"


@pytest.mark.parametrize("to", [(1280, 720), (1281, 720), (1280, 800)])
def test_full_size_and_bigger_targets_convert_first(to):
    planes = i420_of(scene())
    picture = Picture(i420=planes)
    full = cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420)
    expected = full if to == (1280, 720) else cv2.resize(full, to,
                                                           interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(picture.resized(*to), expected)
    assert picture.bgr is picture.bgr  # converted once, then cached


def test_drawing_never_changes_the_picture():
    planes = i420_of(scene(64, 48))
    picture = Picture(i420=planes)
    canvas = picture.drawable()
    canvas[:] = 0
    assert picture._bgr is None  # converted for the canvas only
    assert picture.bgr.any()
    again = picture.drawable()
    assert again is not picture.bgr and np.array_equal(again, picture.bgr)


def test_a_bgr_picture_is_resized_and_cropped_as_is():
    image = scene(320, 240)
    picture = as_picture(image)
    assert picture.bgr is image and picture.size == (320, 240)
    assert as_picture(picture) is picture
    assert np.array_equal(picture.resized(160, 120),
                          cv2.resize(image, (160, 120), interpolation=cv2.INTER_LINEAR))
    crop = picture.cropped(10, 20, 110, 70)
    assert crop.size == (100, 50) and np.array_equal(crop.bgr, image[20:70, 10:110])


@pytest.mark.parametrize("corners, from_planes", [
    ((10, 20, 110, 70), True),
    ((0, 0, 320, 240), True),
    ((300, 2, 320, 240), True),
    ((11, 20, 110, 70), False),  # an odd corner: cut from the converted frame
    ((10, 20, 110, 71), False),
])
def test_a_crop_of_planes_is_the_crop_of_the_converted_frame(corners, from_planes):
    planes = i420_of(scene(320, 240))
    picture = Picture(i420=planes)
    x1, y1, x2, y2 = corners
    crop = picture.cropped(*corners)
    assert crop.size == (x2 - x1, y2 - y1)
    assert (picture._bgr is None) == from_planes, "an even crop must not convert the frame"
    assert (crop._planes is not None) == from_planes
    expected = cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420)[y1:y2, x1:x2]
    assert np.array_equal(crop.bgr, expected)


@pytest.mark.parametrize("fmt, size, planes_kept", [
    ("yuv420p", (320, 240), True),
    ("yuv420p", (321, 241), False),   # odd sizes: FFmpeg converts
    ("yuvj420p", (320, 240), False),  # full range: FFmpeg converts with the right matrix
    ("gray", (320, 240), False),
    ("rgb24", (320, 240), False),
])
def test_decoded_frames_keep_planes_only_when_opencv_converts_them_alike(fmt, size,
                                                                          planes_kept):
    bgr = scene(*size)
    decoded = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=fmt)
    picture = Picture.from_video_frame(decoded)
    assert picture.size == size
    assert (picture._bgr is None) == planes_kept
    reference = decoded.to_ndarray(format="bgr24").astype(int)
    assert np.abs(picture.bgr.astype(int) - reference).mean() < 2.5  # same colours


def test_a_picture_needs_exactly_one_kind_of_pixels():
    with pytest.raises(ValueError, match="either BGR pixels or I420 planes"):
        Picture()
    with pytest.raises(ValueError, match="either BGR pixels or I420 planes"):
        Picture(bgr=scene(64, 64), i420=i420_of(scene(64, 64)))


def test_frames_pickle_with_their_pixels():
    """Cluster actors send frames to the gateway."""
    frame = Frame("cam", 3, 0.1, 0.0, Picture(i420=i420_of(scene(64, 48))))
    copy = pickle.loads(pickle.dumps(frame))
    assert copy.size == (64, 48) and np.array_equal(copy.image, frame.image)


@pytest.mark.integration
def test_reviewing_a_file_never_converts_whole_frames_for_the_model(highway_video):
    """Counting only: the letterbox comes from the planes; BGR waits for someone to draw."""
    with FileSource(highway_video) as source:
        frame = next(iter(source.frames()))
    assert frame.picture._bgr is None
    boxed, gain, pad = letterbox(frame.picture, (640, 640), 32, minimal=False)
    assert boxed.shape == (640, 640, 3) and gain == 0.5 and pad == (0, 140)
    assert frame.picture._bgr is None
    reference, _, _ = letterbox(frame.image, (640, 640), 32, minimal=False)
    assert np.percentile(np.abs(boxed.astype(int) - reference.astype(int)), 99) <= 2


@pytest.mark.integration
def test_decoded_planes_are_views_that_stay_valid(highway_video):
    """Frames keep views of the decoder's own buffers (no copy per frame): holding many of
    them while decoding goes on, each still has its own pixels, as a copying decode gives."""
    with FileSource(highway_video) as source:
        pictures = [f.picture for f, _ in zip(source.frames(), range(90))]
    assert all(p._i420 is None and p._bgr is None for p in pictures), "copied or converted"
    container = av.open(str(highway_video))
    copies = [f.to_ndarray() for f, _ in zip(container.decode(video=0), range(90))]
    container.close()
    for index, (picture, copy) in enumerate(zip(pictures, copies)):
        assert np.array_equal(picture._contiguous_i420(), copy), f"frame {index} changed"


@pytest.mark.parametrize("size", [(330, 242), (1000, 562), (64, 48)])
def test_planes_of_padded_decoder_rows_are_the_frame(tmp_path, size):
    """The decoder pads its rows to an alignment (`line_size` > width for these widths): the
    views cut the padding off, and every path from them (model input, crop, BGR) gives what
    a copying conversion gives."""
    video = write_video(tmp_path / "v.mp4", frames=5, size=size)
    container = av.open(str(video))
    decoded = next(iter(container.decode(video=0)))
    picture = Picture.from_video_frame(decoded)
    copy = decoded.to_ndarray()
    assert picture._i420 is None and picture.size == size
    assert np.array_equal(picture._contiguous_i420(), copy)
    w, h = size
    from_copy = Picture(i420=copy)
    assert np.array_equal(picture.resized(w // 2, h // 2), from_copy.resized(w // 2, h // 2))
    assert np.array_equal(picture.bgr, cv2.cvtColor(copy, cv2.COLOR_YUV2BGR_I420))
    crop = Picture.from_video_frame(decoded).cropped(2, 4, w - 6, h - 2)
    assert np.array_equal(crop.bgr, picture.bgr[4:h - 2, 2:w - 6])
    container.close()
