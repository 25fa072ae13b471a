"""lanewatch.stream.sources.file_source: Video sources: files (deterministic, every frame) and live
cameras (reconnects, watchdog, bounded backlog), and the check of a source URL.
"""
