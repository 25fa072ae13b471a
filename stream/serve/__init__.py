"""lanewatch.stream.serve: The live service (`lanewatch serve`): the service, its HTTP API, run-
time stream changes and their registry, lane export.
"""
