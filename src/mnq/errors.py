"""Every exception mnq raises on purpose, so callers can catch them from one place.

Each message is meant for the user: it names the file, option or value that is wrong.
"""


class ModelFormatError(ValueError):
    """The file is not a readable model: truncated, corrupt, or another format."""


class UnsupportedModelError(ValueError):
    """The file is a valid model, but uses an op, type or layout mnq does not run."""


class LabelsError(ValueError):
    """A labels file (class names, or eval's labels CSV) is missing, malformed, too large,
    or does not fit the model."""


class FetchError(Exception):
    """`mnq fetch`: a download or verification failure."""


class UsageError(Exception):
    """A problem with a command line (bad option, no model): the CLI exits with code 2."""
