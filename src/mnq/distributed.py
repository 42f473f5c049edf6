"""Classify many images on a Dask cluster into one table (needs Dask and pyarrow: `pip install '.[dask]'`
from a checkout of mnq).

    from dask.distributed import Client
    import mnq.distributed

    client = Client("tcp://scheduler:8786")
    table = mnq.distributed.classify_paths("/data/photos/**/*.jpg", model="/models/m.tflite", client=client)
    table.to_parquet("results.parquet", write_index=False)

The path list is cut into tasks of `batch_size` paths (dask.dataframe.from_map). Each task
decodes its files on the worker, runs them through the model in one call and returns a
pandas DataFrame with the columns of schema(top_k), in input order. A file that cannot be
read is a row with `error` set, never a failed task. Tasks lost with a worker are rerun by the
scheduler, and each task owns a fixed slice of the paths, so every path appears exactly once.

Model once per worker: a WorkerPlugin (ModelPlugin), rather than a per-process cache,
because registering it loads the model on every worker at once, so a model file the
workers cannot read fails classify_paths() at once instead of every task later; because
setup() sees the worker's Dask thread count and its host, which decide mnq's thread count;
and because the scheduler hands it to every worker that joins later (replacements included).

Threads: a worker running T Dask threads owns C cores (`threads_per_worker`, default the
host's cores divided by the worker processes the scheduler knows on that host); each task
decodes with, and each inference runs on, max(1, C // T) threads, so the worker never runs
more busy threads than its cores. Recommended: one Dask thread per worker process
(`dask worker --nthreads 1`), so mnq's threads take all of C.
"""
from __future__ import annotations

import glob
import os
from contextlib import contextmanager
from typing import Iterable, List, Optional, Union

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
from dask.base import tokenize
from distributed import Client, LocalCluster, WorkerPlugin, default_client, get_worker

from .labels import label_of, with_labels
from .model import default_threads, load
from .pipeline import classified, decoded, infer
from .results import row, schema  # noqa: F401 - schema is part of this module's API


def to_pandas(table: pa.Table) -> pd.DataFrame:
    # Arrow-backed columns keep int32 with nulls as they are, through Dask and into Parquet
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def mnq_threads(cores: int, dask_threads: int) -> int:
    """Threads per inference for a worker owning `cores` cores and running `dask_threads` tasks at once."""
    return max(1, cores // max(1, dask_threads))


class ModelPlugin(WorkerPlugin):
    """Loads the model once in each worker process; tasks find it under the plugin's name."""

    idempotent = True  # registering the same model and settings again keeps the loaded one

    def __init__(self, path: str, threads_per_worker: Optional[int] = None, isa: Optional[str] = None):
        self.path, self.threads_per_worker, self.isa = path, threads_per_worker, isa
        try:  # a rewritten model file gets a new name, so workers load it again
            stat = os.stat(path)
            version = (stat.st_size, stat.st_mtime_ns)
        except OSError:  # may exist on the workers only
            version = None
        self.name = "mnq-model-" + tokenize(path, threads_per_worker, isa, version)
        self.model = None

    async def setup(self, worker):
        cores = self.threads_per_worker or await self._cores_on_this_worker(worker)
        self.model = with_labels(load(self.path, num_threads=mnq_threads(cores, worker.state.nthreads), isa=self.isa))

    @staticmethod
    async def _cores_on_this_worker(worker) -> int:
        """This host's cores shared among the worker processes the scheduler knows on it."""
        workers = (await worker.scheduler.identity())["workers"].values()
        on_host = sum(1 for w in workers if w["host"] == worker.host)
        return max(1, default_threads() // max(1, on_host))


def classify_paths(paths_or_glob: Union[str, os.PathLike, Iterable[str]], model: Union[str, os.PathLike],
                   client: Optional[Client] = None, batch_size: int = 64,
                   threads_per_worker: Optional[int] = None, top_k: int = 5,
                   isa: Optional[str] = None) -> dd.DataFrame:
    """A lazy Dask DataFrame (columns: schema(top_k), one row per path, in input order).

    paths_or_glob: a glob pattern (`**` recurses; matches are sorted) or a list of paths.
        Paths are opened on the workers as given: absolute paths on a filesystem every
        worker mounts at the same place (relative ones resolve in each worker's directory).
    model: model file, read by the workers (made absolute here).
    client: the cluster to run on (default: the current Dask client).
    batch_size: images per task and per inference call.
    threads_per_worker: cores mnq may use in each worker process, shared by its Dask
        threads (default: the host's cores / the worker processes on that host).
    """
    pattern = isinstance(paths_or_glob, (str, os.PathLike))
    paths = sorted(glob.glob(os.fspath(paths_or_glob), recursive=True)) if pattern \
        else [os.fspath(p) for p in paths_or_glob]
    if not paths:
        raise ValueError(f"no files match {os.fspath(paths_or_glob)!r}" if pattern else "no paths given")
    if batch_size < 1 or top_k < 1:
        raise ValueError(f"batch_size and top_k must be at least 1, got {batch_size} and {top_k}")
    if client is None:
        try:
            client = default_client()
        except ValueError:
            raise ValueError("no Dask client: pass client=Client(SCHEDULER_ADDRESS) (or LocalCluster()), "
                             "or create one first") from None
    plugin = ModelPlugin(os.path.abspath(model), threads_per_worker, isa)
    client.register_plugin(plugin)  # raises here if a worker cannot load the model
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    return dd.from_map(classify_partition, chunks, meta=to_pandas(schema(top_k).empty_table()), label="mnq-classify",
                       plugin_name=plugin.name, top_k=top_k)


def classify_partition(paths: List[str], plugin_name: str, top_k: int) -> pd.DataFrame:
    """One task: decode, classify and tabulate a slice of paths on the worker running it."""
    model = get_worker().plugins[plugin_name].model
    items = list(decoded(paths, model.input_shape[:2], workers=model.num_threads, lookahead=len(paths)))
    rows = [row(path, classes, values, error, lambda c: label_of(model, c))
            for path, classes, values, error in classified(items, infer(model, items), top_k)]
    return to_pandas(pa.Table.from_pylist(rows, schema=schema(top_k)))


def write_parquet(table: dd.DataFrame, path: str) -> int:
    """Write the table as a Parquet dataset (a folder of part files, replaced if it exists)
    and return how many rows have an error, computed in the same pass."""
    written = table.to_parquet(path, write_index=False, overwrite=True, compute=False)
    _, errors = dask.compute(written, table["error"].count())
    return int(errors)


@contextmanager
def connect(scheduler: str, workers: Optional[int] = None):
    """A Client for `scheduler`: a scheduler address, or "local" for a LocalCluster on
    127.0.0.1 with `workers` single-threaded worker processes (default: one per core)."""
    if scheduler != "local":
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers or default_threads(), threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
