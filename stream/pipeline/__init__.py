"""lanewatch.stream.pipeline.processor: The per-stream pipeline: the frame processor (detect,
track, analytics), the review driver (`lanewatch process`), the live runner, its cadence and the
capacity governor.
"""
