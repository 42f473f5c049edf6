"""Exceptions raised when a model file cannot be used."""


class ModelFormatError(ValueError):
    """The file is not a readable model: truncated, corrupt, or another format."""


class UnsupportedModelError(ValueError):
    """The file is a valid model, but uses an op, type or layout mnq does not run."""
