"""What every `mnq` command shares: exit codes, finding and loading the model, option
types, stderr messages and the progress bar."""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Optional, Tuple

from .. import _core
from ..errors import LabelsError, UsageError

EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2
# instruction-set levels by architecture family: --isa offers those of this machine only
ARCH_ISAS = {"x86": ("scalar", "avx2", "avx512vnni", "amx"), "arm": ("scalar", "neon", "neondot", "neoni8mm")}


def architecture_isas() -> Tuple[str, ...]:
    machine = platform.machine().lower()
    family = "arm" if machine.startswith(("arm", "aarch64")) else "x86"
    return tuple(name for name in _core.ISA_NAMES if name in ARCH_ISAS[family])


# ---------------------------------------------------------------- model resolution

def find_model(given: Optional[str]) -> Tuple[Optional[str], str]:
    """(path, where it came from): --model, else env MNQ_MODEL, else the model `mnq fetch`
    cached; (None, "") when there is none."""
    from ..fetch import cached_model

    if given:
        return given, "--model"
    if os.environ.get("MNQ_MODEL"):
        return os.environ["MNQ_MODEL"], "MNQ_MODEL="
    cached = cached_model()
    return (str(cached), "cached model") if cached.is_file() else (None, "")


def how_to_get_a_model() -> str:
    from ..fetch import cached_model

    return ("Either run\n    mnq fetch\nonce (downloads TensorFlow's mobilenet_v1_1.0_160_quant.tflite into "
            f"{cached_model().parent}), or pass --model PATH (a .tflite or .mnq file, or a TF Hub module "
            "directory or .tar.gz), or set MNQ_MODEL=PATH.")


def resolve_model(given: Optional[str]) -> Tuple[str, str]:
    path, origin = find_model(given)
    if path is None:
        raise UsageError("no model given, and none downloaded yet. " + how_to_get_a_model())
    return path, origin


def origin_text(path: str, origin: str) -> str:
    """How the user named the model: "--model x.tflite", "MNQ_MODEL=x.tflite", "cached model x"."""
    return f"{origin}{path}" if origin.endswith("=") else f"{origin} {path}"


def load_model(args, given: Optional[str] = None):
    """(model with labels, its path). A model file that cannot be opened is a UsageError
    naming the option or variable it came from."""
    import mnq

    from ..labels import with_labels

    path, origin = resolve_model(given or args.model)
    labels = getattr(args, "labels_file", None)
    try:
        model = mnq.load(path, num_threads=getattr(args, "threads", None), isa=args.isa, labels=labels)
    except LabelsError as exc:
        if labels:  # the only labels file whose problems are errors: the one the user named
            raise UsageError(f"--labels {exc}") from None
        raise
    except OSError as exc:
        raise UsageError(f"{origin_text(path, origin)}: {exc.strerror or exc}") from None
    return with_labels(model), path


# ---------------------------------------------------------------- output

def progress_bar(total: Optional[int], enabled: Optional[bool], unit: str = "img", **options):
    from tqdm import tqdm

    # enabled None: show it only when stderr is a terminal (tqdm's disable=None)
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None if enabled is None else not enabled,
                dynamic_ncols=True, **options)


def say(message: str):
    """A line on stderr that does not tear a progress bar apart."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def decode_workers() -> int:
    from ..model import default_threads

    return min(8, default_threads() + 1)  # enough to keep up with inference, not more


# ---------------------------------------------------------------- options

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def int_list(text: str) -> list:
    """"1,8,32" -> [1, 8, 32], each at least 1."""
    values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected whole numbers separated by commas")
    return values


def sha256_hex(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError("expected 64 hexadecimal digits")
    return text.lower()


MODEL_HELP = ("model: a .tflite or .mnq file, or a TF1 Hub module directory or .tar.gz; default: env MNQ_MODEL, "
              "else the one `mnq fetch` downloaded")


def add_model_options(p, threads=True):
    p.add_argument("--model", metavar="PATH", help=MODEL_HELP)
    if threads:
        p.add_argument("--threads", type=positive_int, metavar="N",
                       help="threads per inference (default: all available cores; fewer while other work "
                            "keeps CPUs busy)")
    isas = architecture_isas()
    p.add_argument("--isa", metavar="LEVEL", choices=isas,
                   help=f"force an instruction set: {', '.join(isas)} (default: env MNQ_ISA, else the best "
                   "this CPU runs)")


def add_stream_options(p):
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                   help="images per inference call (default: 16)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: only when stderr is a terminal)")
    p.add_argument("--max-pixels", type=positive_int, metavar="N",
                   help="largest image decoded, width x height (default: env MNQ_MAX_PIXELS, else 89,478,485, "
                   "Pillow's decompression-bomb limit); raise it for very large photos")


def apply_max_pixels(args):
    if getattr(args, "max_pixels", None):
        from ..preprocess import set_max_pixels

        set_max_pixels(args.max_pixels)
