"""`mnq fetch`: download TensorFlow's MobileNet V1 1.0/160 uint8 archive, verify it,
and keep its .tflite in the user cache directory.

All-or-nothing: the archive goes to a temporary file in the cache directory, its
sha256 is checked against the published one, only the .tflite member is read out
(by its base name, so no path in the archive can write elsewhere) into another
temporary file, which is then renamed into place. On any failure both temporary
files are removed and the cache is left as it was.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from .errors import FetchError

DEFAULT_URL = ("https://storage.googleapis.com/download.tensorflow.org/models/"
               "mobilenet_v1_2018_08_02/mobilenet_v1_1.0_160_quant.tgz")
DEFAULT_SHA256 = "b5c9da0d5215a1c1faab313f88ba0a900ac199c7af45f559ab65c63b0649bee1"
MODEL_FILE_NAME = "mobilenet_v1_1.0_160_quant.tflite"
TIMEOUT_SECONDS = 60
CHUNK = 1 << 16


def cache_dir(override: Optional[str] = None) -> Path:
    """--cache-dir, else env MNQ_CACHE_DIR, else the platform's user cache (platformdirs)."""
    chosen = override or os.environ.get("MNQ_CACHE_DIR")
    if chosen:
        return Path(chosen).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mnq", appauthor=False))


def default_url() -> str:
    return os.environ.get("MNQ_MODEL_URL") or DEFAULT_URL


def cached_model(override_dir: Optional[str] = None) -> Path:
    """Where `mnq fetch` puts the model (it may not be there yet)."""
    return cache_dir(override_dir) / MODEL_FILE_NAME


def as_url(location: str) -> str:
    """A URL as given, or a local path (absolute, relative or ~) as a file:// URL."""
    if "://" in location:
        return location
    return Path(location).expanduser().resolve().as_uri()


def fetch(url: str, sha256: str, directory: Path, progress: bool = True) -> Path:
    """Download url (or read a local archive path), verify sha256, extract its .tflite into
    directory; return its path."""
    url = as_url(url)
    directory.mkdir(parents=True, exist_ok=True)
    archive = _temporary_file(directory, ".download-")
    try:
        digest = _download(url, archive, progress)
        if digest != sha256.lower():
            raise FetchError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest}. "
                             "The download is corrupt or the file changed upstream; nothing was saved.")
        return _extract_tflite(archive, directory)
    finally:
        archive.unlink(missing_ok=True)


def _temporary_file(directory: Path, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    os.close(fd)
    return Path(name)


def _download(url: str, target: Path, progress: bool) -> str:
    """Stream url into target with a progress bar; return the sha256 of what arrived."""
    from tqdm import tqdm

    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"the server answered {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot reach {url}: {reason}. Check the address and your network "
                         "(or download the archive elsewhere and pass its .tflite with --model)") from None
    except ValueError as exc:  # not a URL at all
        raise FetchError(f"bad URL {url!r}: {exc}") from None
    expected = response.headers.get("Content-Length")
    expected = int(expected) if expected and expected.isdigit() else None
    digest, received = hashlib.sha256(), 0
    try:
        with response, open(target, "wb") as out, \
                tqdm(total=expected, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except http.client.IncompleteRead:
        raise FetchError(f"download of {url} was cut off after {received} of {expected} bytes") from None
    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead, disk full
        raise FetchError(f"download of {url} failed after {received} bytes: {type(exc).__name__}: {exc}") from None
    if expected is not None and received != expected:
        raise FetchError(f"download of {url} was cut off: got {received} of {expected} bytes")
    return digest.hexdigest()


def _extract_tflite(archive: Path, directory: Path) -> Path:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".tflite")]
            if not members:
                raise FetchError("the archive holds no .tflite file")
            member = _pick(members)
            name = os.path.basename(member.name)  # never the archive's directories
            part = _temporary_file(directory, ".extract-")
            try:
                with tar.extractfile(member) as src, open(part, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                _make_readable(part)
                final = directory / name
                os.replace(part, final)  # atomic: a reader sees the old file or the whole new one
                return final
            finally:
                part.unlink(missing_ok=True)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"cannot extract the .tflite from the downloaded archive: {exc}") from None


def _make_readable(path: Path):
    """mkstemp makes files private (0600); the model should get the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _pick(members: list) -> tarfile.TarInfo:
    """The model we document if the archive has several .tflite files, else the only one."""
    for m in members:
        if os.path.basename(m.name) == MODEL_FILE_NAME:
            return m
    if len(members) > 1:
        names = ", ".join(m.name for m in members)
        raise FetchError(f"the archive holds several .tflite files ({names}) and none is {MODEL_FILE_NAME}")
    return members[0]
