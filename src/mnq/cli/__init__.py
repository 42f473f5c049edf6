"""The `mnq` command line: classify, eval, info, fetch, extract, profile, benchmark.

One module per command (each with add_parser(sub) and the function it runs), writers.py
for classify's output formats, common.py for what they share.

Exit codes: 0 all went well; 1 some input files (or the download) failed, everything
else was still processed; 2 usage or model errors (nothing could run). Every error a user
can cause is one line on stderr naming the file, option or variable; never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import UsageError
from . import benchmark, classify, evaluation, fetch, info, profile
from .common import EXIT_USAGE

# packages some models or options need and a plain install lacks; their absence is a user error
OPTIONAL_PACKAGES = ("tensorflow", "pyarrow", "dask", "distributed", "pandas", "ai_edge_litert", "onnxruntime",
                     "tf2onnx", "onnx")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__, extract

    parser = argparse.ArgumentParser(prog="mnq", description="Fast, TFLite-exact uint8 MobileNet V1 "
                                     "image classification on CPUs.",
                                     epilog="Run `mnq COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"mnq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    classify.add_parser(sub)
    evaluation.add_parser(sub)
    info.add_parser(sub)
    fetch.add_parser(sub)
    p = sub.add_parser("extract", help="convert a .tflite or TF Hub module into an .mnq file",
                       description=extract.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    extract.add_arguments(p)
    p.set_defaults(func=extract.run)
    profile.add_parser(sub)
    benchmark.add_parser(sub)
    return parser


def main(argv=None) -> int:
    from PIL import Image

    # mnq checks image sizes itself and says how to raise the limit; Pillow's warning adds nothing
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        return fail(exc)
    except BrokenPipeError:
        return quiet_broken_pipe()
    except (ValueError, OSError) as exc:  # model files, labels, --isa: the message says what is wrong
        return fail(describe_os_error(exc) if isinstance(exc, OSError) else exc)
    except MemoryError as exc:
        return fail(f"out of memory{': ' + str(exc) if str(exc) else ''} (try a smaller batch)")
    except ImportError as exc:
        if exc.name not in OPTIONAL_PACKAGES:  # a broken installation or a bug: keep the traceback
            raise
        return fail(exc)
    except KeyboardInterrupt:
        print("mnq: interrupted", file=sys.stderr)
        return 130


def fail(message) -> int:
    print(f"mnq: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def describe_os_error(exc: OSError) -> str:
    """"PATH: reason" without Python's [Errno N] prefix."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def quiet_broken_pipe() -> int:
    """Output piped into `head` and the like: stop quietly, as Unix tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain while flushing at exit
    return 0
