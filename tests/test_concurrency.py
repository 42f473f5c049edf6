"""Threads, processes and the GIL: results never depend on how mnq is called."""
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
from conftest import MAIN_MODEL

import mnq


def test_gil_is_released_during_inference():
    model = mnq.load(MAIN_MODEL, num_threads=1, isa="scalar")  # slow on purpose: a long C call
    x = np.zeros((2, 160, 160, 3), np.uint8)
    window = {}

    def infer():
        window["start"] = time.perf_counter()
        model.run(x)
        window["end"] = time.perf_counter()

    worker = threading.Thread(target=infer)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    inside = [t for t in ticks if window["start"] < t < window["end"]]
    # With the GIL held for the whole call this thread could not run at all meanwhile.
    assert len(inside) > 1000, f"only {len(inside)} Python steps ran during a {window['end'] - window['start']:.2f}s inference"


def test_fork_after_multithreaded_use_does_not_hang():
    script = textwrap.dedent(f"""
        import multiprocessing as mp, numpy as np, mnq
        m = mnq.load({str(MAIN_MODEL)!r}, num_threads=2)
        x = np.random.default_rng(0).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
        expected = m.run(x)
        def child(_):
            return bool((m.run(x) == expected).all())
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                print(pool.map(child, range(4)))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[True, True, True, True]"
