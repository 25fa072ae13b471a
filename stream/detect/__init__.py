"""lanewatch.stream.detect: Detection: the detector protocol and its backends (OpenVINO Runtime,
Ultralytics), model-input reshaping, the detection plan (region, size, cadence) and batching
across streams.
"""
