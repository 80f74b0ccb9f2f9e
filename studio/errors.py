"""Errors a user can act on. Each message is one plain sentence naming the thing and what to do."""


class StudioError(Exception):
    """An error whose message is meant for the user as it is; the CLI prints it and exits non-zero."""


class ProjectError(StudioError):
    """The project file is missing, malformed, or holds an impossible value."""


class ModelError(StudioError):
    """A base model cannot be found, loaded or converted."""


class DataError(StudioError):
    """A dataset file cannot be read or holds no usable example."""


class TrainError(StudioError):
    """Training could not start or stopped with an error."""


class ExportError(StudioError):
    """Merging or exporting failed or was refused by a preflight check."""


class Cancelled(StudioError):
    """The user cancelled the work; whatever was finished before is kept."""
