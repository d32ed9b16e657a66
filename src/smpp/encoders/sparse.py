"""Sparse lexical weights (bge-m3) as an Arrow column.

Type: map<string, float32>. A map is Arrow's and Parquet's own type for a dict (MAP logical
type): keys are non-null and one per entry, DuckDB, Spark and Polars read it as a map, and it
needs no field names of ours. Keys stay the token-id strings BGEM3FlagModel gives, so a cell
turned back into a dict works with its compute_lexical_matching_score. float32 is the model's
own precision. A missing text (None) is a null cell; a text with no positive weight is an
empty map, so the two stay apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pyarrow as pa

SPARSE_TYPE = pa.map_(pa.string(), pa.float32())


def sparse_to_arrow(weights: Sequence[Mapping[str, float] | None]) -> pa.MapArray:
    """Per-row lexical weights (token id -> weight, or None) as a map<string, float32> array."""
    cells: list[list[tuple[str, float]] | None] = []
    for row, item in enumerate(weights):
        if item is None:
            cells.append(None)
            continue
        if not isinstance(item, Mapping):
            raise TypeError(f"row {row}: lexical weights must be a mapping or None, not {type(item).__name__}")
        for token, weight in item.items():
            if not math.isfinite(float(weight)):
                raise ValueError(f"row {row}: token {token!r} has a non-finite weight {weight!r}")
        cells.append([(str(token), float(weight)) for token, weight in item.items()])
    return pa.array(cells, type=SPARSE_TYPE)


def sparse_from_arrow(column: pa.Array | pa.ChunkedArray) -> list[dict[str, float] | None]:
    """The inverse of sparse_to_arrow: one dict (or None) per row."""
    return [None if cell is None else dict(cell) for cell in column.to_pylist()]
