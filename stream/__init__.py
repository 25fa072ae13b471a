"""lanewatch.stream: I/O and orchestration: sources, configuration, detection, the pipeline, the
service, cluster mode, benchmarks and the CLI (one sub-package per stage)."""
__version__ = "0.1.0"
