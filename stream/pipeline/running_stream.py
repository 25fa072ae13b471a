"""`RunningStream`: what `lanewatch serve` needs from one of its streams, wherever it runs.

Two classes implement it: `StreamRunner` (stream/pipeline/runner.py), the stream live in this
process, and `RemoteStream` (stream/cluster/remote.py), the gateway's side of a stream that
runs in a Ray actor. `Service`, `Api` and `StreamAdmin` are typed against this protocol and
use nothing else of a stream, so they are the same in both modes; only `Service._runner`
chooses the class. tests/test_running_stream.py checks that both classes have every member
with the same signature and types.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.sources.live import StreamState
from lanewatch.trackers.analytics.lanes import Lane


class RunningStream(Protocol):
    """One stream of the service: started once, stopped once, read by the API and the pushes
    from any thread meanwhile (every read answers at once; none waits for a frame)."""

    @property
    def stream(self) -> StreamConfig:
        """The stream's configuration (its id, source, lanes as configured)."""
        ...

    @property
    def state(self) -> StreamState:
        """Where the stream is in its life: starting, running, reconnecting, failed, stopped."""
        ...

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the stream's frames; None until the first frame arrived."""
        ...

    @property
    def lanes(self) -> tuple[Lane, ...] | None:
        """The stream's lanes in pixels of its frames; None until the frame size is known."""
        ...

    def start(self) -> Self:
        """Start the stream's threads (or actor) and return at once, with the stream itself."""
        ...

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the stream, its crossings stored, waiting `timeout` s at most in all. True when
        it has stopped; False when it is still stopping (e.g. a camera hanging in a read):
        it ends on its own and records nothing more, but a new run of the same stream must
        not start yet."""
        ...

    def status(self) -> dict[str, Any]:
        """The stream's state for the API and the stats push (no credentials): id, source,
        state, error, frame counts, frame size, fps, latency percentiles, ..."""
        ...

    def latest_image(self) -> np.ndarray | None:
        """The last processed frame (BGR), for snapshots; None before the first. May block
        briefly (a cluster stream asks its actor): call it off the event loop."""
        ...

    def lane_snapshot(self) -> list[dict[str, Any]]:
        """Per lane: occupancy, queue, congestion, longest stay, interval and all-time counts
        ([] before the first frame)."""
        ...

    def movement_snapshot(self) -> list[dict[str, Any]]:
        """Cumulative turning movements per movement and class ([] without `turning:`)."""
        ...
