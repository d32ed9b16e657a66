"""Server-rendered HTML for the plugin pages (they run in Airflow's sandboxed iframe: no scripts).

Every value from an artifact is escaped; the model card is Markdown rendered with raw HTML
disabled (markdown-it escapes it), so a card cannot inject markup into the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from smpp.lifecycle.registry import FALLBACK_METRIC, PRIMARY_METRIC
from smpp.training.metric_names import BASELINE_NAMES, UI_METRICS, best_positions, column_label, direction_text
from smpp.ui.accounting import NOT_RECORDED, Level
from smpp.ui.artifacts import ModelView, RunView, VersionRow

FileUrl = Callable[[str, str], str]  # (version, file name) -> URL path

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1a202c;background:#fff;font-size:14px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:4px 0 10px}th,td{border:1px solid #e2e8f0;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f7fafc;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#718096}.note{background:#fffbea;border:1px solid #f6e05e;padding:8px 12px;border-radius:4px;margin:8px 0}
.empty{background:#f7fafc;border:1px dashed #a0aec0;padding:12px;border-radius:4px;margin:8px 0;line-height:1.5}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600}
.yes{background:#c6f6d5;color:#22543d}.no{background:#fed7d7;color:#822727}.champ{background:#fefcbf;color:#744210}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}.plot-gap{max-width:456px}.plots img{max-width:480px;width:100%;border:1px solid #e2e8f0;cursor:zoom-in}
#metrics td.best{background:#c6f6d5;font-weight:700}#metrics tr.headline td:first-child{font-weight:700}#metrics td.better{color:#4a5568;white-space:nowrap}
.why{color:#9c4221;font-size:12px}
#post-accounting td.part{padding-left:24px}#post-accounting tr.parent td{font-weight:600;background:#f7fafc}
#post-accounting tr.off td{background:#fed7d7;font-weight:700}
#versions td:nth-child(-n+4){white-space:nowrap}#versions td.why{min-width:200px}
.card{border:1px solid #e2e8f0;padding:4px 16px;border-radius:4px;max-width:960px}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
a{color:#2b6cb0}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def fmt(value: Any) -> str:
    """A cell value as escaped text (floats to 4 decimals, None as a dash)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, default=str)[:300])
    return escape(str(value))


def _cell(value: Any, *classes: str) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    names = " ".join(("num",) * numeric + classes)
    attribute = f" class='{names}'" if names else ""
    return f"<td{attribute}>{fmt(value)}</td>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]], table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    ident = f" id='{escape(table_id)}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_to_html(text: str) -> str:
    from markdown_it import MarkdownIt

    # "html": False makes raw HTML in the card literal text; markdown-it also refuses javascript: links
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _badge(promoted: bool | None, is_champion: bool) -> str:
    parts = []
    if is_champion:
        parts.append("<span class='badge champ'>★ champion</span>")
    if promoted is True:
        parts.append("<span class='badge yes'>promoted</span>")
    elif promoted is False:
        parts.append("<span class='badge no'>not promoted</span>")
    else:
        parts.append("<span class='badge'>no decision</span>")
    return " ".join(parts)


def when(value: Any, minutes: bool = True) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM' UTC (or the date alone); other values as they are."""
    if not isinstance(value, str):
        return "–" if value is None else str(value)
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return value
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
    return stamp.strftime("%Y-%m-%d %H:%M UTC" if minutes else "%Y-%m-%d")


def _window_text(window: dict[str, Any]) -> str:
    if not window.get("start") and not window.get("end"):
        return "–"
    return f"{when(window.get('start'), False)} → {when(window.get('end'), False)}"


def _metrics_table(model: ModelView) -> str:
    """One row per metric with which way is better; the best value of each row highlighted."""
    columns = list(model.comparison)
    metrics = [m for m in UI_METRICS if any(m in model.comparison[c] for c in columns)]
    head = "".join(f"<th>{escape(h)}</th>" for h in ["metric", "better", *columns])
    rows = []
    for metric in metrics:
        values = [model.comparison[c].get(metric) for c in columns]
        best = best_positions(metric, values)
        cells = []
        for i, value in enumerate(values):
            cell = _cell(value, *(("best",) if i in best else ()))
            if i == 0 and metric == PRIMARY_METRIC and model.headline_gap and value is None:
                cell = f"<td>– <span class='why' id='headline-gap'>({escape(model.headline_gap)})</span></td>"
            cells.append(cell)
        headline = " class='headline'" if metric == PRIMARY_METRIC else ""
        rows.append(
            f"<tr{headline}><td>{escape(metric)}</td><td class='better'>{escape(direction_text(metric))}</td>{''.join(cells)}</tr>"
        )
    return f"<table id='metrics'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def not_trained_box(reason: str) -> str:
    """'Headline: why — what to do' as three lines; a reason without that shape as it is."""
    head, _, rest = reason.partition(": ")
    if not rest:
        return f"<div class='empty' id='no-model'>{escape(reason)}</div>"
    why, _, todo = rest.partition(" — ")
    lines = [f"<b>{escape(head)}</b>", f"Why: {escape(why)}"] + ([f"What to do: {escape(todo)}"] if todo else [])
    return f"<div class='empty' id='no-model'>{'<br>'.join(lines)}</div>"


def model_section(model: ModelView, file_url: FileUrl, model_url: Callable[[str], str]) -> str:
    header = f"<h2>Model <a href='{escape(model_url(model.version))}'>{escape(model.version)}</a> "
    if model.status == "skipped":
        # why and what to do, once: no badge, rows table or card of a model that does not exist
        notes = "".join(f"<div class='note'>{escape(p)}</div>" for p in model.problems)
        return (
            header
            + "<span class='badge no'>not trained</span></h2>"
            + notes
            + not_trained_box(f"Training was skipped: {model.skipped_reason}")
        )
    parts = [
        header + f"{_badge(model.decision.get('promoted') if model.decision else None, model.is_champion)}</h2>",
        _table(
            ["field", "value"],
            [
                ("status", model.status),
                ("trained at", when(model.created)),
                ("model profile", model.profile),
                ("run day", model.run_day),
                ("data window (post creation time)", _window_text(model.data_window)),
                *[
                    (f"{part} window", _window_text(model.data_window.get(part) or {}))
                    for part in ("train", "val", "test")
                    if isinstance(model.data_window.get(part), dict)
                ],
                *[(f"rows: {k}", v) for k, v in model.rows.items()],
            ],
            "model-info",
        ),
    ]
    parts += [f"<div class='note'>{escape(p)}</div>" for p in model.problems]
    if model.comparison:
        parts.append("<h3>Metrics on the test slice: model, baselines and champion</h3>")
        parts.append(
            "<p class='muted'>Each row says which way is better; the best value of a row is highlighted."
            f" The promotion gate judges on the first row, {escape(PRIMARY_METRIC)}.</p>"
        )
        parts.append(_metrics_table(model))
        if model.champion_note:
            parts.append(f"<p class='muted'>{escape(model.champion_note)}</p>")
    if model.decision:
        verdict = "promoted to champion" if model.decision.get("promoted") else "not promoted"
        parts.append(
            f"<h3>Promotion decision</h3><p id='decision'><b>{verdict}</b>"
            f" (decided {fmt(when(model.decision.get('decided_at')))}): {fmt(model.decision.get('reason'))}</p>"
        )
    else:
        parts.append("<p class='muted'>No promotion decision recorded yet (evaluate_and_publish has not run).</p>")
    if model.warnings:
        parts.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{escape(w)}</li>" for w in model.warnings) + "</ul>")
    if model.plots or model.plot_gaps:
        # a plain link: the UI's iframe sandbox blocks new windows, so the plot opens full size in this frame
        figures = "".join(
            f"<figure><a href='{escape(file_url(model.version, name))}' title='open full size'>"
            f"<img src='{escape(file_url(model.version, name))}' alt='{escape(name)}' loading='eager'></a>"
            f"<figcaption class='muted'>{escape(name)}</figcaption></figure>"
            for name in model.plots
        )
        figures += "".join(
            f"<figure><div class='empty plot-gap' id='{escape(Path(name).stem)}-reason'>"
            f"<b>No {escape(Path(name).stem.removeprefix('plot_').replace('_', ' '))} plot</b><br>{escape(reason)}</div>"
            f"<figcaption class='muted'>{escape(name)}</figcaption></figure>"
            for name, reason in model.plot_gaps.items()
        )
        parts.append(
            f"<h3>Plots</h3><p class='muted'>Click a plot to open it full size.</p><div class='plots'>{figures}</div>"
        )
    if model.model_card:
        parts.append(f"<h3>Model card</h3><div class='card' id='model-card'>{markdown_to_html(model.model_card)}</div>")
    return "".join(parts)


def _unaccounted_cell(level: Level) -> tuple[str, bool]:
    """(text, is off): the remainder of a level, or why it cannot be computed."""
    if level.parent is None:
        return f"not computable: {level.parent_name} {NOT_RECORDED}", False
    if level.unaccounted is None:
        return f"not computable: a part is {NOT_RECORDED}", False
    return str(level.unaccounted), level.unaccounted != 0


def accounting_table(levels: list[Level]) -> str:
    """Each level's parent, its parts (a count or "not recorded") and the explicit remainder."""
    rows: list[str] = []
    for level in levels:
        note = f" ({level.note})" if level.note else ""
        parent = level.parent if level.parent is not None else NOT_RECORDED
        rows.append(
            f"<tr class='parent'><td>{escape(level.title)}: {escape(level.parent_name)}</td>{_cell(parent)}"
            f"<td>{escape(note.strip(' ()'))}</td></tr>"
        )
        for part in level.parts:
            count = part.count if part.count is not None else NOT_RECORDED
            rows.append(f"<tr>{_cell(part.name, 'part')}{_cell(count)}<td>{escape(part.note)}</td></tr>")
        text, off = _unaccounted_cell(level)
        row_class = " class='off'" if off else ""  # a nonzero remainder stands out
        rows.append(
            f"<tr{row_class}>{_cell('unaccounted', 'part')}<td class='num'>{escape(text)}</td>"
            "<td>should be 0: posts of the parent no part explains (negative: counted twice)</td></tr>"
        )
    head = "<thead><tr><th>posts</th><th>count</th><th>what it means</th></tr></thead>"
    return f"<table id='post-accounting'>{head}<tbody>{''.join(rows)}</tbody></table>"


def run_page(
    run: RunView | None,
    *,
    dag_id: str,
    run_id: str,
    interval: str | None,
    data_dir: str,
    file_url: FileUrl,
    model_url: Callable[[str], str],
    models_url: str,
    no_day_reason: str | None = None,
) -> str:
    head = (
        f"<h1>Run metrics</h1><p class='muted'>DAG <b>{escape(dag_id)}</b> · run <b>{escape(run_id)}</b>"
        + (f" · data interval {escape(interval)}" if interval else "")
        + f" · <a href='{escape(models_url)}'>all model versions</a></p>"
    )
    if run is None:
        return _page(
            "Run metrics", head + f"<div class='empty'>{escape(no_day_reason or 'No day for this run.')}</div>"
        )
    head += f"<p>Artifacts of day <b id='run-day'>ds={run.day.isoformat()}</b></p>"
    body = [head]
    body += [f"<div class='note'>{escape(p)}</div>" for p in run.problems]
    if not run.has_artifacts:
        body.append(
            f"<div class='empty' id='no-artifacts'>This run has no artifacts: nothing was written for ds={run.day.isoformat()}"
            f" under {escape(data_dir)} (the run has not started its tasks yet, or the workers write to another"
            " data folder than this API server reads).</div>"
        )
        return _page("Run metrics", "".join(body))
    if run.accounting:
        body.append("<h2>Where the day's posts went</h2>" + accounting_table(run.accounting))
    if run.funnel:
        body.append("<h2>Data counts by stage</h2>" + _table(["step", "posts"], run.funnel, "funnel"))
    body.append("<h2>Drop reasons</h2>")
    body.append(
        _table(["stage", "reason", "posts"], run.drop_reasons, "drop-reasons")
        if run.drop_reasons
        else "<p class='muted'>No posts were dropped (or no filter stage ran).</p>"
    )
    body.append("<h2>Label coverage</h2>")
    body.append(
        _table(["what", "count"], run.label_coverage, "label-coverage")
        if run.label_coverage
        else "<p class='muted'>No label counts recorded for this day.</p>"
    )
    # a run that trained nothing: one box (why, what to do), not the skipped attempt's empty card and badges
    if run.no_model_reason:
        body.append("<h2>Model</h2>" + not_trained_box(run.no_model_reason))
    elif run.model is not None:
        body.append(model_section(run.model, file_url, model_url))
    if run.other_versions:
        links = ", ".join(f"<a href='{escape(model_url(v))}'>{escape(v)}</a>" for v in run.other_versions)
        body.append(f"<p class='muted'>Earlier attempts of this day also trained: {links}</p>")
    body.append("<h2>Every stage's counts</h2>")
    for stage in run.stages:
        body.append(
            f"<details><summary>{escape(stage.name)}</summary>"
            f"{_table(['field', 'value'], stage.values.items())}</details>"
        )
    return _page("Run metrics", "".join(body))


def version_page(model: ModelView, file_url: FileUrl, model_url: Callable[[str], str], models_url: str) -> str:
    body = f"<p><a href='{escape(models_url)}'>← all model versions</a></p>" + model_section(model, file_url, model_url)
    return _page(f"Model {model.version}", body)


def chart_metric(rows: list[VersionRow]) -> str:
    """Within-subreddit Spearman; overall Spearman when no version has it (the gate's fallback too)."""
    return PRIMARY_METRIC if any(r.value(PRIMARY_METRIC) is not None for r in rows) else FALLBACK_METRIC


def best_baseline(row: VersionRow, metric: str) -> tuple[str, float] | None:
    """(name, value) of the baseline scoring highest on `metric` for this version's test slice; None if none did."""
    scored = [
        (name, float(value))
        for name in BASELINE_NAMES
        if isinstance(value := (row.baselines.get(name) or {}).get(metric), (int, float)) and math.isfinite(value)
    ]
    return max(scored, key=lambda pair: pair[1]) if scored else None


def chart_points(rows: list[VersionRow], metric: str) -> list[VersionRow]:
    """Versions with a `metric`, ordered by the data day their run processed (re-runs of a day by version)."""
    scored = [r for r in rows if r.value(metric) is not None]
    return sorted(scored, key=lambda r: (r.run_day is None, r.run_day or "", r.version))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round-numbered ticks (1, 2 or 5 x 10^k apart) covering [low, high]."""
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]
    return [round(t, 10) for t in ticks]


def _fitted_range(values: list[float]) -> tuple[float, float]:
    """A y range around the data (not pinned at 0), so the model-to-baseline gap fills the chart."""
    low, high = min(values), max(values)
    pad = max(0.1 * (high - low), 0.01)
    return low - pad, high + pad


def metric_chart_svg(rows: list[VersionRow], metric: str = PRIMARY_METRIC, width: int = 760, height: int = 280) -> str:
    """The model's `metric` and its best baseline's per version, by run day (oldest left); champion starred."""
    points = chart_points(rows, metric)
    if not points:
        return f"<p class='muted'>No trained version has a {escape(metric)} yet.</p>"
    baselines = [best_baseline(p, metric) for p in points]
    values = [p.value(metric) for p in points] + [b[1] for b in baselines if b is not None]
    ticks = nice_ticks(*_fitted_range([v for v in values if v is not None]))
    low, high = ticks[0], ticks[-1]
    pad_l, pad_r, pad_t, pad_b = 56, 16, 28, 44
    span_x = max(len(points) - 1, 1)
    inner = 20  # keeps the first/last marker clear of the axis labels

    def x(i: int) -> float:
        return pad_l + inner + (width - pad_l - pad_r - 2 * inner) * (i / span_x if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (v - low) / (high - low))

    svg = [
        f"<svg id='metric-chart' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='{escape(metric)} of the model and its best baseline by run day'>",
        f"<text x='{pad_l}' y='14' font-size='12'>model (blue) vs best baseline (grey, dashed), same test slice"
        " · y axis fitted to the data, not from 0</text>",
    ]
    for tick in ticks:
        svg.append(
            f"<line x1='{pad_l}' x2='{width - pad_r}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#e2e8f0'/>"
            f"<text class='y-tick' x='{pad_l - 6}' y='{y(tick) + 4:.1f}' font-size='11' text-anchor='end'>"
            f"{tick:.3f}</text>"
        )
    if low < 0 < high:
        svg.append(f"<line x1='{pad_l}' x2='{width - pad_r}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#718096'/>")
    base_pts = [(i, b) for i, b in enumerate(baselines) if b is not None]
    if len(base_pts) > 1:
        path = " ".join(f"{x(i):.1f},{y(b[1]):.1f}" for i, b in base_pts)
        svg.append(
            f"<polyline class='baseline-line' points='{path}' fill='none' stroke='#718096' stroke-width='1.5'"
            " stroke-dasharray='5 3'/>"
        )
    for i, (name, value) in base_pts:
        gap = points[i].value(metric) - value  # type: ignore[operator]
        title = escape(f"{points[i].version}: best baseline {column_label(name)} {value:.4f} (model {gap:+.4f})")
        svg.append(
            f"<rect class='baseline-point' x='{x(i) - 3.5:.1f}' y='{y(value) - 3.5:.1f}' width='7' height='7'"
            f" fill='#718096'><title>{title}</title></rect>"
        )
    line = " ".join(f"{x(i):.1f},{y(p.value(metric)):.1f}" for i, p in enumerate(points))  # type: ignore[arg-type]
    svg.append(f"<polyline points='{line}' fill='none' stroke='#3182ce' stroke-width='2'/>")
    for i, p in enumerate(points):
        px, py = x(i), y(p.value(metric))  # type: ignore[arg-type]
        label = escape(f"{p.version}: {p.value(metric):.4f}" + (" (champion)" if p.is_champion else ""))
        if p.is_champion:
            star = " ".join(
                f"{px + r * math.sin(k * math.pi / 5):.1f},{py - r * math.cos(k * math.pi / 5):.1f}"
                for k, r in zip(range(10), [9, 4] * 5)
            )
            svg.append(
                f"<polygon class='champion-point' points='{star}' fill='#d69e2e' stroke='#744210'><title>{label}</title></polygon>"
            )
        else:
            fill = "#3182ce" if p.promoted else "#fff"
            svg.append(
                f"<circle cx='{px:.1f}' cy='{py:.1f}' r='4.5' fill='{fill}' stroke='#3182ce' stroke-width='1.5'>"
                f"<title>{label}</title></circle>"
            )
    # label every point while they fit, else every n-th: the data day the version's run processed
    step = max(1, math.ceil(len(points) / 8))
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            anchor = (
                "start"
                if i == 0 and len(points) > 1
                else "end"
                if i == len(points) - 1 and len(points) > 1
                else "middle"
            )
            svg.append(
                f"<text class='x-label' x='{x(i):.1f}' y='{height - pad_b + 16}' font-size='11' text-anchor='{anchor}'>"
                f"{escape(p.run_day or 'no run day')}</text>"
            )
    svg.append(
        f"<text x='{(pad_l + width - pad_r) / 2:.0f}' y='{height - 6}' font-size='11' text-anchor='middle'>"
        "run day (the data day the run processed, oldest left)</text></svg>"
    )
    legend = (
        "<p class='muted'>★ current champion · filled dot: promoted when trained · hollow: not promoted ·"
        f" grey squares, dashed: the best baseline's {escape(metric)} on the same test slice (hover for which"
        " baseline and the model's gap to it)</p>"
    )
    return "".join(svg) + legend


def models_page(rows: list[VersionRow], champion: dict[str, Any] | None, model_url: Callable[[str], str]) -> str:
    body = ["<h1>Model versions</h1>"]
    if champion and champion.get("version"):
        body.append(
            f"<p id='champion'>Current champion: <a href='{escape(model_url(str(champion['version'])))}'>"
            f"<b>{escape(str(champion['version']))}</b></a> (promoted {fmt(when(champion.get('promoted_at')))}:"
            f" {fmt(champion.get('reason'))})</p>"
        )
    else:
        body.append("<p id='champion' class='muted'>No champion yet: no version has passed the promotion gate.</p>")
    if not rows:
        body.append("<div class='empty'>No model versions yet: train_model has not run.</div>")
        return _page("Model versions", "".join(body))
    metric = chart_metric(rows)
    body.append(f"<h2>{escape(metric)} by run day</h2>")
    if metric != PRIMARY_METRIC:
        body.append(
            f"<p class='note'>No version has a {PRIMARY_METRIC} (too few test posts per subreddit):"
            f" the chart shows overall {metric}, which the promotion gate then judges on.</p>"
        )
    body.append(metric_chart_svg(rows, metric))
    head = [
        "version",
        "trained at (UTC)",
        "run day",
        "data window",
        "status",
        "within-subreddit Spearman",
        "Spearman",
        "MAE",
        f"best baseline ({metric})",
        "promotion decision",
    ]
    table_rows = []
    for r in rows:
        best = best_baseline(r, metric)  # the one the chart draws beside the model
        base = f"{best[1]:.4f} ({column_label(best[0])})" if best else None
        reason = r.reason if r.reason else (r.skipped_reason or "")
        badge = _badge(r.promoted, r.is_champion)
        if r.status == "skipped":  # nothing was trained, so nothing was up for promotion
            badge, reason = "<span class='badge no'>not trained</span>", r.skipped_reason or reason
        table_rows.append(
            f"<tr{' class=champion-row' if r.is_champion else ''}><td><a href='{escape(model_url(r.version))}'>"
            f"{escape(r.version)}</a></td><td>{fmt(when(r.created).removesuffix(' UTC'))}</td><td>{fmt(r.run_day)}</td>"
            f"<td>{escape(_window_text(r.data_window)).replace(' → ', ' →<br>')}</td><td>{fmt(r.status)}</td>{_cell(r.primary)}"
            f"{_cell(r.value('spearman'))}{_cell(r.value('mae'))}{_cell(base)}"
            f"<td class='why'>{badge}<br>{fmt(reason)}</td></tr>"
        )
    body.append(
        "<h2>All versions (newest first)</h2><table id='versions'><thead><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(table_rows)
        + "</tbody></table>"
    )
    return _page("Model versions", "".join(body))
