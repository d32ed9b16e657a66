"""The merged feature table of a day: metadata + image features + embeddings, validated."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from smpp.features import schema
from smpp.features.author_history import HISTORY_COLUMNS
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


# emoji and pictographs (U+1F000 on), dingbats and misc symbols (U+2600-27BF), variation selector 16
_EMOJI = r"[\U0001F000-\U0001FFFF\u2600-\u27BF\uFE0F]"
_FIRST_PERSON = r"(?i)\b(?:i|i'm|im|i've|i'd|me|my|mine|myself|we|our|us)\b"


def title_form_features(titles: pd.Series) -> dict[str, np.ndarray]:
    """schema.TITLE_FORM_COLUMNS of each title: capitals, punctuation, digits, tags, first person, emoji."""
    titles = titles.fillna("").astype(str)
    letters = titles.str.count(r"[A-Za-z]")
    capitals = titles.str.count(r"[A-Z]")
    features = {
        # share of letters that are capitals (0 for a title without letters)
        "title_caps_ratio": (capitals / letters.where(letters > 0)).fillna(0.0),
        "title_all_caps_words": titles.str.count(r"\b[A-Z]{2,}\b"),
        "title_exclamations": titles.str.count("!").clip(upper=10),
        "title_question": titles.str.contains("?", regex=False),
        "title_digits_log": np.log1p(titles.str.count(r"[0-9]")),
        "title_bracket_tag": titles.str.contains(r"[\[(][^\])]{1,30}[\])]", regex=True),
        "title_oc_tag": titles.str.contains(r"(?i)[\[(]\s*oc\s*[\])]", regex=True),
        "title_first_person": titles.str.contains(_FIRST_PERSON, regex=True),
        "title_emoji": titles.str.count(_EMOJI).clip(upper=10),
        "title_quote": titles.str.contains(r"[\"\u201c\u201d]", regex=True),
    }
    return {name: pd.Series(values).astype("float32").to_numpy() for name, values in features.items()}


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
    selftext = (
        pd.to_numeric(posts["selftext_len"], errors="coerce")
        if "selftext_len" in posts
        else pd.Series(np.nan, index=posts.index)
    )
    return {
        "domain": np.array([normalise_domain(d) for d in domains], dtype=object),
        "selftext_len_log": np.log1p(selftext.clip(lower=0)).astype("float32").to_numpy(),
    }


def vectors_by_post(post_ids: Sequence[str], frame: pd.DataFrame | None, column: str) -> list[np.ndarray | None]:
    """`column`'s vector for each of `post_ids` from a (post_id, column) frame; None where absent."""
    if frame is None or frame.empty or column not in frame:
        return [None] * len(post_ids)
    found = {pid: vec for pid, vec in zip(frame["post_id"], frame[column]) if vec is not None}
    return [found.get(pid) for pid in post_ids]


def build_feature_table(
    posts: pd.DataFrame,
    authors: pd.DataFrame,
    *,
    day: date | None,
    history: pd.DataFrame,
    dims: dict[str, int],
    embeddings: Mapping[str, Sequence[np.ndarray | None]] | None = None,
    image_ok: Collection[str] = (),
    image_features: pd.DataFrame | None = None,
    author_keys: Sequence[str] | None = None,
) -> pa.Table:
    """The feature rows of `posts`, validated: the one assembly the DAG, `smpp evaluate` and `smpp predict` share.

    posts: id, subreddit, author, created_utc, title, is_self, over_18 (+ domain, selftext_len).
    authors: first-sight facts by name (name, created_utc, link_karma, comment_karma).
    day: the run's day for `ds`; None gives each post its own UTC creation day.
    history: HISTORY_COLUMNS, one row per post in `posts` order (leak-free, computed by the caller's store).
    embeddings: column -> one vector per post in `posts` order (None: modality missing, masked by the model).
    image_ok: ids of posts whose image was fetched; image_features: post_id + IMAGE_FEATURE_COLUMNS.
    author_keys: join `authors` on these per-post keys instead of the name (facts stated per post).
    """
    # an empty day's partitions come back with float columns: give keys one dtype to merge on
    posts = posts.astype({c: object for c in ("id", "subreddit", "author", "title") if c in posts}).reset_index(
        drop=True
    )
    post_ids = posts["id"].astype(str).tolist()
    keyed = posts if author_keys is None else posts.assign(author=list(author_keys))
    meta = metadata_features(keyed, authors)
    created = pd.to_numeric(posts["created_utc"]).astype("int64")
    if day is not None:
        ds = [day.isoformat()] * len(posts)
    else:
        ds = pd.to_datetime(created, unit="s", utc=True).dt.strftime("%Y-%m-%d").tolist()
    table: dict[str, pa.Array] = {
        "post_id": pa.array(post_ids, pa.string()),
        "subreddit": pa.array(posts["subreddit"].astype(str).tolist(), pa.string()),
        "author": pa.array(posts["author"], pa.string(), from_pandas=True),
        "created_utc": pa.array(created.tolist(), pa.int64()),
        "ds": pa.array(ds, pa.string()),
    }
    meta["has_image"] = posts["id"].isin(set(image_ok)).astype("float32").to_numpy()
    for col in schema.META_COLUMNS:
        table[col] = pa.array(meta[col].to_numpy(np.float32), pa.float32())
    extra = extra_post_features(posts)
    table["domain"] = pa.array(extra["domain"].tolist(), pa.string())
    table["selftext_len_log"] = pa.array(extra["selftext_len_log"], pa.float32(), from_pandas=True)
    for col, values in title_form_features(posts["title"]).items():
        table[col] = pa.array(values, pa.float32())
    if image_features is None or image_features.empty:
        image_features = pd.DataFrame(columns=["post_id", *schema.IMAGE_FEATURE_COLUMNS])
    imgf = posts[["id"]].merge(image_features.astype({"post_id": object}), left_on="id", right_on="post_id", how="left")
    for col in schema.IMAGE_FEATURE_COLUMNS:
        values = imgf[col].to_numpy(np.float32) if col in imgf else np.full(len(posts), np.nan, np.float32)
        table[col] = pa.array(values, pa.float32(), from_pandas=True)
    if len(history) != len(posts):
        raise FeatureValidationError(f"history has {len(history)} rows for {len(posts)} posts")
    for col in HISTORY_COLUMNS:
        values = history[col].to_numpy(np.float32) if len(history) else np.zeros(0, np.float32)
        table[col] = pa.array(values, pa.float32(), from_pandas=True)
    embeddings = embeddings or {}
    for column, dim in dims.items():
        vectors = embeddings.get(column)
        if vectors is None:
            vectors = [None] * len(posts)
        if len(vectors) != len(posts):
            raise FeatureValidationError(f"{column}: {len(vectors)} vectors for {len(posts)} posts")
        table[column] = vectors_to_arrow(list(vectors), dim)
    result = pa.table(table)
    validate_feature_table(result, expected_rows=len(posts), dims=dims)
    return result


def feature_frame_of(table: pa.Table) -> pd.DataFrame:
    """A feature table as the in-memory frame training and scoring take (vectors as arrays, None where missing)."""
    vector_columns = [c for c in table.column_names if pa.types.is_fixed_size_list(table.schema.field(c).type)]
    frame = table.drop_columns(vector_columns).to_pandas()
    for column in vector_columns:
        array = table.column(column).combine_chunks()
        dim = table.schema.field(column).type.list_size
        # child values hold a slot per row, nulls included: reshape once instead of a Python list per row
        matrix = (
            array.values.slice(array.offset * dim, len(array) * dim)
            .to_numpy(zero_copy_only=False)
            .astype(np.float32, copy=False)
            .reshape(len(array), dim)
        )
        missing = array.is_null().to_numpy(zero_copy_only=False)
        frame[column] = [None if gone else row for row, gone in zip(matrix, missing)]
    return frame[table.column_names]


def validate_feature_table(table: pa.Table, expected_rows: int, dims: dict[str, int]) -> None:
    """Fail loudly (and write nothing) on wrong row counts, dims, NaN/inf, or duplicate posts."""
    problems = []
    if table.num_rows != expected_rows:
        problems.append(f"{table.num_rows} rows, expected {expected_rows} (filtered posts)")
    ids = table.column("post_id").to_pylist()
    if len(set(ids)) != len(ids):
        problems.append("duplicate post_id")
    for col in [*schema.META_COLUMNS, *schema.TITLE_FORM_COLUMNS]:
        if col not in table.column_names:
            problems.append(f"missing column {col}")
            continue
        values = table.column(col).to_numpy(zero_copy_only=False)
        if not np.isfinite(values).all():
            problems.append(f"{col} has NaN/inf")
    for col in [*schema.IMAGE_FEATURE_COLUMNS, *HISTORY_COLUMNS]:
        if col not in table.column_names:
            problems.append(f"missing column {col}")
            continue
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
