"""lanewatch.trackers: multi-object tracking, lane geometry and lane analytics."""
