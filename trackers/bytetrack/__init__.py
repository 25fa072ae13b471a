"""lanewatch.trackers.bytetrack.tracker: ByteTrack: the tracker, its Kalman filter, association and
compiled (Numba) kernels.
"""
