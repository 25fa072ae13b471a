"""The configuration's schema: pydantic models in which unknown keys are errors.

Loading a file (YAML, `${ENV}` substitution, relative paths) is in `loading.py`; checks that
need more than one field at a time are in `checks.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.checks import (
    alias_problems,
    class_confidence_problems,
    coordinate_problems,
    non_finite,
)
from lanewatch.stream.sources.live import SourceSettings
from lanewatch.trackers.analytics.ground import CalibrationSpec
from lanewatch.trackers.analytics.lanes import CountingSettings, LaneSpec
from lanewatch.trackers.analytics.movements import TurningSettings
from lanewatch.trackers.analytics.traffic_stats import ReportSettings
from lanewatch.trackers.bytetrack.tracker import ByteTrackSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _multiple_of_stride(imgsz: int | None) -> int | None:
    """A network input size must be a multiple of the model stride."""
    if imgsz is not None and imgsz % 32:
        raise ValueError(f"must be a multiple of 32 (the model stride), got {imgsz}")
    return imgsz


class ModelConfig(_Strict):
    """The detector (`model:` section)."""

    path: str = Field(description="model file or directory: .pt, .onnx, *_openvino_model/, .engine")
    task: Literal["detect", "segment"] = Field("detect", description="detection or instance masks")
    imgsz: int = Field(640, ge=32, le=4096, description="network input size, multiple of 32")
    confidence: float = Field(0.1, gt=0, lt=1, description="minimum detection score")
    iou: float = Field(0.7, gt=0, le=1, description="non-maximum suppression IoU")
    suppress_contained: float | None = Field(
        0.9, gt=0, le=1,
        description="drop a box when this fraction of it lies inside a better same-class box "
        "(partial duplicates of one object); null disables",
    )
    classes: list[str] | None = Field(None, description="class names to keep (default: all)")
    class_aliases: dict[str, str] = Field(
        default_factory=dict, max_length=1000,
        description="model class -> the class it is counted as, e.g. {cell phone: car, "
        "airplane: car} when the model mislabels vehicles seen from above; both must be the "
        "model's classes, a target must be in `classes` when that is given; the sources are "
        "detected even when not in `classes`")
    class_confidence: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict, max_length=1000,
        description="per-class minimum score, replacing `confidence` for that class (lower "
        "or higher), e.g. {car: 0.18, person: 0.4}; the class as counted (after "
        "class_aliases); the model runs at the lowest of these and `confidence`")
    agnostic_nms: bool = Field(
        False, description="class-agnostic suppression across the kept classes at `iou`: "
        "one vehicle boxed as car and as truck gives one box (the better scored), so one "
        "track; off: suppression within each class only, as Ultralytics")
    device: str = Field("cpu", description="cpu, cuda:0, intel:gpu ... (as Ultralytics)")
    half: bool = Field(False, description="FP16 inference where supported")
    backend: Literal["auto", "openvino", "ultralytics"] = Field(
        "auto", description="openvino: exported OpenVINO/ONNX models run directly, several "
        "frames in flight; ultralytics: every format; auto: openvino where it can")
    rect: bool = Field(
        True, description="openvino: a fixed-size export runs at the frame's aspect ratio "
        "(640x384 for 16:9 instead of 640x640: 40% less work); false pads every frame to the "
        "export's size, as Ultralytics does")
    requests: int | None = Field(
        None, ge=1, le=8, description="inferences run side by side (openvino; default: the "
        "runtime's optimum for the device); process queues twice as many")
    batch_size: int = Field(
        1, ge=1, le=64, description="serve: frames of different streams inferred together "
        "(dynamic batching; 1: each stream calls the model itself)")
    batch_timeout_ms: float = Field(
        5.0, ge=0, le=1000, description="how long a batch waits for more frames after its "
        "first")

    _stride = field_validator("imgsz")(_multiple_of_stride)

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("must not be empty (omit it to keep every class)")
            if len(set(v)) != len(v):
                raise ValueError("lists a class twice")
        return v

    @field_validator("class_aliases")
    @classmethod
    def _aliases(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        problems = alias_problems(info.data.get("classes"), v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("class_confidence")
    @classmethod
    def _class_floors(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        problems = class_confidence_problems(info.data.get("classes"),
                                             info.data.get("class_aliases") or {}, v)
        if problems:
            raise ValueError("; ".join(problems))
        return v


class DetectionSettings(_Strict):
    """How much of a stream the model sees (`streams[].detection:`). Each option trades a
    little accuracy for more cameras per box; the defaults give the model every full frame."""

    every_nth_frame: int = Field(
        1, ge=1, le=30, description="run the model on every Nth frame; the tracker predicts "
        "the frames between, so lanes still see every frame (serve: the smallest cadence)")
    adaptive: bool = Field(
        True, description="serve: when the box cannot run the model on every Nth frame, "
        "raise N (evenly spaced, shared fairly by the streams) instead of falling behind; "
        "false: exactly every_nth_frame, and a stream over capacity drops frames")
    max_gap_s: float = Field(
        0.34, gt=0, le=10, description="the exactness limit: the longest time between two "
        "detections at which this camera's counts stay exact (measured on highway.mp4: 10 "
        "frames of 29.97 frames/s; docs/performance.md gives the rule for other cameras); a "
        "live stream beyond it reports counting_reliable: false")
    region: Literal["full", "lanes"] | list[float] = Field(
        "full", description="what the model sees: the full frame, `lanes` (the bounding box "
        "of the stream's lanes plus region_margin) or [x1, y1, x2, y2] in stream coordinates")
    region_margin: float = Field(
        0.05, ge=0, le=1, description="margin added around the lanes' bounding box, as a "
        "fraction of the frame's width and height (vehicles are tracked before they enter)")
    imgsz: int | None = Field(
        None, ge=32, le=4096, description="network input size for this stream (default: "
        "model.imgsz); larger than model.imgsz upscales the region for small, distant "
        "vehicles (a fixed-size OpenVINO export is refitted to it, `model.rect`)")
    tiles: tuple[Annotated[int, Field(ge=1, le=8)], Annotated[int, Field(ge=1, le=8)]] = Field(
        (1, 1), description="[columns, rows]: the region cut into overlapping tiles, each "
        "inferred at imgsz and merged back (seams joined), for small or distant vehicles; "
        "each tile costs one inference (`lanewatch bench` prints the cost)")
    tile_overlap: float = Field(
        0.2, ge=0, le=0.5, description="overlap of neighbouring tiles, as a fraction of a "
        "tile's width or height: make it at least a vehicle's length at the seam")
    agnostic_nms: bool | None = Field(
        None, description="class-agnostic suppression for this stream (default: "
        "model.agnostic_nms): one vehicle boxed as car and as truck gives one box")

    @field_validator("region")
    @classmethod
    def _box(cls, v: str | list[float]) -> str | list[float]:
        if isinstance(v, list):
            if len(v) != 4:
                raise ValueError(f"must be [x1, y1, x2, y2], got {len(v)} numbers")
            x1, y1, x2, y2 = v
            if x1 >= x2 or y1 >= y2 or min(v) < 0:
                raise ValueError(f"[x1, y1, x2, y2] needs 0 <= x1 < x2 and 0 <= y1 < y2, got {v}")
        return v

    _stride = field_validator("imgsz")(_multiple_of_stride)


class StreamConfig(_Strict):
    """One video stream and its lanes."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64,
                    description="unique name: 1 to 64 letters, digits, _.-")
    source: str = Field(description="file path, rtsp:// URL, ...")
    coordinates: Literal["pixels", "normalized"] = Field(
        "pixels", description="lane points in pixels or as fractions 0..1 of the frame"
    )
    lanes: list[LaneSpec] = Field(default_factory=list)
    source_options: SourceSettings = Field(default_factory=SourceSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    turning: TurningSettings | None = Field(
        None, description="zones and named movements for turning-movement counts")
    calibration: CalibrationSpec | None = Field(
        None, description="ground-plane points for speeds and distances in metres")
    # Not a config key: the source as posted through the API, `${ENV}` references kept, which
    # the stream registry stores instead of their values (stream_registry.py).
    _source_as_written: str | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        problem = non_finite(data) if isinstance(data, dict) else None
        if problem is not None:
            raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _points_in_range(self) -> StreamConfig:
        problems = coordinate_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("lanes")
    @classmethod
    def _unique_lanes(cls, v: list[LaneSpec]) -> list[LaneSpec]:
        names = [lane.name for lane in v]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"lane names must be unique; repeated: {', '.join(duplicates)}")
        return v

    @model_validator(mode="after")
    def _zone_names_differ_from_lanes(self) -> StreamConfig:
        if self.turning is not None:
            lanes = {lane.name for lane in self.lanes}
            shared = sorted({z.name for z in self.turning.zones} & lanes)
            if shared:
                raise ValueError(f"turning zones and lanes share names ({', '.join(shared)}); "
                                 "dwell reports key both by name, rename one")
        return self


class OutputConfig(_Strict):
    """What `lanewatch process` writes and draws (`output:` section)."""

    video: bool = Field(True, description="write annotated.mp4")
    video_crf: int = Field(23, ge=0, le=51, description="H.264 quality (lower is better)")
    video_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = (
        Field("superfast", description="x264 speed/size trade-off: faster presets leave more "
              "CPU to the model, slower ones make smaller files"))
    video_encoder: Literal["libx264", "auto", "h264_nvenc", "h264_qsv"] = Field(
        "libx264", description="H.264 encoder: libx264 (CPU), h264_nvenc (NVIDIA), h264_qsv "
        "(Intel Quick Sync), or auto (the first hardware one this machine has, else libx264); "
        "a hardware encoder that cannot open falls back to libx264")
    video_width: int | None = Field(
        None, ge=64, le=7680, description="annotated video width in pixels (drawn at that "
        "size; smaller is faster to draw and encode); default: the source's width")
    trail_seconds: float = Field(1.5, ge=0, le=10, description="length of motion trails")
    draw_masks: bool = Field(True, description="draw instance masks when the model segments")
    speed_labels: bool = Field(
        False, description="draw each vehicle's spot speed (km/h) beside its box once it "
        "crossed a counting line (streams with a `calibration:` only; others have no speeds)")


class ServerConfig(_Strict):
    """The live service's HTTP/WebSocket server (`server:` section, used by `serve`)."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: all)")
    port: int = Field(8080, ge=0, le=65535, description="one port: API, /ws, /metrics, health")
    auth_token: str | None = Field(
        None, min_length=8, description="bearer token for /ws and /api (use ${ENV_VAR})")
    protect_metrics: bool = Field(False, description="/metrics needs the token too")
    protect_health: bool = Field(False, description="/healthz and /readyz need the token too")
    max_clients: int = Field(100, ge=1, description="WebSocket clients at once")
    client_queue: int = Field(64, ge=4, description="messages queued per client, then oldest drop")
    slow_client_drops: int = Field(
        200, ge=1, description="a client that lost this many messages in a row is cut off")
    max_message_bytes: int = Field(65536, ge=1024, description="largest client message")
    counts_interval_s: float = Field(1.0, gt=0, description="counts/stats push period")
    allowed_origins: list[str] = Field(
        default_factory=list, description="other web origins (https://host[:port]) whose pages "
        "may change streams and open /ws, e.g. a dashboard behind a proxy; the service's own "
        "origin is always allowed")


class StoreConfig(_Strict):
    """Where live counts persist (`store:` section)."""

    path: str = Field("lanewatch.db", description="SQLite file (relative: to the config file)")
    url: str | None = Field(
        None, description="PostgreSQL database instead of the SQLite file, shared by a cluster: "
                          "postgresql://user:${PGPASSWORD}@host:5432/lanewatch")

    @field_validator("url")
    @classmethod
    def _postgres(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^postgres(ql)?://", url):
            raise ValueError("must be a PostgreSQL URL, postgresql://user:password@host:port/"
                             "database (for a SQLite file use store.path)")
        return url

    @property
    def target(self) -> str:
        """What the store opens: the PostgreSQL URL if set, else the SQLite file."""
        return self.url or self.path


class ClusterConfig(_Strict):
    """Each stream's pipeline as a Ray actor, `serve` as the gateway (`cluster:` section)."""

    enabled: bool = Field(False, description="run the streams on a Ray cluster")
    address: str | None = Field(
        None, description="Ray cluster to join: auto (the one this machine belongs to) or "
                          "ray://head:10001; unset: start a Ray instance in this process")
    num_cpus: float = Field(1.0, gt=0, description="CPUs reserved for each stream's actor")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per stream actor (0.25: four per GPU)")
    max_restarts: int = Field(-1, ge=-1,
                              description="restarts of a stream actor that died (-1: always)")


class Config(_Strict):
    """The whole configuration file."""

    model: ModelConfig
    tracker: ByteTrackSettings = Field(default_factory=ByteTrackSettings)
    counting: CountingSettings = Field(default_factory=CountingSettings)
    output: OutputConfig = Field(default_factory=OutputConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    streams: list[StreamConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):  # streams[] check their own, naming the stream
            problem = non_finite({k: v for k, v in data.items() if k != "streams"})
            if problem is not None:
                raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _shared_store_for_clusters(self) -> Config:
        if self.cluster.enabled and self.store.url is None:
            raise ValueError("cluster.enabled needs a store every node reaches: set store.url "
                             "to a PostgreSQL database (postgresql://...); a SQLite file is "
                             "local to one machine")
        return self

    @model_validator(mode="after")
    def _report_classes_are_counted(self) -> Config:
        counted = self.model.classes
        if counted is not None:
            counted = set(counted) | set(self.model.class_aliases.values())
            unknown = sorted(self.reports.model_classes() - counted)
            if unknown:
                raise ValueError(f"reports: {', '.join(unknown)} not among the counted classes "
                                 f"(model.classes: {', '.join(self.model.classes)}); add them "
                                 "there or remove them here")
        return self

    @model_validator(mode="after")
    def _unique_streams(self) -> Config:
        ids = [s.id for s in self.streams]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"stream ids must be unique; repeated: {', '.join(duplicates)}")
        return self

    def stream(self, stream_id: str | None) -> StreamConfig:
        """The stream with this id, or the only stream when `stream_id` is None."""
        if stream_id is None:
            if len(self.streams) > 1:
                ids = ", ".join(s.id for s in self.streams)
                raise ConfigError(f"the config has several streams ({ids}); pick one with --stream")
            return self.streams[0]
        for s in self.streams:
            if s.id == stream_id:
                return s
        ids = ", ".join(s.id for s in self.streams)
        raise ConfigError(f"no stream '{stream_id}' in the config (streams: {ids})")
