"""lanewatch.stream: sources, detector adapters, configuration, the pipeline and the CLI."""
__version__ = "0.1.0"
