"""Errors a user can act on. The CLI prints their message on one line (no traceback)."""


class LanewatchError(Exception):
    """Base class: something the user can fix (bad config, bad input, missing model)."""

    exit_code = 2


class ConfigError(LanewatchError):
    """The configuration file is missing, unreadable or invalid."""


class SourceError(LanewatchError):
    """A video source cannot be opened or read."""


class TruncatedVideoError(SourceError):
    """The video ended early or became undecodable part-way; what was decoded is kept."""

    exit_code = 3


class ModelError(LanewatchError):
    """The model cannot be loaded or does not fit the configuration."""


class ValidationFailed(LanewatchError):
    """`lanewatch validate`: the counts are below a threshold the user set (acceptance)."""

    exit_code = 4
