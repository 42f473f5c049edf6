"""Threads, processes and the GIL: results never depend on how mnq is called."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
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


def test_worker_threads_end_with_the_last_model():
    """The pool's threads start with the first multi-threaded run and are joined when the
    last model is freed: none outlives the models (a fresh process, so no other model is alive)."""
    script = textwrap.dedent(f"""
        import gc, os, numpy as np, mnq
        tasks = lambda: len(os.listdir("/proc/self/task"))
        before = tasks()
        a = mnq.load({str(MAIN_MODEL)!r}, num_threads=4, adapt_threads=False)
        b = mnq.load({str(MAIN_MODEL)!r}, num_threads=3, adapt_threads=False)
        x = np.zeros((1, 160, 160, 3), np.uint8)
        a.run(x), b.run(x)
        during = tasks()
        del a
        gc.collect()
        b.run(x)
        with_one = tasks()
        del b
        gc.collect()
        print(before, during, with_one, tasks())
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before, during, with_one, after = map(int, r.stdout.split())
    assert during == before + 3, "4 threads per run: the caller and 3 pool workers"
    assert with_one == during, "the pool stays while a model holds it"
    assert after == before, "the last model's release joins every worker"


def test_runs_adapt_their_threads_to_the_cpus_left_free():
    """With every CPU taken by a busy process, an adapting 4-thread run is the caller alone (no
    pool worker starts) and gives the same bytes; a fixed one starts its 3 workers."""
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time, numpy as np, mnq
        from mnq import _core
        tasks = lambda: len(os.listdir("/proc/self/task"))
        cpus = os.cpu_count()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
        try:
            time.sleep(0.5)
            before = tasks()
            free = [_core.threads_free(4) for _ in range(20)]
            x = np.random.default_rng(2).integers(0, 256, (1, 160, 160, 3), np.uint8)
            m = mnq.load({str(MAIN_MODEL)!r}, num_threads=4)
            adapted = m.run(x)
            after_adapted = tasks()
            m.adapt_threads = False
            fixed = m.run(x)
            print(max(free), before, after_adapted, tasks(), bool((adapted == fixed).all()))
        finally:
            for p in busy:
                p.kill()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    most_free, before, after_adapted, after_fixed, same = r.stdout.split()
    assert most_free == "1", "every CPU busy: an adapting run is the caller alone"
    assert int(after_adapted) == int(before), "no pool worker started for an adapted run"
    assert int(after_fixed) == int(before) + 3, "a fixed 4-thread run: the caller and 3 workers"
    assert same == "True"


def test_adapt_threads_validation():
    m = mnq.load(MAIN_MODEL)
    assert m.adapt_threads is True
    m.adapt_threads = False
    assert m.adapt_threads is False
    with pytest.raises(ValueError, match="adapt_threads"):
        m.adapt_threads = "no"
    assert 1 <= mnq._core.threads_free(3) <= 3 and mnq._core.threads_free(1) == 1


# ---- many threads, many models, changing thread counts (small model: seconds, not minutes) ----
from conftest import MODELS  # noqa: E402

SMALL_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"


def test_eight_threads_hundreds_of_runs_match_serial():
    # a keeps the thread counts it is given, b adapts them to the CPUs its neighbours leave free
    a = mnq.load(SMALL_MODEL, num_threads=1, adapt_threads=False)
    b = mnq.load(SMALL_MODEL, num_threads=2, isa="scalar" if "avx2" not in mnq._core.supported_isas() else "avx2")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 1) + a.input_shape, dtype=np.uint8)
    expected = [a.run(x) for x in images]
    assert all((b.run(x) == e).all() for x, e in zip(images, expected))  # two ISAs agree
    errors, runs = [], [0] * 8
    stop = threading.Event()

    def worker(i):
        try:
            for r in range(200):
                m = a if (i + r) % 2 else b  # two models alive, both shared
                if r % 5 == 4:  # the whole batch: image by image on each thread at 2 threads, layer order at 3
                    x, want = images[:, 0], np.concatenate(expected)
                else:
                    x, want = images[(i + r) % 8], expected[(i + r) % 8]
                got = m.run(x)
                if not (got == want).all():
                    raise AssertionError(f"thread {i} run {r}: differs from the serial result")
                runs[i] += 1
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    def retune():  # num_threads changes between calls while the workers run
        k = 0
        while not stop.is_set():
            a.num_threads = 1 + k % 3
            b.num_threads = 1 + (k + 1) % 2
            k += 1
            time.sleep(0.001)

    tuner = threading.Thread(target=retune)
    tuner.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    tuner.join()
    assert not errors, errors[:3]
    assert runs == [200] * 8


def test_default_start_method_pool_works_after_multithreaded_use():
    script = textwrap.dedent(f"""
        import multiprocessing as mp, numpy as np, mnq
        m = mnq.load({str(SMALL_MODEL)!r}, num_threads=2)
        x = np.random.default_rng(0).integers(0, 256, (2,) + m.input_shape, dtype=np.uint8)
        expected = m.run(x)
        def child(_):
            return bool((m.run(x) == expected).all())
        if __name__ == "__main__":
            with mp.Pool(2) as pool:  # the platform default (fork on Linux before 3.14)
                print(mp.get_start_method(), pool.map(child, range(4)))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("[True, True, True, True]")


# ---- memory ----

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_stable_over_10000_inferences():
    m = mnq.load(SMALL_MODEL, num_threads=1)
    x = np.random.default_rng(1).integers(0, 256, m.input_shape, dtype=np.uint8)
    for _ in range(500):  # warm-up: workspaces, allocator pools
        m.run(x)
    before = rss_bytes()
    for _ in range(10_000):
        m.run(x)
    growth = rss_bytes() - before
    print(f"RSS growth over 10,000 inferences: {growth / 2**20:.2f} MiB")
    assert growth < 16 << 20, f"RSS grew {growth / 2**20:.1f} MiB over 10,000 inferences"


@pytest.mark.skipif(os.environ.get("MNQ_SANITIZED") == "1",
                    reason="ASan's quarantine holds freed blocks (RSS grows by design); LSan checks leaks there")
def test_rss_stable_over_model_build_run_free_cycles():
    graph = mnq.model.read_graph(SMALL_MODEL)
    x = np.zeros(tuple(graph.input_shape), np.uint8)

    def cycle():
        m = mnq.model.Model(graph, num_threads=1)  # plan + pack weights in C, run, free
        m.run(x)

    for _ in range(100):
        cycle()
    before = rss_bytes()
    for _ in range(2000):
        cycle()
    growth = rss_bytes() - before
    print(f"RSS growth over 2,000 build/run/free cycles: {growth / 2**20:.2f} MiB")
    assert growth < 16 << 20, f"RSS grew {growth / 2**20:.1f} MiB over 2,000 build/run/free cycles"
