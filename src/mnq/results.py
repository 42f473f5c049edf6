"""The table of classification results (one row per image) that both Parquet writers use:
`mnq classify --output X.parquet` on this machine and mnq.distributed on a Dask cluster."""
from __future__ import annotations

from typing import Optional


def schema(top_k: int):
    """One row per image: path; class_R, label_R, probability_R (uint8 softmax / 256) for
    ranks R = 1..top_k, highest first; error. The ranked columns are null for a file that
    failed, error is null for one that did not. Flat columns rather than lists: every
    Parquet reader and SQL engine takes them as they are."""
    import pyarrow as pa

    ranks = range(1, top_k + 1)
    return pa.schema([("path", pa.string())]
                     + [(f"class_{r}", pa.int32()) for r in ranks]
                     + [(f"label_{r}", pa.string()) for r in ranks]
                     + [(f"probability_{r}", pa.float64()) for r in ranks]
                     + [("error", pa.string())])


def row(path: str, classes, values, error: Optional[str], label_of) -> dict:
    """A row of schema(top_k) for one item of pipeline.classified(); label_of(class) -> name."""
    if error is not None:
        return {"path": path, "error": error}
    out = {"path": path, "error": None}
    for rank, (c, v) in enumerate(zip(classes.tolist(), values.tolist()), start=1):
        out.update({f"class_{rank}": c, f"label_{rank}": label_of(c), f"probability_{rank}": v / 256})
    return out
