"""lanewatch.trackers: pure algorithms: detections, multi-object tracking (bytetrack/), lane
analytics (analytics/) and their evaluation (evaluation/); imports nothing from sinks or stream."""
