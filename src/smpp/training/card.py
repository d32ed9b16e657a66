"""model_card.md: what was trained on what, how it scores against baselines and the champion, and its limits."""

from __future__ import annotations

from typing import Any

from smpp.training.metric_names import (
    CARD_METRICS,
    COMPARISON_COLUMNS,
    HEADLINE_METRIC,
    best_positions,
    column_label,
    direction_text,
    headline_missing_reason,
)

# Profiles whose encoders run with random weights (no model hub here), by embedding column.
RANDOM_WEIGHT_COLUMNS = {
    "tiny": ["title_emb", "caption_emb", "image_emb", "joint_emb"],
    "offline": ["caption_emb", "image_emb", "joint_emb"],
}


def random_encoder_warnings(profile: str, embedding_columns: list[str]) -> list[str]:
    """One loud line per tower fed by an encoder with random weights under `profile`."""
    affected = [c for c in RANDOM_WEIGHT_COLUMNS.get(profile, []) if c in embedding_columns]
    if not affected:
        return []
    return [
        f"RANDOM ENCODER WEIGHTS: model profile '{profile}' produced {', '.join(affected)} with randomly "
        "initialised encoders. These towers carry no semantic signal; any gain they show is noise or "
        "leakage of metadata. Do not read these metrics as evidence about content."
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    """Model, baselines (COMPARISON_COLUMNS order, as on the Metrics tab), champion; the best of each row in bold."""
    columns = [(column_label(key), metrics.get(key) or {}) for key in COMPARISON_COLUMNS if metrics.get(key)]
    champion = metrics.get("champion") or {}
    if champion.get("metrics"):
        columns.append((f"champion {champion.get('version')}", champion["metrics"]))
    header = ["metric", "better", *[label for label, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    headline_gap = headline_missing_reason(metrics.get("model"))
    for key in CARD_METRICS:
        values = [column.get(key) for _, column in columns]
        if all(v is None for v in values):
            continue  # a metric nothing reports (e.g. latency of an old version) is no row of n/a
        best = best_positions(key, values)
        cells = [f"**{_fmt(v)}**" if i in best else _fmt(v) for i, v in enumerate(values)]
        if key == HEADLINE_METRIC and headline_gap:
            cells[0] = f"n/a ({headline_gap})"
        lines.append("| " + " | ".join([key, direction_text(key), *cells]) + " |")
    return lines


def _not_trained_card(metrics: dict[str, Any]) -> str:
    """A skipped training: why and what to do, the rows it had, its warnings; no empty sections."""
    rows = metrics.get("rows") or {}
    window = metrics.get("data_window") or {}
    lines = [f"# smpp popularity model {metrics.get('version', '?')}: not trained", ""]
    lines += [f"Attempted {metrics.get('created_utc')} with model profile `{metrics.get('profile')}`.", ""]
    lines += ["## Why no model", "", f"**Skipped:** {metrics['skipped_reason']}", ""]
    counts = [f"{name} {rows[name]}" for name in ("input", "labelled", "in_window") if rows.get(name) is not None]
    if counts:
        lines.append("- Rows: " + ", ".join(counts))
    if window.get("start") or window.get("end"):
        lines.append(f"- Labelled posts created {window.get('start')} to {window.get('end')}")
    for warning in metrics.get("warnings") or []:
        lines.append(f"- {warning}")
    lines.append("")
    return "\n".join(lines)


def render_model_card(metrics: dict[str, Any], history_summary: dict[str, Any] | None) -> str:
    if metrics.get("skipped_reason"):
        return _not_trained_card(metrics)
    version = metrics.get("version", "?")
    window = metrics.get("data_window") or {}
    rows = metrics.get("rows") or {}
    lines = [f"# smpp popularity model {version}", ""]
    lines.append(f"Created {metrics.get('created_utc')} with model profile `{metrics.get('profile')}`.")
    lines.append("")
    for warning in metrics.get("warnings") or []:
        lines += [f"> **WARNING: {warning}**", ""]

    lines += ["## Data", ""]
    lines.append(f"- Window: {window.get('start')} to {window.get('end')} (created_utc of labelled posts)")
    for part in ("train", "val", "test"):
        part_window = window.get(part) or {}
        lines.append(
            f"- {part}: {rows.get(part, 0)} posts, {part_window.get('start', 'n/a')} to {part_window.get('end', 'n/a')}"
        )
    lines.append(
        f"- Input rows {rows.get('input', 'n/a')}, labelled {rows.get('labelled', 'n/a')}, "
        f"in the training window {rows.get('in_window', 'n/a')}. Split is chronological: train is oldest, test newest."
    )
    lines.append("- Label: log1p(max(score, 0)) at a fixed post age.")
    lines.append("")

    features = metrics.get("features") or {}
    dims = metrics.get("embedding_dims") or {}
    lines += ["## Features", ""]
    towers = features.get("embedding_towers") or []
    lines.append(
        "- Embedding towers (masked when missing): "
        + (", ".join(f"{c} ({dims.get(c)}-d)" for c in towers) if towers else "none")
    )
    lines.append(
        f"- Tabular tower: {len(features.get('tabular_columns') or [])} metadata, image and leak-free history "
        "features, NaN masked: " + ", ".join(features.get("tabular_columns") or [])
    )
    if features.get("domain"):
        lines.append("- Link domain embedding (domains seen at least 5 times in train, one OOV bucket)")
    lines.append(
        f"- Subreddit embedding over {features.get('subreddit_vocabulary', 'n/a')} train subreddits, one OOV bucket"
    )
    lines.append("")

    if metrics.get("model"):
        model = metrics["model"]
        lines += ["## Test metrics", ""]
        lines += _metrics_table(metrics)
        lines.append("")
        lines.append(
            f"Within-subreddit Spearman averages subreddits with at least {model.get('within_subreddit_min_posts')} "
            f"test posts ({model.get('subreddits_scored')} qualified). Constant predictions score 0 within a subreddit."
            " The best value of each row is in bold."
        )
        champion = metrics.get("champion") or {}
        if champion.get("version"):
            if champion.get("metrics"):
                lines.append(f"Champion {champion['version']} was re-scored on this same test slice.")
            else:
                lines.append(f"Champion {champion['version']} could not be re-scored: {champion.get('error')}")
        else:
            lines.append("No champion existed when this version was trained.")
        lines.append("")
        lines += ["## Model", ""]
        lines.append(f"- Parameters: {model.get('params')}")
        lines.append(
            f"- Latency: {_fmt(model.get('latency_ms_per_post'))} ms per post (batch scoring, CPU of the trainer)"
        )
        if history_summary:
            lines.append(
                f"- Epochs run {history_summary.get('epochs_run')}, best epoch {history_summary.get('best_epoch')} "
                f"(best validation MSE {_fmt(history_summary.get('best_val_loss'))}), early stopping on validation loss"
            )
        lines.append("")

    lines += [
        "## Known limits",
        "",
        "- Overall Spearman is dominated by subreddit size; judge content signal by within-subreddit Spearman.",
        "- Subreddits unseen in training share one out-of-vocabulary embedding and the global mean as their offset.",
        "- The network learns the residual after the train-slice subreddit mean; a subreddit whose level drifts "
        "is followed only through the history features (recent subreddit mean), until the next retrain.",
        "- Scores are for posts that passed the pipeline filters; removed, NSFW (if dropped) and very short posts "
        "are out of scope.",
        "- Popularity also depends on things no feature sees (front-page luck, time-of-day competition, later edits).",
        "- Reddit's Data API terms restrict training models on user content without permission; "
        "check before any use beyond research.",
    ]
    for warning in metrics.get("warnings") or []:
        lines.append(f"- {warning}")
    lines.append("")
    return "\n".join(lines)
