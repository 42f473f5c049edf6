"""`mnq classify` output formats. Each writer takes results in input order:
result(path, classes, values) or error(path, message), then close()."""
from __future__ import annotations

import csv
import json
import sys
from typing import Optional

from ..errors import UsageError
from ..labels import label_of
from .common import say


class TextWriter:
    """Human-readable: the path, then one line per class; errors go to stderr."""

    def __init__(self, out, model, top_k):
        self.out, self.model = out, model

    def result(self, path, classes, values):
        lines = [path] + [f"  {v / 256:.3f}  {c:4d}  {label_of(self.model, c)}" for c, v in zip(classes, values)]
        self.out.write("\n".join(lines) + "\n")

    def error(self, path, message):
        say(f"mnq: {path}: error: {message}")

    def close(self):
        pass


class JsonLinesWriter:
    """One JSON object per image and line, so the output streams and `jq` reads it."""

    def __init__(self, out, model, top_k):
        self.out, self.model = out, model

    def result(self, path, classes, values):
        top = [{"class": int(c), "label": label_of(self.model, c), "probability": int(v) / 256}
               for c, v in zip(classes, values)]
        self.out.write(json.dumps({"file": path, "top_k": top}, ensure_ascii=False) + "\n")

    def error(self, path, message):
        self.out.write(json.dumps({"file": path, "error": message}, ensure_ascii=False) + "\n")

    def close(self):
        pass


class CsvWriter:
    """Long format, one row per (image, rank); a failed image is one row with `error` set."""

    HEADER = ("file", "rank", "class", "label", "probability", "error")

    def __init__(self, out, model, top_k):
        self.model = model
        self.rows = csv.writer(out, lineterminator="\n")
        self.rows.writerow(self.HEADER)

    def result(self, path, classes, values):
        for rank, (c, v) in enumerate(zip(classes, values), start=1):
            self.rows.writerow((path, rank, int(c), label_of(self.model, c), int(v) / 256, ""))

    def error(self, path, message):
        self.rows.writerow((path, "", "", "", "", message))

    def close(self):
        pass


class ParquetWriter:
    """One Parquet file with the columns of mnq.results.schema (the table the Dask path
    writes), a row group per batch; needs pyarrow only."""

    def __init__(self, path: str, model, top_k):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError("Parquet output needs pyarrow: pip install pyarrow") from None
        from ..results import schema

        self.pa, self.model, self.schema = pa, model, schema(top_k)
        self.rows = []
        try:
            self.file = pq.ParquetWriter(path, self.schema)
        except OSError as exc:
            raise UsageError(f"cannot write --output {path}: {exc}") from None

    def result(self, path, classes, values):
        from ..results import row

        self.rows.append(row(path, classes, values, None, lambda c: label_of(self.model, c)))

    def error(self, path, message):
        self.rows.append({"path": path, "error": message})

    def flush(self):
        if self.rows:
            self.file.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self):
        self.flush()
        self.file.close()


WRITERS = {"text": TextWriter, "json": JsonLinesWriter, "csv": CsvWriter}


def open_output(path: Optional[str]):
    if not path or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None
