"""`lanewatch tune`: search the settings that matter for a clip with a manual count.

detection_cache.py (one detector pass per detection variant, kept in memory and in an .npz),
evaluation.py (a candidate config scored from the cached detections, as `validate` scores a
review), space.py (the settings searched and how a candidate config is made), search.py
(coordinate descent), config_file.py (the tuned YAML: the user's file with the tuned keys
changed), report.py (text, markdown, tune.json), command.py (the sub-command).
"""
