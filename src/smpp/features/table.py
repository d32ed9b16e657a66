"""The merged feature table of a day: metadata + image features + embeddings, validated."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from smpp.features import schema
from smpp.storage import vectors_to_arrow


class FeatureValidationError(ValueError):
    pass


def _log1p_nonneg(values: pd.Series) -> pd.Series:
    return np.log1p(pd.to_numeric(values, errors="coerce").clip(lower=0))


def metadata_features(posts: pd.DataFrame, authors: pd.DataFrame) -> pd.DataFrame:
    """Posting-time metadata. `authors`: name, created_utc, link_karma, comment_karma (first sight)."""
    out = pd.DataFrame({"post_id": posts["id"].to_numpy()})
    titles = posts["title"].fillna("")
    out["title_chars"] = titles.str.len().astype("float32").to_numpy()
    out["title_words"] = titles.str.split().str.len().fillna(0).astype("float32").to_numpy()
    out["is_self"] = posts["is_self"].astype("float32").to_numpy()
    out["over_18"] = posts["over_18"].astype("float32").to_numpy()
    created = pd.to_datetime(posts["created_utc"], unit="s", utc=True)
    hour = (created.dt.hour + created.dt.minute / 60.0).to_numpy()
    dow = created.dt.dayofweek.to_numpy()
    out["hour_sin"] = np.sin(2 * math.pi * hour / 24).astype("float32")
    out["hour_cos"] = np.cos(2 * math.pi * hour / 24).astype("float32")
    out["dow_sin"] = np.sin(2 * math.pi * dow / 7).astype("float32")
    out["dow_cos"] = np.cos(2 * math.pi * dow / 7).astype("float32")
    merged = posts[["id", "author", "created_utc"]].merge(
        authors.rename(columns={"name": "author", "created_utc": "author_created_utc"}),
        on="author",
        how="left",
    )
    known = merged["link_karma"].notna() | merged["author_created_utc"].notna()
    out["author_known"] = known.astype("float32").to_numpy()
    out["author_link_karma_log"] = _log1p_nonneg(merged["link_karma"]).fillna(0).astype("float32").to_numpy()
    out["author_comment_karma_log"] = _log1p_nonneg(merged["comment_karma"]).fillna(0).astype("float32").to_numpy()
    age_days = (merged["created_utc"] - merged["author_created_utc"]) / 86400.0
    out["author_account_age_days_log"] = _log1p_nonneg(age_days).fillna(0).astype("float32").to_numpy()
    return out


def normalise_domain(domain: object) -> str:
    """Lower-case host without "www."; every "self.<subreddit>" is just "self" (the subreddit is its own input)."""
    if not isinstance(domain, str) or not domain.strip():
        return ""
    host = domain.strip().lower().removeprefix("www.")
    return "self" if host.startswith("self.") else host


def extra_post_features(posts: pd.DataFrame) -> dict[str, np.ndarray]:
    """Posting-time features beyond META_COLUMNS: link domain (a category) and selftext length."""
    n = len(posts)
    domains = posts["domain"] if "domain" in posts else pd.Series([None] * n, index=posts.index)
    selftext = pd.to_numeric(posts["selftext_len"], errors="coerce") if "selftext_len" in posts else pd.Series(np.nan, index=posts.index)
    return {
        "domain": np.array([normalise_domain(d) for d in domains], dtype=object),
        "selftext_len_log": np.log1p(selftext.clip(lower=0)).astype("float32").to_numpy(),
    }


def _vectors_by_post(frame: pd.DataFrame | None, column: str) -> dict[str, np.ndarray]:
    if frame is None or frame.empty or column not in frame:
        return {}
    return {pid: vec for pid, vec in zip(frame["post_id"], frame[column]) if vec is not None}


def build_feature_table(
    day: date,
    posts: pd.DataFrame,
    authors: pd.DataFrame,
    images: pd.DataFrame,
    image_features: pd.DataFrame,
    embeddings: dict[str, pd.DataFrame],
    dims: dict[str, int],
) -> pa.Table:
    """One row per kept post of `day`. `embeddings`: column -> frame(post_id, column)."""
    # an empty day's partitions come back with float columns: give keys one dtype to merge on
    posts = posts.astype({c: object for c in ("id", "subreddit", "author", "title") if c in posts})
    image_features = image_features.astype({"post_id": object})
    meta = metadata_features(posts, authors)
    table: dict[str, pa.Array] = {
        "post_id": pa.array(posts["id"].astype(str).tolist(), pa.string()),
        "subreddit": pa.array(posts["subreddit"].astype(str).tolist(), pa.string()),
        "author": pa.array(posts["author"], pa.string(), from_pandas=True),
        "created_utc": pa.array(posts["created_utc"].astype("int64").tolist(), pa.int64()),
        "ds": pa.array([day.isoformat()] * len(posts), pa.string()),
    }
    ok_ids = set(images.loc[images["status"] == "ok", "post_id"]) if not images.empty else set()
    meta["has_image"] = posts["id"].isin(ok_ids).astype("float32").to_numpy()
    for col in schema.META_COLUMNS:
        table[col] = pa.array(meta[col].to_numpy(np.float32), pa.float32())
    extra = extra_post_features(posts)
    table["domain"] = pa.array(extra["domain"].tolist(), pa.string())
    table["selftext_len_log"] = pa.array(extra["selftext_len_log"], pa.float32(), from_pandas=True)
    imgf = posts[["id"]].merge(image_features, left_on="id", right_on="post_id", how="left")
    for col in schema.IMAGE_FEATURE_COLUMNS:
        values = imgf[col].to_numpy(np.float32) if col in imgf else np.full(len(posts), np.nan, np.float32)
        table[col] = pa.array(values, pa.float32(), from_pandas=True)
    for column, frame in embeddings.items():
        by_post = _vectors_by_post(frame, column)
        table[column] = vectors_to_arrow([by_post.get(pid) for pid in posts["id"]], dims[column])
    result = pa.table(table)
    validate_feature_table(result, expected_rows=len(posts), dims=dims)
    return result


def validate_feature_table(table: pa.Table, expected_rows: int, dims: dict[str, int]) -> None:
    """Fail loudly (and write nothing) on wrong row counts, dims, NaN/inf, or duplicate posts."""
    problems = []
    if table.num_rows != expected_rows:
        problems.append(f"{table.num_rows} rows, expected {expected_rows} (filtered posts)")
    ids = table.column("post_id").to_pylist()
    if len(set(ids)) != len(ids):
        problems.append("duplicate post_id")
    for col in schema.META_COLUMNS:
        values = table.column(col).to_numpy(zero_copy_only=False)
        if not np.isfinite(values).all():
            problems.append(f"{col} has NaN/inf")
    for col in schema.IMAGE_FEATURE_COLUMNS:
        values = table.column(col).to_numpy(zero_copy_only=False)
        if np.isinf(values).any():
            problems.append(f"{col} has inf")
    for col, dim in dims.items():
        if col not in table.column_names:
            problems.append(f"missing embedding column {col}")
            continue
        field_type = table.schema.field(col).type
        if not pa.types.is_fixed_size_list(field_type) or field_type.list_size != dim:
            problems.append(f"{col} is {field_type}, expected fixed_size_list[{dim}]")
            continue
        flat = table.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        if not np.isfinite(flat).all():
            problems.append(f"{col} has NaN/inf")
    if problems:
        raise FeatureValidationError("feature table invalid: " + "; ".join(problems))
