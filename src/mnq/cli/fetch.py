"""`mnq fetch`: download TensorFlow's MobileNet V1 1.0/160 uint8 model into the user cache."""
from __future__ import annotations

import argparse
import sys

from ..errors import FetchError
from .common import EXIT_FILE_ERRORS, EXIT_OK, say, sha256_hex


def add_parser(sub):
    from ..fetch import DEFAULT_SHA256, DEFAULT_URL

    p = sub.add_parser("fetch", help="download TensorFlow's MobileNet V1 1.0/160 uint8 model",
                       description="Download the model archive, check its sha256, and keep its .tflite in "
                       "the cache directory, where classify/eval/info/benchmark and mnq.load() find it.")
    p.add_argument("--url", help="archive to download: a URL, or a path to a local copy of the archive "
                   f"(default: env MNQ_MODEL_URL, else {DEFAULT_URL})")
    p.add_argument("--sha256", type=sha256_hex, default=DEFAULT_SHA256,
                   help="expected sha256 of the archive (default: the published one)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where to keep the model (default: env MNQ_CACHE_DIR, else the user cache directory)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="download progress bar on stderr (default: only when stderr is a terminal)")
    p.set_defaults(func=fetch_model)


def fetch_model(args) -> int:
    from ..fetch import cache_dir, cached_model, default_url, fetch

    directory = cache_dir(args.cache_dir)
    url = args.url or default_url()
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        path = fetch(url, args.sha256, directory, progress=progress)
    except FetchError as exc:
        say(f"mnq: fetch failed: {exc}")
        return EXIT_FILE_ERRORS
    except OSError as exc:  # the cache folder itself cannot be made or written
        say(f"mnq: fetch failed: cannot write to {directory}: {exc.strerror or exc}")
        return EXIT_FILE_ERRORS
    print(path)
    if path == cached_model():  # where classify, eval and info look when given no model
        say("mnq: model saved; `mnq classify IMAGE` now uses it")
    else:
        say(f"mnq: model saved; use it with --model {path}")
    return EXIT_OK
