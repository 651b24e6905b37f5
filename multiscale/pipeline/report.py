"""HTML reports from Jinja2 templates: one page per subject, and a study report ready for a paper.

The study report holds the cohort (status, failures, warnings, cross-subject figures), the study
design, the cohort statistics (group comparisons with effect sizes, confidence intervals and
corrected p-values, correlations with outcomes, survival: computed by :mod:`multiscale.stats`
through :func:`multiscale.pipeline.cohort.cohort_statistics`), a methods section generated from
the provenance (software versions, every parameter, registration quality) and every subject's page.

The pages are Jinja2 templates (``multiscale/pipeline/templates``: ``base.html.j2``,
``study.html.j2``, ``subject_section.html.j2``, ``methods.html.j2``, ``style.css``...). A study
restyles its report with ``report: {templates: my_templates}`` (a folder beside the study file):
a file there replaces the packaged one of the same name (copy ``style.css`` to change the look,
``methods.html.j2`` to reword the methods).

By default a report is one self-contained file: figures are embedded PNGs (``data:`` URIs) and
the cohort-level figures (cohort, statistics) are 300-dpi PNGs shown at their drawn size; tables
(results, subjects, statistics) are CSV downloads. ``report: {mode: folder}`` writes a *folder
report* instead: figures are files (``report_files/`` for the cohort's, with an SVG of each,
``subjects/<id>/figures/`` for each subject's) that the HTML references, so the report stays small.
``report: {downloads: true}`` also embeds an SVG of each cohort-level figure in a one-file report
(``false`` leaves the SVGs out of a folder report).
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiscale.analysis.families import FAMILIES, family_named

from .steps import figure_png

__all__ = [
    "subject_report_html",
    "study_report_html",
    "png_data_uri",
    "png_dpi",
    "web_png",
    "cohort_figure_specs",
    "cohort_figure_png",
    "cohort_figure",
    "heatmap_pages",
    "clustered_heatmap",
    "cluster_order",
    "template_environment",
    "TEMPLATES",
    "PRINT_DPI",
]

#: the packaged templates
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: resolution of the downloadable PNGs of cohort-level figures
PRINT_DPI = 300


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for embedding a PNG in HTML.

    Examples
    --------
    >>> png_data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _display_width(png: bytes, dpi: float | None = None) -> int | None:
    """The width (CSS px, 96 per inch) at which a PNG drawn at ``dpi`` (default: the dpi it records) shows at its size."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    dpi = dpi or png_dpi(png)
    if not dpi:
        return None
    return max(1, round(int.from_bytes(png[16:20], "big") * 96 / dpi))


def png_dpi(png: bytes) -> float | None:
    """The resolution (dots per inch) a PNG records in its ``pHYs`` chunk; None when it records none.

    Examples
    --------
    >>> import io
    >>> from matplotlib.figure import Figure
    >>> buf = io.BytesIO(); Figure(figsize=(1, 1)).savefig(buf, format="png", dpi=300)
    >>> round(png_dpi(buf.getvalue()))
    300
    """
    pos = 8
    while pos + 12 <= len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        if kind == b"pHYs" and length >= 9:
            ppm = int.from_bytes(png[pos + 8:pos + 12], "big")
            return ppm * 0.0254 if png[pos + 16] == 1 else None
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


_WEB_CACHE: dict[str, bytes] = {}


def web_png(png: bytes) -> bytes:
    """The PNG an HTML report embeds: same pixels and dpi, 256-colour palette (a third to a quarter of the bytes).

    A one-file report embeds every figure; the lossless print PNGs stay in the output folders
    (``subjects/<id>/figures/``, ``report_files/``). Results are cached by content, so the subject
    page and the study report encode a figure once per process.
    """
    import hashlib

    key = hashlib.sha1(png).hexdigest()
    hit = _WEB_CACHE.get(key)
    if hit is not None:
        return hit
    try:
        import io

        from PIL import Image

        im = Image.open(io.BytesIO(png))
        dpi = png_dpi(png)
        buf = io.BytesIO()
        im.quantize(256, method=Image.Quantize.FASTOCTREE).save(
            buf, format="PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
        out = buf.getvalue() if buf.tell() < len(png) else png
    except Exception:  # noqa: BLE001 - a PNG Pillow cannot read is embedded as it is
        out = png
    if len(_WEB_CACHE) > 256:
        _WEB_CACHE.clear()
    _WEB_CACHE[key] = out
    return out


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def template_environment(folder: str | Path | None = None) -> Any:
    """The Jinja2 environment of the reports: templates in ``folder`` (if given) override the packaged ones.

    Examples
    --------
    >>> env = template_environment()
    >>> "figure" in env.get_template("macros.html.j2").module.__dict__
    True
    """
    import jinja2

    loaders = [jinja2.FileSystemLoader(str(TEMPLATES))]
    if folder is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(folder)))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=jinja2.select_autoescape(
        enabled_extensions=("html", "j2", "htm"), default_for_string=True, default=True),
        trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=False)


def _options(study: Any) -> dict[str, Any]:
    return dict(getattr(study, "report", None) or {})


def _environment(study: Any) -> Any:
    folder = _options(study).get("templates")
    if folder:
        folder = Path(folder).expanduser()
        if not folder.is_absolute():
            folder = Path(study.path).parent / folder
    return template_environment(folder)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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


def _summary_tables(table: pd.DataFrame) -> str:
    """Per analysis, the scalar metrics: one row per metric, one column per map / region, cells 'value units'."""
    parts = []
    scalar = table[table["bin"].isna()] if "bin" in table else table
    for analysis, t in scalar.groupby("analysis", sort=False):
        t = t.assign(where=t["map"] + " / " + t["region"],
                     cell=[f"{v:.4g} {u if u != '1' else ''}".strip() if np.isfinite(v) else ""
                           for v, u in zip(t.value, t.units)])
        wide = t.pivot_table(index="metric", columns="where", values="cell", aggfunc="first", sort=False)
        wide = wide.reset_index()
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


class _Assets:
    """Where the report's figures and tables go: embedded (``inline``) or files beside the report (``folder``)."""

    def __init__(self, mode: str = "inline", output: Path | None = None, downloads: bool = True):
        if mode not in ("inline", "folder"):
            raise ValueError(f"report mode {mode!r}: use 'inline' (one self-contained file) or 'folder'")
        self.mode = mode if output is not None else "inline"
        self.output = Path(output) if output is not None else None
        self.downloads = downloads
        self._names: set[str] = set()

    def _name(self, stem: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")[:80] or "figure"
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def _write(self, name: str, data: bytes) -> str:
        from multiscale._util import atomic_write

        folder = self.output / "report_files"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / name, lambda tmp: tmp.write_bytes(data))
        return f"report_files/{name}"

    def figure(self, stem: str, caption: str, png: bytes, draw: Any = None, dpi: int = PRINT_DPI) -> dict[str, Any]:
        """A cohort-level figure: ``png`` (drawn at ``dpi``) shown at its size; ``draw(fmt, dpi)`` makes the SVG.

        In folder mode the PNG is a file of ``report_files/`` (also offered as the print download);
        inline, it is embedded and the SVG is a ``data:`` download.
        """
        name = self._name(stem)
        downloads = []
        if draw is not None and self.downloads:
            svg = draw("svg", dpi)
            href = self._write(f"{name}.svg", svg) if self.mode == "folder" else _data_uri(svg, "image/svg+xml")
            downloads.append(("SVG", href, f"{name}.svg"))
        if self.mode == "folder":
            src = self._write(f"{name}.png", png)
            downloads.append((f"PNG {dpi} dpi", src, f"{name}.png"))
        else:
            src = png_data_uri(web_png(png))
        return {"src": src, "caption": caption, "downloads": downloads, "width": _display_width(png, dpi)}

    def file_figure(self, caption: str, png: bytes, relative: str, svg: bool = False) -> dict[str, Any]:
        """A subject figure: embedded, or referenced where the subject's folder holds it (folder mode).

        Shown at its drawn size (from the dpi the PNG records). In folder mode the PNG is also a
        download, with the SVG beside it when the subject's folder holds one (``svg``).
        """
        downloads = []
        if self.mode == "folder":
            dpi = png_dpi(png)
            name = relative.rsplit("/", 1)[-1]
            downloads.append((f"PNG {round(dpi)} dpi" if dpi else "PNG", relative, name))
            if svg:
                downloads.insert(0, ("SVG", relative[:-4] + ".svg", name[:-4] + ".svg"))
        return {"src": relative if self.mode == "folder" else png_data_uri(web_png(png)), "caption": caption,
                "downloads": downloads, "width": _display_width(png)}

    def table(self, stem: str, label: str, df: pd.DataFrame) -> tuple[str, str, str]:
        """A CSV download of ``df``."""
        name = self._name(stem) + ".csv"
        data = df.to_csv(index=False).encode()
        href = self._write(name, data) if self.mode == "folder" else _data_uri(data, "text/csv")
        return (label, href, name)


def _subject_context(subject_id: str, table: pd.DataFrame, figures: Mapping[str, bytes],
                     reg_summary: Mapping[str, Any], timings: Mapping[str, float] | None,
                     warnings: list[str] | None, assets: _Assets, design: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    svgs = {f[:-4] for f in figures if f.endswith(".svg")}
    figures = {f: b for f, b in figures.items() if f.endswith(".png")}

    def fig(fname: str) -> dict[str, Any]:
        return assets.file_figure(_caption(fname), figures[fname], f"subjects/{subject_id}/figures/{fname}",
                                  svg=fname[:-4] in svgs)

    families = []
    for family in FAMILIES:
        mine = [f for f in figures if _family_of(f) == family.name]
        if mine:
            families.append({"name": family.name, "description": family.description, "figures": [fig(f) for f in mine]})
    tt = ""
    if timings:
        tt = _table_html(pd.DataFrame(sorted(timings.items(), key=lambda kv: -kv[1]), columns=["step", "seconds"]))
    return {
        "id": subject_id,
        "design": {k: v for k, v in (design or {}).items() if v is not None and not (isinstance(v, float) and np.isnan(v))},
        "overlays": [fig(f) for f in figures if f.startswith("overlay_")],
        "registration": _registration_table(reg_summary) if reg_summary else "",
        "registration_figures": [fig(f) for f in figures if f.startswith("registration_")],
        "families": families,
        "warnings": _warnings_html(warnings, table),
        "metrics": _summary_tables(table),
        "timings": tt,
    }


def subject_report_html(study: Any, subject: Any, table: pd.DataFrame, figures: Mapping[str, bytes],
                        reg_summary: Mapping[str, Any], timings: Mapping[str, float] | None = None,
                        warnings: list[str] | None = None) -> str:
    """One subject's self-contained HTML page (``warnings``: its loaders' and registrations' warnings)."""
    design = getattr(study, "design", None)
    values = design.values.get(subject.id) if design else None
    ctx = _subject_context(subject.id, table, figures, reg_summary, timings, warnings, _Assets(), values)
    return _environment(study).get_template("subject.html.j2").render(
        title=f"{study.name}: {subject.id}", subtitle=f"study file {study.path}", nav=[(subject.id, subject.id)],
        subject=ctx)


# ---------------------------------------------------------------------------------------------
# cohort figures
# ---------------------------------------------------------------------------------------------


def _scalar_rows(table: pd.DataFrame) -> pd.DataFrame:
    scalar = table[table["bin"].isna()]
    hide = scalar.metric.str.contains(r"ci_low|ci_high|_n$|n_voxels|points|radius|^n$|threshold", regex=True)
    scalar = scalar[~hide]
    return scalar[np.isfinite(scalar["value"].to_numpy(dtype=float))]


def cohort_figure_specs(table: pd.DataFrame, heatmap: str = "paged") -> list[tuple[str, str, pd.DataFrame]]:
    """The cohort page's figures as ``(caption, kind, data)``: each is drawn by :func:`cohort_figure_png`.

    One radial-profile figure per (analysis, map, region) with a line per subject, and, when there
    are at least two subjects, one heatmap of the scalar metrics (rows) by subject (columns),
    z-scored per row: the first :data:`_HEATMAP_ROWS` rows (the report adds the others as further
    pages, :func:`heatmap_pages`), or with ``heatmap="clustered"`` (``report: {heatmap: clustered}``)
    every row in one heatmap, ordered by hierarchical clustering (:func:`clustered_heatmap`). Kept
    apart from the drawing so that a run on a cluster can draw the figures on its workers, side by side.
    """
    if heatmap not in ("paged", "clustered"):
        raise ValueError(f"heatmap {heatmap!r}: use 'paged' or 'clustered'")
    specs: list[tuple[str, str, pd.DataFrame]] = []
    if table.empty:
        return specs
    prof = table[table.metric == "shell_mean"]
    for (analysis, map_name, region), _t in prof.groupby(["analysis", "map", "region"], sort=False):
        d = table[(table.analysis == analysis) & (table["map"] == map_name) & (table.region == region)
                  & table.metric.isin(["shell_mean", "shell_depth_mm"])]
        specs.append((f"Radial profiles of {map_name} in {region} ({analysis}), one line per subject", "radial", d))
    pages = clustered_heatmap(table) if heatmap == "clustered" else heatmap_pages(table)
    if pages:
        specs.append(pages[0])
    return specs


def clustered_heatmap(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """Every scalar metric in one heatmap whose rows are ordered by hierarchical clustering (none below two subjects).

    The rows (metric z-scores across subjects) are clustered by average linkage on Euclidean
    distance with the optimal leaf order (``scipy.cluster.hierarchy``); the figure draws the
    dendrogram beside the rows. Drawn by :func:`cohort_figure_png` (kind ``clustered``).

    Examples
    --------
    >>> t = pd.DataFrame([{"subject": f"m{i}", "region": "r", "map": "a", "analysis": "x", "metric": f"k{j:02d}",
    ...                    "bin": np.nan, "value": float(i * j), "units": ""} for i in range(2) for j in range(70)])
    >>> [(kind, len(set(d.metric))) for _, kind, d in clustered_heatmap(t)]
    [('clustered', 70)]
    """
    if table.empty or table.subject.nunique() < 2:
        return []
    scalar = _scalar_rows(table)
    if scalar.empty:
        return []
    n = _heatmap_row(scalar).nunique()
    return [(f"Scalar metrics across subjects, all {n} rows ordered by hierarchical clustering (average linkage of "
             "the rows' z-scores, optimal leaf order; dendrogram on the left): each row is one metric of one map and "
             "region, coloured by its z-score across the cohort (the values, with units, are in the results table)",
             "clustered", scalar)]


def _heatmap_z(data: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The metrics x subjects table of a heatmap and its z-scores per row (0 for a row equal in every subject)."""
    d = data.assign(row=_heatmap_row(data))
    piv = d.pivot_table(index="row", columns="subject", values="value", aggfunc="first", sort=False)
    v = piv.to_numpy(dtype=float)
    mean = np.nanmean(v, axis=1, keepdims=True)
    sd = np.nanstd(v, axis=1, keepdims=True)
    # a metric equal in every subject up to rounding (a volume from the same mask) has no z-score: 0, not noise
    z = np.divide(v - mean, sd, out=np.zeros_like(v), where=sd > 1e-9 * np.abs(mean))
    z[~np.isfinite(v)] = np.nan
    return piv, z


def cluster_order(z: np.ndarray) -> tuple[np.ndarray, Any]:
    """Row order of ``z`` by average-linkage clustering with the optimal leaf order, and the linkage (None: < 3 rows).

    Missing values count as the cohort mean (z = 0).

    Examples
    --------
    >>> z = np.array([[1.0, -1.0], [-1.0, 1.0], [0.9, -1.1], [-1.1, 0.9]])
    >>> order = cluster_order(z)[0].tolist()   # rows 0 and 2 together, rows 1 and 3 together
    >>> sorted(order[:2]) in ([0, 2], [1, 3]) and sorted(order) == [0, 1, 2, 3]
    True
    """
    from scipy.cluster import hierarchy

    n = len(z)
    if n < 3:
        return np.arange(n), None
    filled = np.nan_to_num(z, nan=0.0)
    link = hierarchy.optimal_leaf_ordering(hierarchy.linkage(filled, method="average", metric="euclidean"), filled)
    return np.asarray(hierarchy.leaves_list(link)), link


_HEATMAP_ROWS = 60
#: heatmap row pitch (inches) and row-label size (points): 0.17 in = 12 pt, twice the label's height
_ROW_IN, _ROW_PT = 0.17, 6


def heatmap_pages(table: pd.DataFrame, rows_per_page: int = _HEATMAP_ROWS) -> list[tuple[str, str, pd.DataFrame]]:
    """Every scalar metric in heatmap pages of ``rows_per_page`` rows (none with fewer than two subjects).

    Examples
    --------
    >>> t = pd.DataFrame([{"subject": f"m{i}", "region": "r", "map": "a", "analysis": "x", "metric": f"k{j:02d}",
    ...                    "bin": np.nan, "value": float(i * j), "units": ""} for i in range(2) for j in range(70)])
    >>> [len(set(d.metric)) for _, _, d in heatmap_pages(t)]
    [60, 10]
    """
    if table.empty or table.subject.nunique() < 2:
        return []
    scalar = _scalar_rows(table)
    labels = _heatmap_row(scalar)
    rows = list(dict.fromkeys(labels))
    pages = []
    for start in range(0, len(rows), rows_per_page):
        shown = rows[start:start + rows_per_page]
        if len(rows) <= rows_per_page:
            more = ""
        elif start == 0:
            more = f"; the first {len(shown)} of {len(rows)} rows (the others on the following pages)"
        else:
            more = f"; rows {start + 1}-{start + len(shown)} of {len(rows)}"
        pages.append((f"Scalar metrics across subjects: each row is one metric of one map and region, coloured by "
                      f"its z-score across the cohort{more} (the values, with units, are in the results table)",
                      "scalars", scalar[labels.isin(shown)]))
    return pages


def _heatmap_row(t: pd.DataFrame) -> pd.Series:
    return t["analysis"].astype(str) + ": " + t["metric"].astype(str) + " (" + t["map"].astype(str) + " / " + \
        t["region"].astype(str) + ")"


def _save(fig: Any, fmt: str, dpi: int) -> bytes:
    if fmt == "png":
        return figure_png(fig, dpi=dpi)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    try:
        _plt().close(fig)
    except Exception:  # noqa: BLE001 - figures on their own canvas need no closing
        pass
    return buf.getvalue()


def cohort_figure_png(kind: str, data: pd.DataFrame, fmt: str = "png", dpi: int = PRINT_DPI) -> bytes:
    """Draw one cohort figure of :func:`cohort_figure_specs`: PNG bytes at print resolution (``fmt="svg"``: SVG)."""
    return _save(cohort_figure(kind, data), fmt, dpi)


def cohort_figure(kind: str, data: pd.DataFrame) -> Any:
    """One cohort figure of :func:`cohort_figure_specs` as a matplotlib Figure (``kind``: radial, scalars, clustered)."""
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
        ax.legend(fontsize=7, ncol=2 if data.subject.nunique() > 8 else 1)
        ax.grid(alpha=0.3)
        return fig
    if kind not in ("scalars", "clustered"):
        raise ValueError(f"unknown cohort figure kind {kind!r} (radial, scalars, clustered)")
    # one heatmap, metrics x subjects, z-scored per metric: one axes whatever the cohort size (a panel
    # per metric took ~1.2 s to draw for 24 metrics and does not scale to many subjects)
    piv, z = _heatmap_z(data)
    link = None
    if kind == "clustered":
        order, link = cluster_order(z)
        piv, z = piv.iloc[order], z[order]
    n_rows, n_subj = z.shape
    # margins in inches from the label lengths, so the figure is drawn once, without a layout engine
    # (the 60 row labels made constrained layout the larger part of the drawing time); rows
    # _ROW_IN apart for _ROW_PT labels: no two labels overlap
    labels = [str(c) for c in piv.columns]
    tree = 0.8 if link is not None else 0.0
    left = 0.25 + max(len(str(r)) for r in piv.index) * _ROW_PT * 0.55 / 72 + tree
    bottom = 0.35 + (max(len(lb) for lb in labels) * 7 * 0.55 / 72 * 0.75 if n_subj > 6 else 0.15)
    cell_w = 0.3
    width = left + max(cell_w * n_subj, 1.5) + 1.1
    height = bottom + _ROW_IN * n_rows + 0.45
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, max(cell_w * n_subj, 1.5) / width, _ROW_IN * n_rows / height))
    cax = fig.add_axes(((width - 0.9) / width, bottom / height, 0.12 / width, min(_ROW_IN * n_rows, 2.5) / height))
    im = ax.imshow(np.ma.masked_invalid(z), cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(piv.index, fontsize=_ROW_PT)
    ax.set_xticks(range(n_subj))
    ax.set_xticklabels(labels, rotation=45 if n_subj > 6 else 0, ha="right" if n_subj > 6 else "center", fontsize=7)
    ax.set_xlabel("subject", fontsize=8)
    if link is not None:
        from scipy.cluster import hierarchy

        dax = fig.add_axes((0.1 / width, bottom / height, (tree - 0.15) / width, _ROW_IN * n_rows / height))
        hierarchy.dendrogram(link, orientation="left", ax=dax, no_labels=True, color_threshold=0,
                             above_threshold_color="0.35")
        dax.set_ylim(10 * n_rows, 0)  # leaf k at 10 k + 5: the first leaf beside the heatmap's top row
        dax.set_axis_off()
    fig.colorbar(im, cax=cax, label="z-score across subjects (SD)")
    ax.set_title("metrics per subject", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v) if v is not None else ""
    if not np.isfinite(v):
        return ""
    return f"{v:.{digits}g}"


def _p(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(v):
        return ""
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _ci(est: Any, lo: Any, hi: Any) -> str:
    e = _fmt(est)
    return f"{e} [{_fmt(lo)}, {_fmt(hi)}]" if e and _fmt(lo) else e


def _pm(mean: Any, sd: Any) -> str:
    return f"{_fmt(mean)} ± {_fmt(sd)}" if _fmt(sd) else _fmt(mean)


def _grouped_notes(labels: pd.Series, notes: pd.Series) -> str:
    """``note (metric, metric, ...)`` once per distinct note."""
    parts = []
    for note, lbs in pd.DataFrame({"label": labels, "note": notes}).groupby("note", sort=False)["label"]:
        shown = list(lbs)
        more = f", ... {len(shown)} metrics" if len(shown) > 4 else ""
        parts.append(f"{note} ({', '.join(shown[:4])}{more})")
    return "; ".join(parts)


def _groups_display(res: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in res.iterrows():
        omni = r["comparison"] == "all groups"
        rows.append({
            "metric": r["label"], "units": r["units"], "comparison": r["comparison"],
            "n": f"{int(r['n_a'])}" if omni else f"{int(r['n_a'])} / {int(r['n_b'])}",
            "mean ± SD (a)": "" if omni else _pm(r["mean_a"], r["sd_a"]),
            "mean ± SD (b)": "" if omni else _pm(r["mean_b"], r["sd_b"]),
            "difference [95% CI]": "" if omni else _ci(r["difference"], r["difference_ci_low"], r["difference_ci_high"]),
            "Hedges' g [95% CI]": "" if omni else _ci(r["hedges_g"], r["hedges_g_ci_low"], r["hedges_g_ci_high"]),
            "test": r["test"], "statistic": _fmt(r["statistic"]), "p": _p(r["p_value"]),
            "p adjusted": _p(r["p_adjusted"]),
        })
    return pd.DataFrame(rows)


def _new_fig(size: tuple[float, float]) -> Any:
    from multiscale.analysis.figures import new_figure

    return new_figure(size)


def _forest_figure(res: pd.DataFrame, fmt: str, dpi: int) -> bytes:
    """Hedges' g with its CI per metric (one row per two-group comparison), a line at 0."""
    d = res[res.computable & res.hedges_g.notna() & (res.comparison != "all groups")]
    labels = [f"{lb}  [{c}]" if d.comparison.nunique() > 1 else lb for lb, c in zip(d.label, d.comparison)]
    left = 0.3 + max((len(s) for s in labels), default=10) * 6.5 * 0.55 / 72
    fig = _new_fig((left + 3.2, 0.6 + 0.2 * max(len(d), 1) + 0.5))
    ax = fig.add_subplot()
    y = np.arange(len(d))[::-1]
    g = d.hedges_g.to_numpy(float)
    ax.errorbar(g, y, xerr=[g - d.hedges_g_ci_low.to_numpy(float), d.hedges_g_ci_high.to_numpy(float) - g],
                fmt="o", ms=4, color="#24508f", ecolor="#7a93b8", capsize=2)
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=6.5)
    ax.set_ylim(-0.7, len(d) - 0.3)
    first = d.iloc[0] if len(d) else None
    what = f"{first.group_b} vs {first.group_a}" if first is not None and d.comparison.nunique() == 1 else "b vs a"
    ax.set_xlabel(f"Hedges' g, {what} (standardised difference, SD units)", fontsize=8)
    ax.set_title("effect sizes with 95% CI", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, fmt, dpi)


def _dots_figure(wide: pd.DataFrame, by: str, metrics: list[tuple[str, str, str]], fmt: str, dpi: int) -> bytes:
    """Per metric, each subject's value by group with the group mean and its 95% CI (units on the y axis)."""
    from scipy import stats as sps

    n = len(metrics)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = _new_fig((2.6 * cols + 0.3, 2.4 * rows + 0.3))
    groups = sorted(wide[by].dropna().astype(str).unique())
    for k, (label, metric, units) in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, k + 1)
        for i, g in enumerate(groups):
            v = wide.loc[wide[by].astype(str) == g, label].dropna().to_numpy(float)
            if not len(v):
                continue
            jitter = (np.arange(len(v)) - (len(v) - 1) / 2) * 0.06
            ax.plot(i + jitter, v, "o", ms=4, alpha=0.75)
            if len(v) > 1:
                half = sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
                ax.errorbar(i + 0.28, v.mean(), yerr=half, fmt="_", color="k", ms=10, capsize=3)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=7)
        ax.set_xlim(-0.5, len(groups) - 0.3)
        ax.set_xlabel(by, fontsize=7)
        ax.set_ylabel(f"{metric} [{units or '1'}]", fontsize=7)
        ax.set_title(label.split(": ", 1)[0] + ": " + metric, fontsize=7)
        ax.tick_params(labelsize=6)
    return _save(fig, fmt, dpi)


def _km_figure(km: pd.DataFrame, duration: str, fmt: str, dpi: int) -> bytes:
    fig = _new_fig((4.4, 3.2))
    ax = fig.add_subplot()
    for g, d in km.groupby("group", sort=True):
        line = ax.step(d.time, d.survival, where="post", label=str(g))[0]
        ax.fill_between(d.time, d.ci_low, d.ci_high, step="post", alpha=0.15, color=line.get_color(), lw=0)
    ax.set_xlabel(f"time ({duration})")
    ax.set_ylabel("survival probability (1)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Kaplan-Meier with 95% CI", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, fmt, dpi)


def _variance_context(var: pd.DataFrame, levels: list[str], assets: _Assets) -> dict[str, Any]:
    """The variance components table: one row per metric, one column per component (variance and its share)."""
    ok = var[var.component.astype(str) != ""]
    bad = var[var.component.astype(str) == ""]
    components = list(dict.fromkeys(ok.component))
    rows = []
    for label, d in ok.groupby("label", sort=False):
        row = {"metric": label, "units": d.units.iloc[0]}
        comp = d.set_index("component")
        for c in components:
            if c in comp.index:
                v, f = comp.loc[c, "variance"], comp.loc[c, "fraction"]
                row[c] = f"{_fmt(v)} ({100 * float(f):.0f} %)" if np.isfinite(float(f)) else _fmt(v)
            else:
                row[c] = ""
        row["note"] = d.note.iloc[0]
        rows.append(row)
    where = " > ".join(levels) if levels else "the units"
    return {
        "caption": f"Variance components of each metric by REML (statsmodels MixedLM with nested random intercepts, "
                   f"multiscale.stats.variance_components) over the nested units {where}: each cell is the variance "
                   "(units squared) and its share of the total. The residual is the spread left within the innermost "
                   "unit: between subjects (sections or sessions) within it, or between lesions within a subject "
                   "when a subject has several lesion rows.",
        "table": _table_html(pd.DataFrame(rows)),
        "not_computable": _grouped_notes(bad.label, bad.note.str.replace("not computable: ", "", regex=False))
        if len(bad) else "",
        "downloads": [assets.table("stats_variance_components", "variance components (CSV)", var)],
    }


def _statistics_context(study: Any, table: pd.DataFrame, assets: _Assets) -> dict[str, Any] | None:
    from . import cohort

    if not getattr(study, "design", None):
        return None
    res = cohort.cohort_statistics(study, table)
    ctx: dict[str, Any] = {"notes": list(res.get("notes", []))}
    options = _options(study)
    groups = res.get("groups")
    if groups is not None and len(groups):
        by = res["by"]
        constant = groups[groups.note.str.contains("same value")]
        shown = groups.drop(constant.index)
        bad = shown[~shown.computable]
        frame = cohort.design_frame(study, list(dict.fromkeys(table.subject.astype(str))))
        order = sorted(frame[by].dropna().astype(str).unique())
        two = len(order) == 2
        test = "Welch's t-test" if options.get("test", "welch") == "welch" else "the Mann-Whitney U test"
        caption = (f"Each metric compared between the groups of {by} ({', '.join(order)}) with {test}"
                   + ("" if two else " (more than two groups: one-way ANOVA with Tukey's HSD, or Kruskal-Wallis with "
                                     "Holm-corrected pairwise Mann-Whitney tests)")
                   + f"; difference of means (b - a) with its 95% CI, Hedges' g with its 95% CI; p adjusted across "
                     f"metrics ({shown.correction.iloc[0] if len(shown) else ''}). One value per subject (lesions "
                     "averaged).")
        figures = []
        ok = shown[shown.computable & shown.hedges_g.notna() & (shown.comparison != "all groups")]
        if len(ok):
            figures.append(assets.figure("stats_effect_sizes", f"Hedges' g with its 95% CI for every metric "
                                         f"({by})", _forest_figure(shown, "png", PRINT_DPI),
                                         lambda fmt, dpi: _forest_figure(shown, fmt, dpi)))
            from multiscale import stats

            top = ok.sort_values("p_value").drop_duplicates("label").head(6)
            wide, _ = stats.subject_table(table, cohort.design_frame(study, list(dict.fromkeys(table.subject))),
                                          metrics=list(top.label))
            items = [(r.label, r.metric, r.units) for r in top.itertuples()]
            figures.append(assets.figure("stats_groups", f"The {len(items)} metrics with the smallest p-values: each "
                                         "subject's value by group, the group mean and its 95% CI",
                                         _dots_figure(wide, by, items, "png", PRINT_DPI),
                                         lambda fmt, dpi: _dots_figure(wide, by, items, fmt, dpi)))
        ctx["groups"] = {
            "title": f"Groups: {by}",
            "caption": caption,
            "table": _table_html(_groups_display(shown)),
            "downloads": [assets.table(f"stats_groups_{by}", "groups (CSV)", groups)],
            "not_computable": _grouped_notes(bad.label, bad.note.str.replace("not computable: ", "", regex=False)),
            "constant": ", ".join(constant.label.unique()),
            "figures": figures,
        }
    mixed = res.get("mixed")
    if mixed is not None and len(mixed):
        shown = mixed[mixed.computable | ~mixed.note.str.contains("same value|no repeated")]
        d = pd.DataFrame({"metric": shown.label, "units": shown.units, "comparison": shown.comparison,
                          "estimate [95% CI]": [_ci(e, lo, hi) for e, lo, hi in
                                                zip(shown.estimate, shown.ci_low, shown.ci_high)],
                          "p": shown.p_value.map(_p), "p adjusted": shown.p_adjusted.map(_p),
                          "rows / units": [f"{r} / {u}" for r, u in zip(shown.n_rows, shown.n_units)],
                          "note": shown.note})
        ctx["mixed"] = {
            "caption": f"Repeated measures (lesions, sections or sessions within each {res.get('unit')}): a linear "
                       f"mixed model per metric, value ~ {res.get('by')} with a random intercept per "
                       f"{res.get('unit')} (statsmodels MixedLM, REML); the group coefficient with its Wald 95% CI; "
                       f"p adjusted across metrics ({mixed.correction.iloc[0]}).",
            "table": _table_html(d), "downloads": [assets.table("stats_mixed", "mixed models (CSV)", mixed)]}
    var = res.get("variance")
    if var is not None and len(var):
        ctx["variance"] = _variance_context(var, res.get("levels") or [], assets)
    les = res.get("lesions")
    if les is not None and len(les):
        n, pos = int(les.n_lesions.sum()), int(les.n_positive.sum())
        burden, positive = float(np.nansum(les.burden_ml)), float(np.nansum(les.positive_ml))
        summary = (f"Over the cohort, {pos} of {n} lesions ({100 * pos / n:.0f} %) meet {les.criterion.iloc[0]}"
                   + (f"; they hold {100 * positive / burden:.0f} % of the tumour burden by volume "
                      f"({positive:.3g} of {burden:.3g} mL)" if burden > 0 else "") + ".")
        conc = res.get("concordance")
        if conc:
            summary += (f" Per-lesion concordance of the two tracers: Spearman rho {_ci(conc['spearman'], conc['ci_low'], conc['ci_high'])}"
                        f" over {conc['n_lesions']} lesions of {conc['n_subjects']} subjects"
                        + (f"; positivity agrees in {100 * conc['agreement']:.0f} % of lesions (Cohen's kappa "
                           f"{_fmt(conc['kappa'])})" if np.isfinite(conc.get("agreement", np.nan)) else "")
                        + (f"; {conc['note']}" if conc.get("note") else "") + ".")
        ctx["lesions"] = {"caption": summary, "table": _table_html(les.drop(columns=["criterion"])),
                          "downloads": [assets.table("stats_lesions", "lesions (CSV)", les)]}
    corr = res.get("correlation")
    if corr is not None and len(corr):
        d = corr.assign(**{"r [95% CI]": [_ci(r, lo, hi) for r, lo, hi in zip(corr.r, corr.ci_low, corr.ci_high)],
                           "p": corr.p_value.map(_p), "p adjusted": corr.p_adjusted.map(_p)})
        ctx["correlation"] = {
            "caption": f"{corr.method.iloc[0]} correlation of each metric with each outcome across subjects, with the "
                       f"Fisher-z 95% CI; p adjusted across metrics ({corr.correction.iloc[0]}).",
            "table": _table_html(d[["label", "units", "outcome", "n", "r [95% CI]", "p", "p adjusted", "note"]]
                                 .rename(columns={"label": "metric"})),
            "downloads": [assets.table("stats_correlation", "correlations (CSV)", corr)],
        }
    surv = options.get("survival") or {}
    if res.get("cox") is not None or res.get("logrank") is not None:
        parts, figures, downloads = [], [], []
        if res.get("cox") is not None:
            c = res["cox"]
            parts.append(_table_html(pd.DataFrame({
                "covariate": c.covariate, "hazard ratio [95% CI]": [_ci(h, lo, hi) for h, lo, hi in
                                                                    zip(c.hazard_ratio, c.hr_ci_low, c.hr_ci_high)],
                "coef (SE)": [f"{_fmt(b)} ({_fmt(s)})" for b, s in zip(c.coef, c.se)], "p": c.p_value.map(_p),
                "n": c.n, "events": c.events})))
            downloads.append(assets.table("stats_cox", "Cox model (CSV)", c))
        lr = res.get("logrank")
        if lr is not None:
            parts.append(f"<p class='small'>Log-rank test between {', '.join(map(str, lr['groups']))}: "
                         f"chi-squared {_fmt(lr['statistic'])} on {lr['df']} df, p = {_p(lr['p_value'])} "
                         f"({lr['n']} subjects, {lr['events']} events){'; ' + lr['note'] if lr['note'] else ''}.</p>")
        km = res.get("kaplan_meier")
        if km is not None and len(km):
            figures.append(assets.figure("stats_kaplan_meier", "Kaplan-Meier survival by group with 95% CI",
                                         _km_figure(km, surv.get("duration", "time"), "png", PRINT_DPI),
                                         lambda fmt, dpi: _km_figure(km, surv.get("duration", "time"), fmt, dpi)))
        ctx["survival"] = {"caption": f"Cox proportional hazards (Efron ties) of {surv.get('duration')} with event "
                                      f"{surv.get('event')}; Wald 95% CIs.", "table": "".join(parts),
                           "downloads": downloads, "figures": figures}
    return ctx


# ---------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------

_STATS_PACKAGES = ("multiscale", "numpy", "scipy", "pandas", "SimpleITK", "scikit-image", "dask", "xarray",
                   "statsmodels", "lifelines", "matplotlib", "Jinja2")


def _family_defaults(kind: str) -> dict[str, Any]:
    try:
        sig = inspect.signature(family_named(kind).table)
    except (TypeError, ValueError, KeyError):
        return {}
    return {n: p.default for n, p in sig.parameters.items()
            if p.kind == p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}


def _methods_context(study: Any, table: pd.DataFrame, statuses: list[Mapping[str, Any]], output: Path,
                     stats_ctx: dict[str, Any] | None) -> dict[str, Any]:
    from .provenance import package_versions

    in_table = [s["subject"] for s in statuses if s.get("in_table", s.get("status") != "failed")]
    packages: dict[str, str] = {}
    for sid in in_table[:1]:
        try:
            packages = json.loads((Path(output) / "subjects" / sid / "provenance.json").read_text()).get("packages", {})
        except (OSError, ValueError):
            packages = {}
    packages = {**package_versions(_STATS_PACKAGES), **packages}
    software = ", ".join(f"{k} {v}" for k, v in packages.items() if v != "not installed" and k in
                         ("python", *_STATS_PACKAGES))
    subjects = list(getattr(study, "subjects", ()))
    first = subjects[0] if subjects else None
    images = []
    if first is not None:
        for key, im in first.images.items():
            bits = [im.modality]
            if im.agent:
                bits.append(im.agent)
            if im.units:
                bits.append(f"in {im.units}")
            if im.targets:
                bits.append("targets " + ", ".join(f"{n} (m/z {mz:g})" for n, mz in im.targets.items()))
            if im.options:
                bits.append("options " + ", ".join(f"{k}={v}" for k, v in im.options.items()))
            images.append(f"Image {key}: {'; '.join(bits)}.")
    registration = []
    if first is not None:
        for e in first.edges:
            extra = f" with options {', '.join(f'{k}={v}' for k, v in e.options.items())}" if e.options else ""
            unc = f"; {e.uncertainty} transforms drawn around the result estimate its uncertainty" if e.uncertainty else ""
            registration.append(f"{e.moving} was registered to {e.fixed} ({e.method}{extra}){unc}.")
        for link in first.sections:
            where = f"z {link.z_mm:g} mm" if link.z_mm is not None else f"slice {link.index}"
            registration.append(f"The section {link.section} was placed in the volume by matching {link.volume} "
                                f"(searched within {link.search_mm:g} mm of {where}).")
    quality_rows = []
    for sid in in_table:
        try:
            reg = json.loads((Path(output) / "subjects" / sid / "registration.json").read_text())
        except (OSError, ValueError):
            continue
        for name, r in reg.items():
            q = {k: v for k, v in (r.get("quality") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            quality_rows.append({"subject": sid, "registration": name, "method": r.get("method", ""), **q})
    quality = ""
    q = pd.DataFrame(quality_rows)
    num = q.drop(columns=["subject", "registration", "method"]).columns if quality_rows else []
    if len(num):  # (a registration without numeric quality measures, e.g. identity, has none to summarise)
        summary = q.groupby(["registration", "method"], sort=False)[list(num)].agg(["mean", "min", "max"])
        flat = []
        for (name, method), row in summary.iterrows():
            for measure in num:
                m, lo, hi = row[(measure, "mean")], row[(measure, "min")], row[(measure, "max")]
                if np.isfinite(m):
                    flat.append({"registration": name, "method": method, "measure": measure,
                                 "mean": m, "min": lo, "max": hi})
        quality = ("<p class='small'>Registration quality over the subjects (mean, min, max):</p>"
                   + _table_html(pd.DataFrame(flat)))
    analyses, params = [], []
    for a in getattr(study, "analyses", ()):
        family = family_named(a.type)
        what = (", ".join(f"{x} ~ {y}" for x, y in a.pairs) if a.pairs else ", ".join(a.maps))
        where = f" in {', '.join(a.masks)}" if a.masks else ""
        analyses.append({"text": f"{a.name} ({a.type}: {family.description.rstrip('.')}) on {what}{where}."})
        defaults = _family_defaults(a.type)
        for k, v in {**defaults, **a.params}.items():
            params.append({"analysis": a.name, "parameter": k, "value": json.dumps(v, default=str),
                           "set by": "study" if k in a.params else "default"})
    design = getattr(study, "design", None)
    dtext = ""
    if design:
        frame = design.frame()
        parts = []
        for c in design.covariates:
            levels = frame[c].dropna()
            if 0 < levels.nunique() <= 8 and levels.nunique() < len(levels):
                counts = levels.astype(str).value_counts().sort_index()
                parts.append(f"{c}: " + ", ".join(f"{k} (n = {v})" for k, v in counts.items()))
        dtext = "; ".join(parts)
    stats_text = ""
    if stats_ctx:
        opts = _options(study)
        test = opts.get("test", "welch")
        stats_text = ("Metrics were compared between groups with one value per subject (lesions averaged) using "
                      + ("Welch's unequal-variance t-test (scipy.stats.ttest_ind), one-way ANOVA with Tukey's HSD for "
                         "more than two groups" if test == "welch" else
                         "the Mann-Whitney U test (scipy.stats.mannwhitneyu), Kruskal-Wallis with Holm-corrected "
                         "pairwise tests for more than two groups")
                      + "; effect sizes are differences of means with Welch 95% confidence intervals and Hedges' g "
                        "(bias-corrected standardised mean difference, statsmodels) with normal-approximation 95% CIs; "
                        f"p-values were adjusted across metrics ({opts.get('correction', 'holm')}, statsmodels "
                        "multipletests). Correlations with outcomes are Pearson's r with Fisher-z CIs (or Spearman's "
                        "rho with the Bonett-Wright standard error); survival by Kaplan-Meier with the log-rank test "
                        "and Cox proportional hazards with Efron ties (lifelines).")
        if opts.get("repeated"):
            from .cohort import repeated_levels

            stats_text += (" Repeated measures within " + " > ".join(repeated_levels(opts["repeated"]))
                           + " were modelled with a random intercept per unit (statsmodels MixedLM, REML), and each "
                             "metric's variance was split into nested components by REML.")
    return {
        "study": getattr(study, "name", ""), "n_subjects": len(in_table), "design": dtext, "images": images,
        "registration": registration, "registration_quality": quality, "analyses": analyses,
        "parameters": ("<p class='small'>Every parameter of every analysis (the study's and the defaults):</p>"
                       + _table_html(pd.DataFrame(params))) if params else "",
        "statistics": stats_text, "software": software + ".",
    }


# ---------------------------------------------------------------------------------------------
# the study report
# ---------------------------------------------------------------------------------------------


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
    """The study report: cohort, design, statistics, methods, then every subject's page (see the module doc).

    ``statuses`` holds one mapping per subject with ``subject``, ``status`` (completed, skipped,
    failed, stale, ...), ``seconds``, ``rows``, ``error`` and ``in_table`` (whether its rows are in
    the cohort table; subjects not in it get no section); subject sections are read back from each
    subject's folder. ``cohort_figures`` are ``(caption, png)`` pairs already drawn (drawn here
    when not given). ``table_summary`` (``rows``, ``sha256`` of ``results.csv``) names the cohort
    table this report describes; the study's provenance.json records the same. In folder mode
    (``report: {mode: folder}``) the cohort's figures and tables are written to
    ``<output>/report_files/``.
    """
    def in_table(s: Mapping[str, Any]) -> bool:
        return bool(s.get("in_table", s.get("status") != "failed"))

    options = _options(study)
    mode = options.get("mode", "inline")
    assets = _Assets(mode, Path(output), bool(options.get("downloads", mode == "folder")))
    warned = []
    for s in statuses:
        if in_table(s):
            w = _input_warnings(Path(output) / "subjects" / s["subject"])
            flagged = table[(table.subject == s["subject"]) & (table["flags"].astype(str) != "")] \
                if "flags" in table else table.iloc[:0]
            if w or len(flagged):
                n = len(flagged)
                warned.append({"subject": s["subject"], "n": len(w) + n,
                               "text": "; ".join(w) + (f"{'; ' if w else ''}{n} row(s) flagged" if n else "")})
    st = pd.DataFrame([{k: s.get(k, "") for k in ("subject", "status", "seconds", "rows")} for s in statuses])
    if len(st):
        counts = {w["subject"]: w["n"] for w in warned}
        st["warnings"] = [counts.get(s["subject"], 0) for s in statuses]
    heatmap = options.get("heatmap", "paged")
    specs = cohort_figure_specs(table, heatmap=heatmap)
    if cohort_figures is None:
        cohort_figures = [(caption, cohort_figure_png(kind, data)) for caption, kind, data in specs]
    drawn = list(cohort_figures)
    if heatmap == "clustered":  # figures drawn beforehand (on the workers) hold the first page of the paged heatmap
        paged = {caption for caption, _, _ in heatmap_pages(table)}
        drawn = [(caption, png) for caption, png in drawn if caption not in paged]
        pages = []
    else:
        pages = heatmap_pages(table)[1:]
    have = {caption for caption, _ in drawn}
    drawn += [(caption, cohort_figure_png(kind, data)) for caption, kind, data in specs + pages if caption not in have]
    all_specs = specs + pages
    figures = []
    for i, (caption, png) in enumerate(drawn):
        spec = next((sp for sp in all_specs if sp[0] == caption), None)
        draw = (lambda fmt, dpi, sp=spec: cohort_figure_png(sp[1], sp[2], fmt=fmt, dpi=dpi)) if spec else None
        figures.append(assets.figure(f"cohort_{i + 1}", caption, png, draw))
    stats_ctx = _statistics_context(study, table, assets) if len(table) else None
    design_ctx = None
    design = getattr(study, "design", None)
    if design:
        frame = design.frame().reset_index()
        design_ctx = {"covariates": list(design.covariates), "outcomes": list(design.outcomes),
                      "source": design.source or str(study.path), "table": _table_html(frame)}
    subjects, nav = [], [("cohort", "cohort")]
    if design_ctx:
        nav.append(("design", "design"))
    if stats_ctx:
        nav.append(("statistics", "statistics"))
    nav.append(("methods", "methods"))
    for s in statuses:
        if not in_table(s):
            continue
        folder = Path(output) / "subjects" / s["subject"]
        figs = {p.name: p.read_bytes() for p in sorted((folder / "figures").glob("*.png"))}
        figs.update({p.name: b"" for p in sorted((folder / "figures").glob("*.svg"))})  # offered as downloads
        reg = json.loads((folder / "registration.json").read_text()) if (folder / "registration.json").exists() else {}
        values = design.values.get(s["subject"]) if design else None
        subjects.append(_subject_context(s["subject"], table[table.subject == s["subject"]], figs, reg, None,
                                         _input_warnings(folder), assets, values))
        nav.append((s["subject"], s["subject"]))
    tables = [("results.csv", "results.csv", "results.csv"), ("subjects.csv", "subjects.csv", "subjects.csv")]
    n_ok = sum(1 for s in statuses if in_table(s))
    return _environment(study).get_template("study.html.j2").render(
        title=f"{study.name}: study report", nav=nav,
        subtitle=f"study file {study.path}; {n_ok} of {len(statuses)} subjects with results",
        summary={"rows": int(table_summary.get("rows", len(table))), "sha256": table_summary.get("sha256", "")}
        if table_summary else None,
        status_table=_table_html(st), tables=tables,
        failed=[{"subject": s["subject"], "error": str(s.get("error", ""))} for s in statuses
                if s.get("status") == "failed"],
        left_out=[s for s in statuses if not in_table(s) and s.get("status") != "failed"],
        warned=warned, cohort_figures=figures, design=design_ctx, stats=stats_ctx,
        methods=_methods_context(study, table, statuses, Path(output), stats_ctx), subjects=subjects)
