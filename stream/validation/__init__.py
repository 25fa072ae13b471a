"""Checking counts against a manual count: the `validate` command (the work is in
sinks/validation_*.py and trackers/evaluation/)."""
