"""Fuzz targets (tests/fuzz/): the seed + regression corpus is replayed on every run
(no atheris needed); with atheris installed each target also fuzzes for a bounded time
(MNQ_FUZZ_SECONDS, default 15 s per target; 0 turns it off)."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
TARGETS = ["tflite", "mnq", "image"]
sys.path.insert(0, str(FUZZ))


def corpus(target):
    files = []
    for kind in ("corpus", "regressions"):
        d = FUZZ / kind / target
        files += sorted(d.iterdir()) if d.is_dir() else []
    return files


@pytest.mark.parametrize("target", TARGETS)
def test_replay_corpus(target):
    mod = importlib.import_module(f"fuzz_{target}")
    files = corpus(target)
    assert files, f"no seeds for {target}: run tests/fuzz/make_seeds.py"
    for f in files:
        mod.TestOneInput(f.read_bytes())  # raises on a finding


@pytest.mark.skipif(os.environ.get("MNQ_SANITIZED") == "1", reason="libFuzzer's runtime and a preloaded ASan clash")
@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_run(target, tmp_path):
    pytest.importorskip("atheris")
    seconds = int(os.environ.get("MNQ_FUZZ_SECONDS", "15"))
    if seconds <= 0:
        pytest.skip("MNQ_FUZZ_SECONDS=0")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"), str(FUZZ.parent)]
                                                       + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    work = tmp_path / "corpus"
    work.mkdir()
    r = subprocess.run([sys.executable, str(FUZZ / f"fuzz_{target}.py"), f"-max_total_time={seconds}",
                        "-rss_limit_mb=3072", "-timeout=30", f"-artifact_prefix={tmp_path}/",
                        str(work), *[str(FUZZ / k / target) for k in ("corpus", "regressions")
                                     if (FUZZ / k / target).is_dir()]],
                       capture_output=True, text=True, timeout=seconds + 240, env=env)
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*")) + list(tmp_path.glob("oom-*"))
    assert r.returncode == 0 and not crashes, (
        f"fuzz_{target} found an input ({crashes}); add it to tests/fuzz/regressions/{target}/ and fix it\n"
        + r.stderr[-4000:])
