"""The AVX-512 requantization helpers vs the scalar definition, compiled straight
from src/kernels (millions of accumulators; too many to push through a net)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from mnq import _core

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["-O2", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"]


def test_requant_avx512_matches_scalar(tmp_path):
    if "avx512vnni" not in _core.supported_isas():
        pytest.skip("CPU lacks AVX-512")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    exe = tmp_path / "check"
    subprocess.run([cc, *FLAGS, f"-I{ROOT / 'src' / 'kernels'}", str(ROOT / "tests" / "requant_avx512_check.c"),
                    "-o", str(exe), "-lm"], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
