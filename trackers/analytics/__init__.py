"""lanewatch.trackers.analytics.lane_analytics: Lane analytics: lanes and geometry, line crossings,
counts, occupancy and congestion, dwell, turning movements, wrong-way, ground plane and speeds.
"""
