"""The ops summary as one self-contained HTML page: a pure function of the summary dict.

`render_html(summary)` returns the page: a table per section and per dataset, and charts drawn by
matplotlib as inline SVG (text drawn as paths), with inline CSS. It references nothing outside the
page (no script, style sheet, font or image is fetched), so it opens offline, from a file or a
bucket's download. It reads and writes nothing; `jobs/ops_summary.py` builds the dict and writes the page.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

ABSENT = "—"  # a table or topic that does not exist yet
BAR_COLOURS = ("#2f6690", "#d9a441", "#3a7d44", "#a23b72")
# Fixed ids make the same summary give the same page (SVG ids are hashed from this salt).
SVG_RC = {"svg.fonttype": "path", "svg.hashsalt": "streamlake-ops-summary", "font.size": 9}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1d2733; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #2f6690; } h3 { margin-top: 1.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #c7d0d9; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #eef2f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fbe9e9; } .muted { color: #66727f; } .chart svg { max-width: 100%; height: auto; }
nav a { margin-right: 1rem; }
"""


def _text(value: Any) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) if value else ABSENT
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], failed: Sequence[bool] | None = None) -> str:
    """An HTML table; numbers right-aligned, a row flagged in `failed` highlighted."""
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        flagged = ' class="failed"' if failed and failed[index] else ""
        cells = "".join(
            f'<td class="num">{html.escape(_text(v))}</td>' if isinstance(v, int) and not isinstance(v, bool)
            else f"<td>{html.escape(_text(v))}</td>" for v in row
        )
        body.append(f"<tr{flagged}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _svg(figure: Figure) -> str:
    """The figure as an inline `<svg>` element, without the XML prolog, DOCTYPE and metadata."""
    out = io.StringIO()
    with matplotlib.rc_context(SVG_RC):
        figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    # Inside HTML the parser puts <svg> and `xlink:href` in their namespaces itself; without the
    # declarations the page names no outside address at all.
    return re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", text)


def bar_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[int]]) -> str:
    """Horizontal bars, one group per label and one bar per series, each bar labelled with its value."""
    if not labels:
        return ""
    with matplotlib.rc_context(SVG_RC):
        figure = Figure(figsize=(7, 0.9 + 0.35 * len(labels) * max(1, len(series))))
        axes = figure.add_subplot()
        height = 0.8 / len(series)
        for index, (name, values) in enumerate(series.items()):
            positions = [n + index * height for n in range(len(labels))]
            bars = axes.barh(positions, values, height=height, label=name, color=BAR_COLOURS[index % len(BAR_COLOURS)])
            axes.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
        axes.set_yticks([n + height * (len(series) - 1) / 2 for n in range(len(labels))], labels=list(labels))
        axes.invert_yaxis()
        axes.set_title(title)
        axes.spines[["top", "right"]].set_visible(False)
        axes.margins(x=0.15)
        if len(series) > 1:
            axes.legend(loc="lower right", frameon=False)
        return f'<div class="chart">{_svg(figure)}</div>'


def _layers(section: dict[str, Any]) -> str:
    layers = section["layers"]
    rows = [(layer["table"], layer["date_column"], layer["rows_on_date"], layer["rows_total"]) for layer in layers]
    present = [layer for layer in layers if layer["exists"]]
    chart = bar_chart("rows on the date, per table", [layer["table"] for layer in present],
                      {"rows on the date": [layer["rows_on_date"] for layer in present]})
    return _table(("table", "by", "rows on the date", "rows in all"), rows) + chart


def _dlq(section: dict[str, Any]) -> str:
    dlq = section["dlq"]
    if not dlq["exists"]:
        return f'<p class="muted">topic {html.escape(dlq["topic"])} does not exist</p>'
    lead = (f'<p>{html.escape(dlq["topic"])}: {dlq["records_read"]:,} records read, {dlq["records_total"]:,} after removing '
            f'{dlq["duplicates"]:,} duplicates; {dlq["records_on_date"]:,} with a source timestamp on the date.</p>')
    reasons = dlq["by_reason"]
    rows = [(r["error_class"] or "(no dlq.error.class)", r["records_on_date"], r["records_total"]) for r in reasons]
    chart = bar_chart("DLQ records by reason", [row[0] for row in rows],
                      {"on the date": [r["records_on_date"] for r in reasons], "in all": [r["records_total"] for r in reasons]})
    return lead + _table(("reason", "on the date", "in all"), rows) + chart


def _lag(section: dict[str, Any]) -> str:
    lag = section["lag"]
    if not lag["exists"]:
        return f'<p class="muted">topic {html.escape(lag["topic"])} does not exist</p>'
    source = {"checkpoint": f"the Bronze stream's last committed checkpoint offsets ({lag['checkpoint']})",
              "bronze": "the last Kafka offset in Bronze + 1 (no checkpoint yet)",
              "nothing": "nothing: neither a checkpoint nor a Bronze table exists"}.get(lag["reached_from"], lag["reached_from"])
    lead = f'<p>{html.escape(lag["topic"])}: total lag {_text(lag["total_lag"])}; reached offsets from {html.escape(source)}.</p>'
    parts = lag["partitions"]
    rows = [(p["partition"], p["low_offset"], p["end_offset"], p["reached_offset"], p["lag"]) for p in parts]
    chart = bar_chart("lag per partition (records)", [f"partition {p['partition']}" for p in parts], {"lag": [p["lag"] for p in parts]})
    return lead + _table(("partition", "first held", "end", "reached", "lag"), rows) + chart


def _runs(section: dict[str, Any]) -> str:
    runs = section["runs"]
    rows = [(r["started_at"], r["job"], r["run_id"], r["dates"], r["is_for_date"], r["success"], r["checks_passed"], r["checks_failed"],
             r["failed_checks"]) for r in runs]
    headers = ("started", "job", "run id", "dates", "owns the date", "success", "checks passed", "checks failed", "failed checks")
    return _table(headers, rows, failed=[not r["success"] for r in runs])


def _replays(section: dict[str, Any]) -> str:
    replays, redrives = section["replays"], section["redrives"]
    replay_rows = [(replays["replays_on_date"], replays["replays_total"], replays["replays_failed"], replays["records_inserted"])]
    ledger = "" if redrives["ledger_exists"] else '<p class="muted">no re-drive ledger (_ops/dlq_redrives) yet: zero re-drives</p>'
    state_rows = [(s["state"], s["records_on_date"], s["records_total"]) for s in redrives["by_state"]]
    return (_table(("replays on the date", "replays in all", "failed", "Bronze rows they added"), replay_rows)
            + f"<h4>Re-drives</h4>{ledger}<p>{redrives['records_on_date']:,} DLQ records re-driven on the date, "
              f"{redrives['records_total']:,} in all.</p>"
            + (_table(("state", "records on the date", "records in all"), state_rows) if state_rows else ""))


def render_html(summary: dict[str, Any]) -> str:
    """The report page for a summary built by `jobs.ops_summary.build_summary`."""
    day = html.escape(summary["date"])
    nav = "".join(f'<a href="#dataset-{html.escape(name)}">{html.escape(name)}</a>' for name in summary["datasets"])
    sections = []
    for name, section in summary["datasets"].items():
        sections.append(
            f'<section id="dataset-{html.escape(name)}"><h2>{html.escape(name)}</h2>'
            f"<h3>Rows per layer</h3>{_layers(section)}"
            f"<h3>Dead-letter queue</h3>{_dlq(section)}"
            f"<h3>Kafka lag</h3>{_lag(section)}"
            f"<h3>Last runs and their checks</h3>{_runs(section)}"
            f"<h3>Replays and re-drives</h3>{_replays(section)}</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>StreamLake ops summary {day}</title><style>{CSS}</style></head><body>"
        f"<h1>StreamLake ops summary for {day}</h1>"
        f'<p class="muted">generated {html.escape(summary["generated_at"])} from {html.escape(summary["lakehouse"])}; '
        f'dates are UTC; last {summary["runs_shown"]} runs per dataset</p>'
        f"<nav>{nav}</nav>{''.join(sections)}</body></html>\n"
    )
