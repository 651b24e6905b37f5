"""The study family ``cell_patterns``: where segmented objects sit relative to each other and to the region.

The objects (and their types, by ``gates``) come from the same segmentation as the ``cells`` family
(:func:`multiscale.analysis.objects.cell_objects`: same roles and settings); their centroids are the
points and the region (``mask``) is the window. Rows (units decided here, lengths in µm):

* ``<series>.K`` (µm² in 2-D, µm³ in 3-D), ``<series>.L`` and ``<series>.L_lo/L_hi`` (µm),
  ``<series>.g`` and ``<series>.g_lo/g_hi`` (1) at each radius (``bin`` = radius index,
  ``bin_lo = bin_hi`` = radius in µm), and ``<series>.p_value`` (the MAD test on L), where
  ``<series>`` is ``all`` (CSR envelope), a type (CSR envelope) or ``a~b`` (cross-type K_ab, random
  labelling envelope);
* ``a~b.nn_mean``, ``a~b.nn_median`` (µm), ``a~b.nn_ratio`` (1; mean / random-labelling mean, < 1:
  a cells sit closer to b cells than cells in general), ``a~b.nn_p_closer`` (1);
* ``dispersion_index`` (1; variance / mean of counts in tiles), ``dispersion_p_clustered`` (1),
  ``n_tiles`` (tiles).

The object table is ``tables["objects"]`` and the curves ``tables["ripley"]`` (Parquet beside the
results); the figure draws L with its envelope for each series.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import spacing, spatial_dims

from ..family import Family, FamilyResult
from ..objects.cells import cell_objects
from .points import Window, nearest_neighbour_table, quadrat_dispersion, ripley, window_of

__all__ = ["cell_patterns_table", "cell_patterns_evaluate", "ripley_figure", "FAMILY"]

_UM = 1000.0


def _window(mask: xr.DataArray | None, image: xr.DataArray) -> Window:
    if mask is not None:
        return window_of(mask)
    img = image
    for d in ("t", "c"):
        if d in img.dims:
            img = img.isel({d: 0}, drop=True)
    sp = np.asarray(spacing(img))
    lo = np.array([float(img.coords[d].values[0]) for d in spatial_dims(img)]) - sp / 2
    hi = np.array([float(img.coords[d].values[-1]) for d in spatial_dims(img)]) + sp / 2
    return Window.box(list(zip(lo, hi)))


def cell_patterns_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    nuclei: xr.DataArray | None = None,
    membrane: xr.DataArray | None = None,
    marker_1: xr.DataArray | None = None,
    marker_2: xr.DataArray | None = None,
    marker_3: xr.DataArray | None = None,
    marker_4: xr.DataArray | None = None,
    objects: Literal["cells", "nuclei", "spots"] = "cells",
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    gates: dict[str, str] | None = None,
    method: str = "classical",
    radii_um: list[float] | None = None,
    pairs: list[list[str]] | None = None,
    correction: Literal["translation", "border", "none"] = "translation",
    n_simulations: int = 39,
    tile_um: float | None = None,
    seed: int = 0,
) -> FamilyResult:
    """Rows, tables and figure data of the ``cell_patterns`` family (see :func:`cell_patterns_table`)."""
    markers = {"marker_1": marker_1, "marker_2": marker_2, "marker_3": marker_3, "marker_4": marker_4}
    res = cell_objects(image, mask, nuclei=nuclei, membrane=membrane, markers=markers, objects=objects,
                       sigma_um=sigma_um, diameter_um=diameter_um, expand_um=expand_um, threshold=threshold,
                       gates=gates, method=method)
    table: pd.DataFrame = res["table"]
    win = _window(mask, res["labels"])
    d = win.ndim
    extent = (win.box[:, 1] - win.box[:, 0]) if win.box is not None else \
        (np.ptp(np.argwhere(win.mask), axis=0) + 1) * win.spacing
    if radii_um is None:
        rmax = float(extent.min()) / 4.0
        radii = np.linspace(rmax / 10.0, rmax, 10)
    else:
        radii = np.asarray(radii_um, float) / _UM
    k_unit = "µm²" if d == 2 else "µm³"
    rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    series: dict[str, pd.DataFrame] = {}

    def add(metric: str, value: float, unit: str, detail: str, **bins: Any) -> None:
        rows.append({"metric": metric, "value": float(value), "units": unit, "detail": detail, **bins})

    add("n_objects", len(table), objects, f"{objects} segmented ({method}); window {win.size:.4g} mm^{d}")
    kinds = [k for k in (gates or {}) if (table["type"] == k).any()] if len(table) else []
    todo: list[tuple[str, Any, Any]] = [("all", None, None)] + [(k, k, None) for k in kinds]
    pair_list = pairs if pairs is not None else [[a, b] for i, a in enumerate(kinds) for b in kinds[i + 1:]]
    for pair in pair_list:
        if len(pair) != 2:
            raise AnalysisError(f"pairs: each entry is [type_a, type_b], got {pair}")
        todo.append((f"{pair[0]}~{pair[1]}", str(pair[0]), str(pair[1])))
    known = sorted(set(table["type"])) if len(table) else []
    for name, of, to in todo:
        for t in (of, to):
            if t is not None and len(table) and t not in known and t not in (gates or {}):
                raise AnalysisError(f"pairs: no type {t!r}; types are {sorted(set(known) | set(gates or {}))}")
        n_of = int((table["type"] == of).sum()) if of is not None and len(table) else len(table)
        n_to = int((table["type"] == to).sum()) if to is not None and len(table) else n_of
        if n_of < 2 or n_to < 1:
            warnings.warn(f"{name}: too few objects ({n_of}, {n_to}) for Ripley's K; rows are NaN", AnalysisWarning,
                          stacklevel=2)
            k = pd.DataFrame({"radius_mm": radii, "K": np.nan, "L": np.nan, "g": np.nan, "L_lo": np.nan,
                              "L_hi": np.nan, "g_lo": np.nan, "g_hi": np.nan})
            k.attrs.update({"p_value": np.nan, "envelope": "csr" if to is None else "labels",
                            "n_simulations": 0, "correction": correction})
        else:
            k = ripley(table, radii_mm=radii, window=win, of=of, to=to, correction=correction,
                       n_simulations=n_simulations, seed=seed)
        series[name] = k
        env = k.attrs.get("envelope")
        detail = (f"{'cross-type K ' + of + ' to ' + to if to else ('K of ' + of if of else 'K of all objects')}; "
                  f"{correction} edge correction; envelope: {k.attrs.get('n_simulations')} "
                  f"{'CSR patterns' if env == 'csr' else 'random labellings'}")
        for b, r in enumerate(k.itertuples()):
            rb = {"bin": b, "bin_lo": r.radius_mm * _UM, "bin_hi": r.radius_mm * _UM, "bin_units": "µm"}
            add(f"{name}.K", r.K * _UM ** d, k_unit, detail, **rb)
            add(f"{name}.L", r.L * _UM, "µm", detail, **rb)
            add(f"{name}.L_lo", getattr(r, "L_lo", np.nan) * _UM, "µm", detail, **rb)
            add(f"{name}.L_hi", getattr(r, "L_hi", np.nan) * _UM, "µm", detail, **rb)
            add(f"{name}.g", r.g, "1", detail, **rb)
            add(f"{name}.g_lo", getattr(r, "g_lo", np.nan), "1", detail, **rb)
            add(f"{name}.g_hi", getattr(r, "g_hi", np.nan), "1", detail, **rb)
        add(f"{name}.p_value", k.attrs.get("p_value", np.nan), "1", detail + "; MAD test on L")
        curves.append(k.assign(series=name, envelope=env))
        if to is not None and n_of >= 1 and n_to >= 1:
            nn = nearest_neighbour_table(table, of, to, n_simulations=n_simulations, seed=seed)
            dn = f"nearest {to} from each {of}; random labelling ({n_simulations} relabellings)"
            add(f"{name}.nn_mean", nn["mean_mm"] * _UM, "µm", dn)
            add(f"{name}.nn_median", nn["median_mm"] * _UM, "µm", dn)
            add(f"{name}.nn_ratio", nn["ratio"], "1", dn + "; mean / mean under random labelling")
            add(f"{name}.nn_p_closer", nn["p_closer"], "1", dn)
    tile = (float(tile_um) / _UM) if tile_um is not None else float(extent.min()) / 5.0
    try:
        disp = quadrat_dispersion(table, win, tile) if len(table) else None
    except AnalysisError as exc:
        warnings.warn(f"dispersion per tile: {exc}", AnalysisWarning, stacklevel=2)
        disp = None
    dd = f"counts of all {objects} in tiles of {tile * _UM:.4g} µm wholly inside the region"
    add("dispersion_index", disp["dispersion_index"] if disp else np.nan, "1", dd + "; variance / mean")
    add("dispersion_p_clustered", disp["p_clustered"] if disp else np.nan, "1", dd + "; chi-squared upper tail")
    add("n_tiles", disp["n_tiles"] if disp else 0, "tiles", dd)
    out_rows = pd.DataFrame(rows)
    ripley_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    if len(ripley_table):
        ripley_table = ripley_table.assign(radius_um=ripley_table["radius_mm"] * _UM)
    return FamilyResult(rows=out_rows, images={objects: res["labels"]},
                        data={"series": series, "ndim": d},
                        tables={"objects": table, "ripley": ripley_table})


def cell_patterns_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    nuclei: xr.DataArray | None = None,
    membrane: xr.DataArray | None = None,
    marker_1: xr.DataArray | None = None,
    marker_2: xr.DataArray | None = None,
    marker_3: xr.DataArray | None = None,
    marker_4: xr.DataArray | None = None,
    objects: Literal["cells", "nuclei", "spots"] = "cells",
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    gates: dict[str, str] | None = None,
    method: str = "classical",
    radii_um: list[float] | None = None,
    pairs: list[list[str]] | None = None,
    correction: Literal["translation", "border", "none"] = "translation",
    n_simulations: int = 39,
    tile_um: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Ripley's K/L/g (all objects, per type, cross-type), nearest neighbours between types, dispersion: tidy rows.

    Parameters
    ----------
    image, mask, nuclei, membrane, marker_1 ... marker_4, objects, sigma_um, diameter_um, expand_um, threshold,
    gates, method
        As for the ``cells`` family (:func:`multiscale.analysis.objects.cells.cells_table`).
    radii_um : list of float, optional
        Radii of K (µm); default 10 up to a quarter of the region's smallest extent.
    pairs : list of [type_a, type_b], optional
        Cross-type series (default every pair of gated types, in gate order).
    correction, n_simulations, seed
        :func:`multiscale.analysis.spatial.points.ripley` settings.
    tile_um : float, optional
        Tile size of the dispersion index (default a fifth of the region's smallest extent).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:120, :120]
    >>> dna = sum(((yy - y) ** 2 + (xx - x) ** 2 < 9) * 1.0 for y, x in rng.uniform(5, 115, (40, 2)))
    >>> img = spatial_image(np.clip(dna, 0, 1), spacing=0.001, channel="DNA")
    >>> rows = cell_patterns_table(img, diameter_um=6, n_simulations=9).set_index("metric")
    >>> rows.loc["all.L", "units"].iloc[0], int(rows.loc["n_objects", "value"]) > 30
    ('µm', True)
    """
    return cell_patterns_evaluate(
        image, mask, nuclei=nuclei, membrane=membrane, marker_1=marker_1, marker_2=marker_2, marker_3=marker_3,
        marker_4=marker_4, objects=objects, sigma_um=sigma_um, diameter_um=diameter_um, expand_um=expand_um,
        threshold=threshold, gates=gates, method=method, radii_um=radii_um, pairs=pairs, correction=correction,
        n_simulations=n_simulations, tile_um=tile_um, seed=seed).rows


def ripley_figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """L(r) of every series with its simulation envelope and the CSR (or random-labelling) reference."""
    from ..figures import new_figure

    series: dict[str, pd.DataFrame] = result.data.get("series", {})
    names = list(series)[:6]
    cols = min(3, max(1, len(names)))
    nrows = int(np.ceil(len(names) / cols)) if names else 1
    fig = new_figure((3.4 * cols, 3.0 * nrows))
    for k, name in enumerate(names):
        s = series[name]
        ax = fig.add_subplot(nrows, cols, k + 1)
        r = s["radius_mm"].to_numpy(float) * _UM
        if "L_lo" in s and np.isfinite(s["L_lo"]).any():
            ax.fill_between(r, s["L_lo"] * _UM, s["L_hi"] * _UM, color="grey", alpha=0.3, lw=0, label="envelope")
        ref = s["L_sim_mean"] * _UM if s.attrs.get("envelope") == "labels" and "L_sim_mean" in s else r
        ax.plot(r, ref, "--", color="k", lw=1, label="random labelling" if s.attrs.get("envelope") == "labels"
                else "CSR (L = r)")
        ax.plot(r, s["L"] * _UM, "-o", ms=3, color="C3", label="observed")
        p = s.attrs.get("p_value", np.nan)
        ax.set_title(f"{name} (p = {p:.3g})" if np.isfinite(p) else name, fontsize="small")
        ax.set_xlabel("r (µm)")
        ax.set_ylabel("L(r) (µm)")
        if k == 0:
            ax.legend(frameon=False, fontsize="x-small")
    if title:
        fig.suptitle(title, fontsize="small")
    return [("ripley_L", fig)]


FAMILY = Family(
    name="cell_patterns",
    table=cell_patterns_table,
    inputs=("image", "mask"),
    optional=("nuclei", "membrane", "marker_1", "marker_2", "marker_3", "marker_4"),
    evaluate_fn=cell_patterns_evaluate,
    figure=ripley_figure,
    description="Ripley's K/L/g of segmented objects (all, per type, cross-type) with envelopes, nearest "
                "neighbours between types, dispersion per tile",
)
