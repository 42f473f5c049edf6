"""mnq: fast, TFLite-exact uint8 MobileNet V1 inference on CPUs."""
from ._core import cpu_features, supported_isas
from .errors import ModelFormatError, UnsupportedModelError
from .model import Model, load

__version__ = "0.1.0"


def info() -> dict:
    """Version, detected CPU features, and the instruction-set levels usable here."""
    from ._core import best_isa

    return {"version": __version__, "cpu_features": cpu_features(), "isas": supported_isas(), "best_isa": best_isa()}


__all__ = ["load", "Model", "ModelFormatError", "UnsupportedModelError", "info", "cpu_features", "supported_isas"]
