"""lanewatch.trackers.evaluation: Tracker evaluation: MOTChallenge data and metrics, the tracker
benchmark; count validation: automatic counts matched to a manual count, and their metrics.
"""
