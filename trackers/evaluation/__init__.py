"""lanewatch.trackers.evaluation: Tracker evaluation: MOTChallenge data and metrics, the tracker
benchmark.
"""
