"""mnq.distributed and `mnq classify --scheduler` on a real LocalCluster (2 worker processes
on 127.0.0.1), checked against the single-process `mnq classify` on the same files."""
import json
import os
import signal
import time

import pytest

pytest.importorskip("distributed", reason="Dask is not installed: pip install '.[dask]' to run the cluster tests")
pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install '.[dask]' to run the cluster tests")

import pandas as pd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import mnq.distributed  # noqa: E402
from conftest import IMAGES, MAIN_MODEL  # noqa: E402
from test_cli import mnq_cli, no_traceback  # noqa: E402

TOP_K = 3
BAD = {"ILSVRC2012_val_00000050_empty.JPEG": b"",
       "ILSVRC2012_val_00000150_text.JPEG": b"not a picture",
       "ILSVRC2012_val_00000250_cut.JPEG": None}  # None: a real JPEG cut short


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The 300 validation images (symlinked, not copied) with corrupt files sorted among them."""
    root = tmp_path_factory.mktemp("val")
    images = sorted(IMAGES.glob("*.JPEG"))
    for image in images:
        (root / image.name).symlink_to(image)
    for name, content in BAD.items():
        (root / name).write_bytes(content if content is not None else images[0].read_bytes()[:3000])
    return root


@pytest.fixture(scope="module")
def expected(folder):
    """Rows as the single-process `mnq classify --format json` reports them, in its order."""
    r = mnq_cli("classify", folder, "--model", MAIN_MODEL, "--format", "json", "--top-k", TOP_K)
    assert r.returncode == 1, r.stderr  # 1: the bad files
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def as_records(table: pd.DataFrame) -> list:
    """The cluster's table in the shape of the CLI's JSON Lines records."""
    records = []
    for row in table.to_dict("records"):
        if not pd.isna(row["error"]):
            records.append({"file": row["path"], "error": row["error"]})
            continue
        records.append({"file": row["path"], "top_k": [
            {"class": row[f"class_{r}"], "label": row[f"label_{r}"], "probability": row[f"probability_{r}"]}
            for r in range(1, TOP_K + 1)]})
    return records


def test_two_workers_match_single_process(client, folder, expected):
    table = mnq.distributed.classify_paths(folder / "*", MAIN_MODEL, client, batch_size=16, top_k=TOP_K)
    got = as_records(table.compute())
    assert len(got) == 303
    assert got == expected  # same order, classes, labels, probabilities and error messages
    errors = {os.path.basename(rec["file"]): rec["error"] for rec in got if "error" in rec}
    assert set(errors) == set(BAD)
    assert all("Pillow" in message or "decode" in message for message in errors.values()), errors
    # 2 workers, 1 Dask thread each, on this machine's cores: mnq takes its share, no more
    threads = client.run(lambda dask_worker: [p.model.num_threads for p in dask_worker.plugins.values()
                                              if isinstance(p, mnq.distributed.ModelPlugin)])
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert sorted(threads.values()) == [[share], [share]]


def test_cli_scheduler_writes_parquet(client, folder, expected, tmp_path):
    out = tmp_path / "results.parquet"
    r = mnq_cli("classify", folder, "--model", MAIN_MODEL, "--top-k", TOP_K, "--batch-size", "32",
                "--scheduler", client.scheduler.address, "--output", out)
    assert r.returncode == 1 and no_traceback(r), r.stderr
    assert f"300 images classified, {len(BAD)} failed, 0 skipped" in r.stderr
    assert as_records(pd.read_parquet(out)) == expected


def test_cli_scheduler_usage_errors(client, tmp_path):
    # (--output X.parquet without --scheduler is not an error: pyarrow writes it here, tests/test_users.py)
    r = mnq_cli("classify", IMAGES, "--scheduler", "local")
    assert r.returncode == 2 and "--output" in r.stderr and no_traceback(r)
    r = mnq_cli("classify", IMAGES, "--scheduler", client.scheduler.address, "--workers", "2",
                "--output", tmp_path / "r.parquet")
    assert r.returncode == 2 and "--workers is for --scheduler local" in r.stderr and no_traceback(r)
    # a model the workers cannot load fails at once, not task by task
    r = mnq_cli("classify", IMAGES, "--model", tmp_path / "absent.tflite", "--scheduler", client.scheduler.address,
                "--output", tmp_path / "r.parquet")
    assert r.returncode == 2 and "No such file" in r.stderr and no_traceback(r), r.stderr


def test_worker_killed_mid_run_loses_and_repeats_nothing(client, folder, expected):
    table = mnq.distributed.classify_paths(str(folder / "*"), MAIN_MODEL, client, batch_size=8, top_k=TOP_K)
    parts = client.futures_of(table.persist())
    deadline, busy = time.monotonic() + 120, None
    while busy is None:  # under way (a few batches done), far from done, and a worker mid-task
        assert time.monotonic() < deadline, "no worker got busy"
        if sum(f.status == "finished" for f in parts) >= 3:
            busy = next((address for address, keys in client.processing().items() if keys), None)
        time.sleep(0.05)
    pid = client.run(os.getpid, workers=[busy])[busy]
    os.kill(pid, signal.SIGKILL)  # its running task and the results it held are lost with it
    got = as_records(pd.concat(client.gather(parts)))
    assert sum(f.status == "finished" for f in parts) == len(parts)
    assert [rec["file"] for rec in got] == [rec["file"] for rec in expected]  # each exactly once, in order
    assert got == expected
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker in its place
    assert pid not in client.run(os.getpid).values()
