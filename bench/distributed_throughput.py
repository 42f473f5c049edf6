"""images/s of `mnq classify` in one process vs `--scheduler local` (docs/distributed.md).

    python bench/distributed_throughput.py [IMAGE_DIR] [--model PATH] [--runs 3] [--workers 2]

Prints the median of --runs runs of each, end to end (the command as a user runs it, process
and cluster start-up included), and without start-up: the single-process command run inside
this process (model load included, imports not) and, on a cluster already running,
classify_paths + write_parquet (the steady state of a long job). Then the load average.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cli(*args):
    subprocess.run([sys.executable, "-m", "mnq", "classify", *map(str, args)], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="?", default=SHARED / "images" / "imagenet_val")
    p.add_argument("--model", default=SHARED / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    a = p.parse_args()

    import mnq.distributed
    from mnq.cli import main as mnq_main
    from mnq.pipeline import find_images

    paths = find_images([str(a.images)], lambda path, why: None)
    out = Path(tempfile.mkdtemp()) / "results.parquet"
    common = (a.images, "--model", a.model, "--batch-size", a.batch_size)
    rows = {}
    print(f"{len(paths)} images, {os.cpu_count()} cores, load average before {os.getloadavg()}")
    rows["single process, end to end"] = [timed(lambda: cli(*common, "--format", "json", "--output", os.devnull))
                                          for _ in range(a.runs)]
    rows["single process, in this process"] = [
        timed(lambda: mnq_main(["classify", *map(str, common), "--format", "json", "--output", os.devnull]))
        for _ in range(a.runs)]
    rows["single process, --threads 1, in this process"] = [
        timed(lambda: mnq_main(["classify", *map(str, common), "--threads", "1", "--format", "json",
                                "--output", os.devnull]))
        for _ in range(a.runs)]
    rows[f"--scheduler local ({a.workers} workers), end to end"] = [
        timed(lambda: cli(*common, "--scheduler", "local", "--workers", a.workers, "--output", out))
        for _ in range(a.runs)]
    with mnq.distributed.connect("local", a.workers) as client:
        def once():
            table = mnq.distributed.classify_paths(paths, a.model, client, batch_size=a.batch_size)
            mnq.distributed.write_parquet(table, str(out))
        once()  # the workers load the model; later runs reuse it
        rows[f"{a.workers} workers, cluster already running"] = [timed(once) for _ in range(a.runs)]
    for name, seconds in rows.items():
        median = statistics.median(seconds)
        print(f"{name:45s} {len(paths) / median:6.1f} images/s (median {median:.2f} s of "
              f"{', '.join(f'{s:.2f}' for s in seconds)})")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
