"""`mnq fetch` against a local HTTP server on 127.0.0.1: never the internet."""
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading

import pytest

from conftest import MAIN_MODEL, SHARED
from test_cli import mnq_cli

MODEL_NAME = "mobilenet_v1_1.0_160_quant.tflite"


def make_tgz(members: dict) -> bytes:
    """A .tgz holding {name: bytes}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD = make_tgz({"mobilenet_v1_1.0_160_quant_info.txt": b"info",
                 "mobilenet_v1_1.0_160_quant.tflite": MAIN_MODEL.read_bytes()})
ESCAPING = make_tgz({"../../escaped.tflite": b"TFL3 not really"})
NOT_A_TGZ = b"this is not gzip data at all" * 10


class Handler(http.server.BaseHTTPRequestHandler):
    ROUTES = {"/good.tgz": GOOD, "/escaping.tgz": ESCAPING, "/not-a-tgz.tgz": NOT_A_TGZ}

    def do_GET(self):
        if self.path == "/truncated.tgz":  # promises the whole archive, sends a third, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.ROUTES.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def fetch(url, cache, sha256):
    # no_proxy: a proxy configured on the machine must not see requests for 127.0.0.1
    return mnq_cli("fetch", "--url", url, "--cache-dir", cache, "--sha256", sha256, "--no-progress",
                   env={"no_proxy": "*", "NO_PROXY": "*"})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_good_archive_is_verified_extracted_and_used(server, tmp_path):
    cache = tmp_path / "cache"
    r = fetch(f"{server}/good.tgz", cache, sha(GOOD))
    assert r.returncode == 0, r.stderr
    assert leftovers(cache) == [MODEL_NAME]  # only the model: no archive, no temporary file
    assert (cache / MODEL_NAME).read_bytes() == MAIN_MODEL.read_bytes()
    # classify now finds the model in the cache with no --model and no MNQ_MODEL
    r = mnq_cli("classify", SHARED / "images" / "samples" / "grace_hopper.bmp", "--top-k", "1",
                env={"MNQ_CACHE_DIR": str(cache)}, unset=("MNQ_MODEL",))
    assert r.returncode == 0 and "military uniform" in r.stdout, r.stderr


def test_wrong_checksum_is_rejected_and_nothing_is_kept(server, tmp_path):
    published = "b5c9da0d5215a1c1faab313f88ba0a900ac199c7af45f559ab65c63b0649bee1"
    r = fetch(f"{server}/good.tgz", tmp_path, published)
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and published in r.stderr
    assert leftovers(tmp_path) == [] and "Traceback" not in r.stderr


def test_truncated_download(server, tmp_path):
    r = fetch(f"{server}/truncated.tgz", tmp_path, sha(GOOD))
    assert r.returncode == 1 and "cut off" in r.stderr, r.stderr
    assert leftovers(tmp_path) == [] and "Traceback" not in r.stderr


def test_404(server, tmp_path):
    r = fetch(f"{server}/nothing-here.tgz", tmp_path, sha(GOOD))
    assert r.returncode == 1 and "404" in r.stderr and "nothing-here.tgz" in r.stderr
    assert leftovers(tmp_path) == []


def test_unreachable_host(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = fetch(f"http://127.0.0.1:{port}/model.tgz", tmp_path, sha(GOOD))
    assert r.returncode == 1 and "cannot reach" in r.stderr and "Traceback" not in r.stderr
    assert leftovers(tmp_path) == []


def test_archive_paths_cannot_escape_the_cache(server, tmp_path):
    cache = tmp_path / "a" / "cache"
    r = fetch(f"{server}/escaping.tgz", cache, sha(ESCAPING))
    assert r.returncode == 0, r.stderr
    assert leftovers(cache) == ["escaped.tflite"] and leftovers(tmp_path) == ["a"]


def test_not_an_archive(server, tmp_path):
    r = fetch(f"{server}/not-a-tgz.tgz", tmp_path, sha(NOT_A_TGZ))
    assert r.returncode == 1 and "cannot extract" in r.stderr and leftovers(tmp_path) == []


def test_bad_sha256_option_is_a_usage_error(tmp_path):
    r = mnq_cli("fetch", "--sha256", "abc", "--cache-dir", tmp_path)
    assert r.returncode == 2 and "64 hexadecimal" in r.stderr
