"""lanewatch.stream.bench.end_to_end: `lanewatch bench`: end-to-end speed against the model alone,
many streams on one box, Ultralytics' counter for comparison.
"""
