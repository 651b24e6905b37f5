"""Self-contained HTML reports: one page per subject and a cohort page (figures embedded as PNG).

Figures of measurements are drawn from the tidy results table; image figures (maps over anatomy,
registration checkerboards, 2-D histograms, texture maps) from the arrays the subject's task
produced. Every figure is a base64 PNG inside the HTML, so a report is one file that opens in any
browser without the output folder.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiscale.analysis.families import FAMILIES

from .steps import figure_png

__all__ = ["subject_report_html", "study_report_html", "png_data_uri", "cohort_figure_specs", "cohort_figure_png"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c7cbd4;font-size:13px}
nav{padding:8px 32px;background:#e9ecf1;font-size:14px}nav a{margin-right:14px;color:#24508f}
main{padding:16px 32px}section{background:#fff;border-radius:6px;padding:12px 20px;margin:14px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:19px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:16px;margin:14px 0 6px}figure{display:inline-block;margin:6px 10px 10px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #e3e6eb}figcaption{font-size:12px;color:#555;max-width:640px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #dde1e7;padding:3px 8px;
text-align:right}th{background:#f0f2f5}td:first-child,th:first-child{text-align:left}
.ok{color:#1a7f37}.fail{color:#b42318}.skip{color:#7a5b00}pre{background:#f6f7f9;padding:8px;font-size:12px;
overflow:auto}.small{font-size:12px;color:#555}
"""


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for embedding a PNG in HTML.

    Examples
    --------
    >>> png_data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _img(png: bytes, caption: str) -> str:
    return (f'<figure><img src="{png_data_uri(png)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _caption(fname: str) -> str:
    stem = fname.rsplit(".", 1)[0]
    kind, _, rest = stem.partition("_")
    what = {"overlay": "Maps after registration over the reference anatomy, frame",
            "registration": "Registration quality for"}.get(kind)
    if what is None:
        family = next((f for f in FAMILIES if stem.startswith(f"{f.name}_")), None)
        if family is None:
            return stem.replace("_", " ")
        return f"{family.name}: {stem[len(family.name) + 1:].replace('_', ' ')}"
    return f"{what} {rest.replace('_', ' ')}"


def _family_of(fname: str) -> str | None:
    """The analysis family a figure file belongs to (the longest family name it starts with)."""
    names = sorted((f.name for f in FAMILIES if fname.startswith(f"{f.name}_")), key=len, reverse=True)
    return names[0] if names else None


def _table_html(df: pd.DataFrame, max_rows: int = 400) -> str:
    if df.empty:
        return "<p class='small'>(none)</p>"
    return df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")


_HIDE = ("_ci_low", "_ci_high", "ci_low", "ci_high")


def _summary_tables(table: pd.DataFrame) -> str:
    """Per analysis, the scalar metrics: one row per metric, one column per map / region, cells 'value units'."""
    parts = []
    scalar = table[table["bin"].isna()] if "bin" in table else table
    for analysis, t in scalar.groupby("analysis", sort=False):
        t = t.assign(where=t["map"] + " / " + t["region"],
                     cell=[f"{v:.4g} {u if u != '1' else ''}".strip() if np.isfinite(v) else ""
                           for v, u in zip(t.value, t.units)])
        wide = t.pivot_table(index="metric", columns="where", values="cell", aggfunc="first", sort=False)
        wide = wide.reset_index().rename(columns={"metric": "metric"})
        wide.columns.name = None
        parts.append(f"<h3>{html.escape(str(analysis))}</h3>" + _table_html(wide.fillna("")))
    return "".join(parts)


def _registration_table(reg_summary: Mapping[str, Any]) -> str:
    """Quality per edge (rows: measures; columns: edges) and recovered vs true transform parameters."""
    cols: dict[str, dict[str, Any]] = {}
    for name, r in reg_summary.items():
        q = r.get("quality", {})
        col: dict[str, Any] = {"method": r.get("method", "")}
        col.update({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in q.items()})
        if r.get("truth"):
            col["ground truth"] = f"{Path(r['truth']['file']).name}: {r['truth']['key']}"
        cols[name] = col
    out = _table_html(pd.DataFrame(cols).reset_index().rename(columns={"index": "measure"}).fillna(""))
    for name, r in reg_summary.items():
        rec, tru = r.get("recovered_parameters"), r.get("true_parameters")
        if rec and tru:
            df = pd.DataFrame({"recovered": rec, "true": tru}).reset_index().rename(columns={"index": name})
            out += f"<p class='small'>{html.escape(name)}: recovered vs true (fixed -> moving points)</p>" + _table_html(df)
    return out


def _page(title: str, subtitle: str, nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for a, t in nav)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head>"
            f"<body><header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
            f"<nav>{links}</nav><main>{body}</main></body></html>")


def _warnings_html(warnings: list[str] | None, table: pd.DataFrame) -> str:
    """The Warnings section: what the loaders and registrations reported, then the rows' flags."""
    flagged = table[table["flags"].astype(str) != ""] if "flags" in table else table.iloc[:0]
    if not warnings and not len(flagged):
        return ""
    out = "<h3>Warnings</h3>"
    if warnings:
        out += ("<p class='small'>Reported while loading the images and masks or registering them (also in the "
                "subject's <code>provenance.json</code>):</p><ul class='warn'>"
                + "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings) + "</ul>")
    if len(flagged):
        warn = flagged.groupby(["analysis", "map", "region", "flags"], sort=False).size().reset_index(name="rows")
        out += ("<p class='small'>Raised while computing these rows; the rows carry them in "
                "their <code>flags</code> column.</p>" + _table_html(warn))
    return out


def _subject_body(subject_id: str, table: pd.DataFrame, figures: Mapping[str, bytes],
                  reg_summary: Mapping[str, Any], timings: Mapping[str, float] | None,
                  warnings: list[str] | None = None) -> str:
    def figs(prefix: str) -> str:
        return "".join(_img(png, _caption(f)) for f, png in figures.items() if f.startswith(prefix))

    body = [f"<section id='{html.escape(subject_id)}'><h2>Subject {html.escape(subject_id)}</h2>"]
    body.append("<h3>Maps after registration</h3>" + figs("overlay_"))
    if reg_summary:
        body.append("<h3>Registration quality</h3><p class='small'>Checkerboards alternate the fixed image and "
                    "the registered moving image; where a ground-truth transform is known, the error is the "
                    "distance (mm) between where the recovered and the true transform send points on a "
                    "12-per-axis lattice over the fixed image.</p>" + _registration_table(reg_summary)
                    + figs("registration_"))
    for family in FAMILIES:
        mine = {f: png for f, png in figures.items() if _family_of(f) == family.name}
        if mine:
            body.append(f"<h3>{html.escape(family.name)}</h3><p class='small'>{html.escape(family.description)}</p>"
                        + "".join(_img(png, _caption(f)) for f, png in mine.items()))
    body.append(_warnings_html(warnings, table))
    body.append("<h3>Metrics</h3>" + _summary_tables(table))
    if timings:
        tt = pd.DataFrame(sorted(timings.items(), key=lambda kv: -kv[1]), columns=["step", "seconds"])
        body.append("<details><summary>Timings per step</summary>" + _table_html(tt) + "</details>")
    body.append("</section>")
    return "".join(body)


def subject_report_html(study: Any, subject: Any, table: pd.DataFrame, figures: Mapping[str, bytes],
                        reg_summary: Mapping[str, Any], timings: Mapping[str, float] | None = None,
                        warnings: list[str] | None = None) -> str:
    """One subject's self-contained HTML page (``warnings``: its loaders' and registrations' warnings)."""
    body = _subject_body(subject.id, table, figures, reg_summary, timings, warnings)
    return _page(f"{study.name}: {subject.id}", f"study file {study.path}", [(subject.id, subject.id)], body)


def cohort_figure_specs(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The cohort page's figures as ``(caption, kind, data)``: each is drawn by :func:`cohort_figure_png`.

    One radial-profile figure per (analysis, map, region) with a line per subject, and, when there
    are at least two subjects, one heatmap of the scalar metrics (rows) by subject (columns),
    z-scored per row. Kept apart from the
    drawing so that a run on a cluster can draw the figures on its workers, side by side.
    """
    specs: list[tuple[str, str, pd.DataFrame]] = []
    if table.empty:
        return specs
    prof = table[table.metric == "shell_mean"]
    for (analysis, map_name, region), _t in prof.groupby(["analysis", "map", "region"], sort=False):
        d = table[(table.analysis == analysis) & (table["map"] == map_name) & (table.region == region)
                  & table.metric.isin(["shell_mean", "shell_depth_mm"])]
        specs.append((f"Radial profiles of {map_name} in {region} ({analysis}), one line per subject", "radial", d))
    scalar = table[table["bin"].isna()]
    if scalar.subject.nunique() < 2:
        return specs
    hide = scalar.metric.str.contains(r"ci_low|ci_high|_n$|n_voxels|points|radius|^n$|threshold", regex=True)
    scalar = scalar[~hide]
    scalar = scalar[np.isfinite(scalar["value"].to_numpy(dtype=float))]
    rows = list(dict.fromkeys(_heatmap_row(scalar)))
    if rows:
        shown = rows[:_HEATMAP_ROWS]
        keep = _heatmap_row(scalar).isin(shown)
        more = f"; the first {len(shown)} of {len(rows)} rows" if len(rows) > len(shown) else ""
        specs.append((f"Scalar metrics across subjects: each row is one metric of one map and region, coloured by "
                      f"its z-score across the cohort{more} (the values, with units, are in the results table)",
                      "scalars", scalar[keep]))
    return specs


_HEATMAP_ROWS = 60


def _heatmap_row(t: pd.DataFrame) -> pd.Series:
    return t["analysis"].astype(str) + ": " + t["metric"].astype(str) + " (" + t["map"].astype(str) + " / " + \
        t["region"].astype(str) + ")"


def cohort_figure_png(kind: str, data: pd.DataFrame) -> bytes:
    """Draw one cohort figure of :func:`cohort_figure_specs` (PNG bytes)."""
    plt = _plt()
    if kind == "radial":
        first = data.iloc[0]
        map_name, region = first["map"], first["region"]
        fig, ax = plt.subplots(figsize=(4.8, 3.4), layout="constrained")
        for sid, ts in data[data.metric == "shell_mean"].groupby("subject", sort=False):
            ts = ts.sort_values("bin")
            d = data[(data.subject == sid) & (data.metric == "shell_depth_mm")].sort_values("bin")
            x = d["value"].to_numpy() if len(d) == len(ts) else ts["bin"].to_numpy()
            ax.plot(x, ts["value"].to_numpy(), "o-", ms=3, label=str(sid))
        units = data.loc[data.metric == "shell_mean", "units"].iloc[0]
        ax.set_xlabel("depth below surface (mm)")
        ax.set_ylabel(f"{map_name} [{units}]")
        ax.set_title(f"radial profiles: {map_name} in {region}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        return figure_png(fig)
    if kind != "scalars":
        raise ValueError(f"unknown cohort figure kind {kind!r} (radial, scalars)")
    # one heatmap, metrics x subjects, z-scored per metric: one axes whatever the cohort size (a panel
    # per metric took ~1.2 s to draw for 24 metrics and does not scale to many subjects)
    d = data.assign(row=_heatmap_row(data))
    piv = d.pivot_table(index="row", columns="subject", values="value", aggfunc="first", sort=False)
    v = piv.to_numpy(dtype=float)
    mean = np.nanmean(v, axis=1, keepdims=True)
    sd = np.nanstd(v, axis=1, keepdims=True)
    z = np.divide(v - mean, sd, out=np.zeros_like(v), where=sd > 0)
    z[~np.isfinite(v)] = np.nan
    n_rows, n_subj = z.shape
    # margins in inches from the label lengths, so the figure is drawn once, without a layout engine
    # (the 60 row labels made constrained layout the larger part of the drawing time)
    labels = [str(c) for c in piv.columns]
    left = 0.25 + max(len(str(r)) for r in piv.index) * 6 * 0.55 / 72
    bottom = 0.35 + (max(len(lb) for lb in labels) * 7 * 0.55 / 72 * 0.75 if n_subj > 6 else 0.15)
    cell_w = 0.3
    width = left + max(cell_w * n_subj, 1.5) + 1.1
    height = bottom + 0.17 * n_rows + 0.45
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, max(cell_w * n_subj, 1.5) / width, 0.17 * n_rows / height))
    cax = fig.add_axes(((width - 0.9) / width, bottom / height, 0.12 / width, min(0.17 * n_rows, 2.5) / height))
    im = ax.imshow(np.ma.masked_invalid(z), cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(piv.index, fontsize=6)
    ax.set_xticks(range(n_subj))
    ax.set_xticklabels(labels, rotation=45 if n_subj > 6 else 0, ha="right" if n_subj > 6 else "center", fontsize=7)
    fig.colorbar(im, cax=cax, label="z-score across subjects")
    ax.set_title("metrics per subject", fontsize=10)
    return figure_png(fig)


def _cohort_figures(table: pd.DataFrame) -> list[tuple[str, bytes]]:
    return [(caption, cohort_figure_png(kind, data)) for caption, kind, data in cohort_figure_specs(table)]


def _input_warnings(folder: Path) -> list[str]:
    """The loader and registration warnings a subject's provenance.json records (its flags are in the table)."""
    try:
        prov = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return []
    return [str(w) for w in prov.get("warnings") or []]


def study_report_html(study: Any, table: pd.DataFrame, statuses: list[Mapping[str, Any]], output: Path,
                      cohort_figures: list[tuple[str, bytes]] | None = None,
                      table_summary: Mapping[str, Any] | None = None) -> str:
    """The study report: a cohort page (status, failures, cross-subject figures) followed by every subject's page.

    ``statuses`` holds one mapping per subject with ``subject``, ``status`` (completed, skipped,
    failed, stale, ...), ``seconds``, ``rows``, ``error`` and ``in_table`` (whether its rows are in
    the cohort table; subjects not in it get no section); subject sections are read back from each
    subject's folder. ``cohort_figures`` are ``(caption, png)`` pairs already drawn (drawn here
    when not given). ``table_summary`` (``rows``, ``sha256`` of ``results.csv``) names the cohort
    table this report describes; the study's provenance.json records the same.
    """
    def in_table(s: Mapping[str, Any]) -> bool:
        return bool(s.get("in_table", s.get("status") != "failed"))

    nav = [("cohort", "cohort")]
    body = ["<section id='cohort'><h2>Cohort</h2>"]
    if table_summary:
        body.append(f"<p class='small'>This report describes <code>results.csv</code> of "
                    f"{int(table_summary.get('rows', len(table)))} rows, sha256 "
                    f"<code>{html.escape(str(table_summary.get('sha256', '')))}</code> (also recorded in "
                    f"<code>provenance.json</code>).</p>")
    warned = {}
    for s in statuses:
        if in_table(s):
            w = _input_warnings(Path(output) / "subjects" / s["subject"])
            flagged = table[(table.subject == s["subject"]) & (table["flags"].astype(str) != "")] \
                if "flags" in table else table.iloc[:0]
            if w or len(flagged):
                warned[s["subject"]] = (w, len(flagged))
    st = pd.DataFrame([{k: s.get(k, "") for k in ("subject", "status", "seconds", "rows")} for s in statuses])
    if len(st):
        st["warnings"] = [len(warned[s["subject"]][0]) + warned[s["subject"]][1] if s["subject"] in warned else 0
                          for s in statuses]
    body.append(_table_html(st))
    failed = [s for s in statuses if s.get("status") == "failed"]
    if failed:
        body.append("<h3 class='fail'>Failed subjects</h3>")
        for s in failed:
            body.append(f"<p><b>{html.escape(s['subject'])}</b></p><pre>{html.escape(str(s.get('error', '')))}</pre>")
    left_out = [s for s in statuses if not in_table(s) and s.get("status") != "failed"]
    if left_out:
        body.append("<h3 class='skip'>Subjects left out of the table</h3><p class='small'>Their folders hold no "
                    "outputs of the current study settings and input files; run them again.</p><ul>"
                    + "".join(f"<li><b>{html.escape(s['subject'])}</b>: {html.escape(str(s.get('status', '')))}</li>"
                              for s in left_out) + "</ul>")
    if warned:
        body.append("<h3>Subjects with warnings</h3><ul>" + "".join(
            f"<li><a href='#{html.escape(sid)}'>{html.escape(sid)}</a>: "
            + html.escape("; ".join(w) if w else "")
            + (f"{'; ' if w else ''}{n} row(s) flagged" if n else "") + "</li>"
            for sid, (w, n) in warned.items()) + "</ul>")
    for caption, png in (_cohort_figures(table) if cohort_figures is None else cohort_figures):
        body.append(_img(png, caption))
    body.append("</section>")
    for s in statuses:
        if not in_table(s):
            continue
        folder = Path(output) / "subjects" / s["subject"]
        figures = {p.name: p.read_bytes() for p in sorted((folder / "figures").glob("*.png"))}
        reg = json.loads((folder / "registration.json").read_text()) if (folder / "registration.json").exists() else {}
        sub_table = table[table.subject == s["subject"]]
        body.append(_subject_body(s["subject"], sub_table, figures, reg, None, _input_warnings(folder)))
        nav.append((s["subject"], s["subject"]))
    n_ok = sum(1 for s in statuses if in_table(s))
    subtitle = f"study file {study.path}; {n_ok} of {len(statuses)} subjects with results"
    return _page(f"{study.name}: study report", subtitle, nav, "".join(body))
