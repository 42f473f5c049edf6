"""Benchmark session plumbing: options, the shared input batch, result rows and the final table.

Rows are collected while the tests run and printed (and written as Markdown) once at the end,
so every engine's numbers come from the same process and the same run. The timing loop is
mnq.benchmark.measure, the one `mnq benchmark` uses.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from mnq import _core
from mnq.benchmark import cpu_name, measure, summary
from mnq.model import read_graph

BENCH_DIR = Path(__file__).resolve().parent
# The test data lives in a shared/ folder beside the checkout, or where MNQ_SHARED says (as in tests/conftest.py).
SHARED = Path(os.environ.get("MNQ_SHARED", BENCH_DIR.parents[1] / "shared"))
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite"
ENGINE_ORDER = ("mnq", "tflite", "onnxruntime")


@dataclass
class Row:
    engine: str
    config: str
    threads: int
    batch: int
    median_s: float
    rounds: int
    match: Optional[float]  # fraction of output bytes equal to TFLite built-in kernels; None if no reference


ROWS = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("mnq bench")
    group.addoption("--bench-threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    group.addoption("--bench-batches", default="1,32", help="comma-separated batch sizes (default 1,32)")
    group.addoption("--bench-md", default=str(BENCH_DIR / "results" / "latest.md"),
                    help="where to write the Markdown results table")
    group.addoption("--bench-time", type=float, default=1.0,
                    help="seconds of timed calls per row (default 1.0), after 2 warm-up calls")
    group.addoption("--bench-min-runs", type=int, default=5, help="timed calls per row at least (default 5)")


def _int_list(text: str) -> list:
    return [int(v) for v in text.split(",") if v.strip()]


def pytest_configure(config):
    config.stash[ROWS] = []


def pytest_generate_tests(metafunc):
    # Thread counts and batch sizes come from the command line so quick runs can trim the matrix.
    for name, option in (("threads", "--bench-threads"), ("batch", "--bench-batches")):
        if name in metafunc.fixturenames:
            values = _int_list(metafunc.config.getoption(option))
            metafunc.parametrize(name, values, ids=[f"{name}{v}" for v in values])


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = Path(os.environ.get("MNQ_BENCH_MODEL", DEFAULT_MODEL))
    if not path.is_file():
        pytest.exit(f"benchmark model not found: {path} (set MNQ_BENCH_MODEL)", returncode=2)
    return path


@pytest.fixture(scope="session")
def images(request, model_path) -> np.ndarray:
    """One random uint8 batch, the largest requested; every engine reads a prefix of it."""
    shape = tuple(read_graph(model_path).input_shape)
    largest = max(_int_list(request.config.getoption("--bench-batches")))
    return np.random.default_rng(0).integers(0, 256, (largest,) + shape, dtype=np.uint8)


@pytest.fixture
def bench(request, threads, batch):
    """bench(engine, config, run, x, reference): time run(x) and add a row to the final table.

    Two warm-up calls (weight packing, allocation), then mnq.benchmark.measure: calls for
    --bench-time seconds, at least --bench-min-runs; the table reports medians."""

    def _bench(engine, config, run, x, reference):
        out = run(x)
        run(x)
        option = request.config.getoption
        latencies = measure(run, x, option("--bench-time"), option("--bench-min-runs"))
        stats = summary(latencies, batch)
        match = None if reference is None else float(np.mean(out == reference[:batch]))
        request.config.stash[ROWS].append(Row(engine, config, threads, batch, stats["p50_ms"] / 1e3, stats["runs"],
                                              match))

    return _bench


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def render_table(rows: list, config, skipped: list) -> str:
    best_isa = _core.best_isa()
    best = {(r.threads, r.batch): r.median_s for r in rows if r.engine == "mnq" and r.config.endswith("(best)")}
    rows = sorted(rows, key=lambda r: (r.batch, r.threads, ENGINE_ORDER.index(r.engine),
                                       not r.config.endswith("(best)"), r.config))
    lines = [
        f"Model `{Path(os.environ.get('MNQ_BENCH_MODEL', DEFAULT_MODEL)).name}`, random uint8 input, "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} logical cores ({_core.cpu_features()}); "
        f"mnq {_version('mnq')} (best ISA {best_isa}), ai-edge-litert {_version('ai-edge-litert')}, "
        f"onnxruntime {_version('onnxruntime')}, tf2onnx {_version('tf2onnx')}; "
        f"{config.getoption('--bench-time')} s per row, at least {config.getoption('--bench-min-runs')} runs",
        "",
        "| engine | config | threads | batch | median ms/batch | images/s | × mnq-best | rounds | bytes = TFLite |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ref = best.get((r.threads, r.batch))
        ratio = f"{r.median_s / ref:.2f}" if ref else "-"
        match = "-" if r.match is None else f"{100 * r.match:.1f}%"
        lines.append(f"| {r.engine} | {r.config} | {r.threads} | {r.batch} | {1e3 * r.median_s:.2f} | "
                     f"{r.batch / r.median_s:.1f} | {ratio} | {r.rounds} | {match} |")
    lines += [
        "",
        "× mnq-best = this row's median / mnq at its best ISA with the same threads and batch "
        "(above 1: slower than mnq). bytes = TFLite: share of output bytes identical to TFLite's "
        "built-in kernels on the same input.",
    ]
    if skipped:
        lines += ["", "Skipped:"] + [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(ROWS, [])
    skipped = sorted({str(rep.longrepr[2]).removeprefix("Skipped: ")
                      for rep in terminalreporter.stats.get("skipped", []) if isinstance(rep.longrepr, tuple)})
    if not rows and not skipped:
        return
    table = render_table(rows, config, skipped)
    out = Path(config.getoption("--bench-md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    terminalreporter.write_sep("=", "mnq benchmark (medians)")
    terminalreporter.write(table)
    terminalreporter.write_line(f"written to {out}")
