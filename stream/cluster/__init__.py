"""lanewatch.stream.cluster.actor: Cluster mode: streams run in Ray actors, the gateway polls their
results.
"""
