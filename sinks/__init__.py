"""lanewatch.sinks: annotation, video writing and count reports."""
