"""A new user's first steps, from a fresh clone, following README literally: `pip install .`
into a new virtual environment, the Quick start's classify command, then
`python tools/extract_weights.py` (which once worked only after an in-place build).

The clone is of this repository's committed HEAD. The new venv sees this interpreter's
packages through a .pth file (so nothing is downloaded) and builds mnq with
`pip install --no-build-isolation --no-deps .` (with build isolation, which downloads the
build requirements, when this environment's setuptools is older than pyproject.toml needs).
Takes a minute or two (the C build).
"""
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MAIN_MODEL, SHARED

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def quick_start_classify() -> str:
    """The classify command of README's Quick start (after `pip install . &&`)."""
    block = re.search(r"## Quick start.*?```sh\n(.*?)\n```", README.read_text(), re.S).group(1)
    return block.split("&&")[-1].strip()


def setuptools_major() -> int:
    try:
        import setuptools
    except ImportError:
        return 0
    return int(setuptools.__version__.split(".")[0])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    tmp = tmp_path_factory.mktemp("fresh")
    clone, venv = tmp / "mnq", tmp / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNQ_MODEL", "VIRTUAL_ENV")}
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # this interpreter's packages (numpy, Cython, setuptools, pip, Pillow, ...) without a download
    Path(purelib, "parent-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # pyproject.toml needs setuptools >= 77: with an older one here (Python 3.11's venv ships 65),
    # let pip fetch the build requirements as README's plain `pip install .` does
    build = ["--no-build-isolation"] if setuptools_major() >= 77 else []
    r = subprocess.run([python, "-m", "pip", "install", "-q", *build, "--no-deps", "."], cwd=clone,
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return clone, python, env


def test_readme_quick_start_classify_from_a_fresh_clone(installed):
    clone, python, env = installed
    command = quick_start_classify().replace("../shared", str(SHARED)).split()
    assert command[:4] == ["python", "-m", "mnq", "classify"], command
    r = subprocess.run([str(python)] + command[1:], cwd=clone, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    located = subprocess.run([str(python), "-c", "import mnq; print(mnq.__file__)"], cwd=clone, capture_output=True,
                             text=True, env=env).stdout
    assert str(clone / "src") not in located  # the installed package, not the checkout's sources
    assert "military uniform" in r.stdout.splitlines()[1]


def test_extract_weights_after_pip_install(installed, tmp_path):
    clone, python, env = installed
    out = tmp_path / "model.mnq"
    r = subprocess.run([str(python), "tools/extract_weights.py", str(MAIN_MODEL), "-o", str(out)], cwd=clone,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and out.is_file(), r.stderr
    r = subprocess.run([str(python), "-m", "mnq", "info", "--model", str(out)], cwd=tmp_path, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "31 layers" in r.stdout, r.stderr
