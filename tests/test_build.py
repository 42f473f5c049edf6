"""The build: one table of kernel groups (src/kernels/isa_levels.txt) read by setup.py and
the Makefile, and a compiler that cannot build a group builds the rest (the Makefile side is
tests/test_embedded.py::test_compiler_without_a_level_builds_without_it)."""
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mnq
from mnq import _core

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "src" / "kernels" / "isa_levels.txt"


def table_rows():
    rows = []
    for line in TABLE.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and fields[1] != "common":
            rows.append({"arch": fields[0], "group": fields[1], "level": fields[2], "needs": fields[3],
                         "features": fields[4].split(","), "flags": fields[5:]})
    return rows


def test_table_names_real_groups_and_levels():
    rows = table_rows()
    for row in rows:
        folder = "x86" if row["arch"] == "x86_64" else "arm"
        assert list((ROOT / "src" / "kernels" / folder).glob(f"*__{row['group']}.c")), row
        assert row["level"] in _core.ISA_NAMES, row
        assert row["needs"] == "-" or row["needs"] in [r["group"] for r in rows if r["arch"] == row["arch"]], row


def test_offered_levels_have_their_features_and_kernels():
    """Every level offered here is built and its CPU features (as the table names them) are detected."""
    features = set(_core.cpu_features().split())
    built = set(_core.kernels_built())
    for row in table_rows():
        if row["level"] in _core.supported_isas() and row["group"] == row["level"]:
            assert row["group"] in built, row
            assert set(row["features"]) <= features, (row, features)
    info = mnq.info()
    assert info["kernels_built"] == _core.kernels_built() and info["kernels_not_built"] == _core.kernels_not_built()


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not shutil.which("gcc"),
                    reason="x86-64 gcc needed")
def test_setup_py_without_avx512_builds_the_rest(tmp_path):
    """setup.py with a compiler that rejects -mavx512f: the AVX-512 groups (and AMX, which needs
    them) are left out with a warning, the build succeeds, and mnq.info() says so."""
    cc = tmp_path / "cc-without-avx512"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -mavx512f ] && { echo "unrecognized option -mavx512f" >&2; '
                  'exit 1; }; done\nexec gcc "$@"\n')
    cc.chmod(0o755)
    env = dict(os.environ, CC=str(cc))
    r = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-temp", str(tmp_path / "tmp"),
                        "--build-lib", str(tmp_path / "lib")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cannot build the kernel groups avx512vnni amx" in r.stdout + r.stderr
    package = tmp_path / "pkg" / "mnq"
    shutil.copytree(ROOT / "src" / "mnq", package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for built in (tmp_path / "lib" / "mnq").glob("_core*.so"):
        shutil.copy(built, package)
    probe = subprocess.run([sys.executable, "-c", "import json, mnq; print(json.dumps(mnq.info()))"], cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=str(tmp_path / "pkg")), capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-3000:]
    info = json.loads(probe.stdout)
    assert info["kernels_built"] == ["avx2", "avxvnni"] and info["kernels_not_built"] == ["avx512vnni", "amx"], info
    assert not {"avx512vnni", "amx"} & set(info["isas"]), info
