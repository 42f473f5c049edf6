"""mnq: fast, TFLite-exact uint8 MobileNet V1 inference on CPUs."""
from ._core import cpu_features, supported_isas
from .errors import ModelFormatError, UnsupportedModelError
from .model import Model, load

__version__ = "0.1.0"


def info(model: "Model" = None) -> dict:
    """Version, detected CPU features, the instruction-set levels usable here, the
    kernel groups this build compiled (and any its compiler could not: their levels
    are never offered) and, given a model, its level and the kernel chosen for each layer."""
    from ._core import best_isa, kernels_built, kernels_not_built

    result = {"version": __version__, "cpu_features": cpu_features(), "isas": supported_isas(),
              "best_isa": best_isa(), "kernels_built": kernels_built(), "kernels_not_built": kernels_not_built()}
    if model is not None:
        result["model_isa"] = model.isa
        result["kernels"] = list(zip(model.layer_names, model.kernels))
    return result


__all__ = ["load", "Model", "ModelFormatError", "UnsupportedModelError", "info", "cpu_features", "supported_isas"]
