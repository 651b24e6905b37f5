"""Per-object tables: size and shape in µm, centroid in mm, mean and integrated intensity of every channel.

Built on top of them: cell-type gating by marker thresholds, per-object two-channel ratios with
Gaussian-mixture sub-populations (scikit-learn), and compartment-stratified quantification (drug in
nuclei vs cytoplasm vs outside cells, in marker-positive cells vs the rest) with the bias the global
mean would carry beside each compartment's mean.

Units: ``area_um2`` (µm², 2-D) or ``volume_um3`` (µm³, 3-D), lengths in µm, centroids in mm (world
coordinates, the image's direction honoured), ``mean_<channel>`` in the image's units and
``integrated_<channel>`` = mean x area (image units x µm², or x µm³ in 3-D), so that it does not
depend on the pixel size. ``table.attrs["units"]`` maps every column to its unit.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import index_to_world, spatial_dims

from ._inputs import as_float, channel_names, name_of, pixel_um, region_array
from .segment import foreground_threshold

__all__ = [
    "object_table",
    "channel_columns",
    "gate_objects",
    "ratio_populations",
    "compartment_table",
    "threshold_compartments",
    "OTHER",
]

#: the type of an object that no gate takes
OTHER = "other"

_SHAPE_2D = ("area", "equivalent_diameter_area", "major_axis_length", "minor_axis_length", "eccentricity",
             "solidity")
_SHAPE_3D = ("area", "equivalent_diameter_area", "major_axis_length", "minor_axis_length", "extent")
_RENAME = {"equivalent_diameter_area": "equivalent_diameter_um", "major_axis_length": "major_axis_um",
           "minor_axis_length": "minor_axis_um"}


def _labels_array(labels: xr.DataArray) -> np.ndarray:
    if not isinstance(labels, xr.DataArray):
        raise AnalysisError(f"labels must be a label image (DataArray from segment_nuclei), got {type(labels).__name__}")
    for d in ("t", "c"):
        if d in labels.dims:
            raise AnalysisError(f"the label image has a {d!r} dim; give one label image")
    data = labels.data.compute() if hasattr(labels.data, "compute") else labels.values
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.rint(arr)):
            raise AnalysisError("the label image holds non-integer values; give labels (0 background, 1..n objects)")
    arr = arr.astype(np.int64)
    if arr.min(initial=0) < 0:
        raise AnalysisError("the label image holds negative labels")
    return arr


def _channels(image: xr.DataArray | Mapping[str, xr.DataArray], shape: tuple[int, ...],
              channels: Sequence[str] | None) -> list[tuple[str, xr.DataArray, str]]:
    """(name, single-channel image, units) of every channel to quantify (read one at a time by the caller)."""
    out: list[tuple[str, xr.DataArray, str]] = []
    if isinstance(image, Mapping):
        items = list(image.items())
    else:
        img = image
        if "t" in img.dims:
            raise AnalysisError("the image has a time dim; select one frame (image.isel(t=k)) or track objects")
        names = channel_names(img)
        if "c" in img.dims:
            want = names if channels is None else [str(c) for c in channels]
            bad = [c for c in want if c not in names]
            if bad:
                raise AnalysisError(f"no channel {bad[0]!r} in the image; channels are {names}")
            items = []
            for c in want:
                one = img.isel(c=names.index(c), drop=True)
                one.attrs = dict(img.attrs)
                items.append((c, one))
        else:
            items = [(name_of(img), img)]
    for name, img in items:
        if tuple(img.shape) != shape:
            raise AnalysisError(f"channel {name!r} has shape {tuple(img.shape)}, the labels {shape}; resample it "
                                "onto the label grid first")
        unit = img.attrs.get("channel_units", {}).get(name) if isinstance(img.attrs.get("channel_units"), dict) \
            else None
        out.append((str(name), img, str(unit or img.attrs.get("units", "") or "a.u.")))
    return out


def channel_columns(table: pd.DataFrame) -> list[str]:
    """The channel names quantified in an object table (its ``mean_<channel>`` columns).

    Examples
    --------
    >>> import pandas as pd
    >>> channel_columns(pd.DataFrame(columns=["label", "mean_DNA", "integrated_DNA", "mean_CD68"]))
    ['DNA', 'CD68']
    """
    return [c[len("mean_"):] for c in table.columns if c.startswith("mean_")]


def object_table(
    labels: xr.DataArray,
    image: xr.DataArray | Mapping[str, xr.DataArray] | None = None,
    *,
    channels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per object of a label image: size, shape, centroid and per-channel intensities.

    Parameters
    ----------
    labels : xarray.DataArray
        Label image (0 background), e.g. from :func:`~multiscale.analysis.objects.segment_nuclei`.
    image : xarray.DataArray or mapping name -> DataArray, optional
        The image quantified on the same grid: every channel of a multichannel image (or the
        named ``channels``), one single-channel image, or several images by name.
    channels : sequence of str, optional
        Channels of ``image`` to quantify (an unknown name raises an error listing them).

    Returns
    -------
    pandas.DataFrame
        ``label``, ``area_um2`` (2-D; ``volume_um3`` in 3-D), ``centroid_<dim>_mm`` (world mm),
        ``equivalent_diameter_um``, ``major_axis_um``, ``minor_axis_um``, ``eccentricity`` and
        ``solidity`` (2-D) or ``extent`` (3-D), ``perimeter_um`` (2-D with square pixels), then
        ``mean_<channel>`` and ``integrated_<channel>`` (mean x area) for every channel.
        Empty (same columns) when there is no object. ``attrs["units"]`` gives each column's unit.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> lab = np.zeros((6, 8), np.int32); lab[1:3, 1:4] = 1; lab[4:6, 5:8] = 2
    >>> labels = spatial_image(lab, spacing=0.002)                       # 2 µm pixels
    >>> img = spatial_image(np.stack([lab * 10.0, np.ones((6, 8))]), spacing=0.002, dims=("c", "y", "x"),
    ...                     channels=["DNA", "drug"], units="counts")
    >>> t = object_table(labels, img)
    >>> t[["label", "area_um2", "mean_DNA", "integrated_drug"]].values.tolist()
    [[1.0, 24.0, 10.0, 24.0], [2.0, 24.0, 20.0, 24.0]]
    >>> t.attrs["units"]["integrated_drug"]
    'counts x µm²'
    """
    from skimage.measure import regionprops_table

    lab = _labels_array(labels)
    nd = lab.ndim
    sd = spatial_dims(labels)
    px = pixel_um(labels)
    chans = _channels(image, lab.shape, channels) if image is not None else []
    size_col = "area_um2" if nd == 2 else "volume_um3"
    size_unit = "µm²" if nd == 2 else "µm³"
    iso = bool(np.allclose(px, px[0]))
    shape_props = _SHAPE_2D if nd == 2 else _SHAPE_3D
    shape_cols = [size_col] + [_RENAME.get(p, p) for p in shape_props[1:]] + (["perimeter_um"] if nd == 2 else [])
    cols = ["label"] + [f"centroid_{d}_mm" for d in sd] + shape_cols
    for name, _, _ in chans:
        cols += [f"mean_{name}", f"integrated_{name}"]
    units = {"label": "1", size_col: size_unit, "equivalent_diameter_um": "µm", "major_axis_um": "µm",
             "minor_axis_um": "µm", "eccentricity": "1", "solidity": "1", "extent": "1", "perimeter_um": "µm"}
    units.update({f"centroid_{d}_mm": "mm" for d in sd})
    for name, _, u in chans:
        units[f"mean_{name}"] = u
        units[f"integrated_{name}"] = f"{u} x {size_unit}"
    ids = np.unique(lab)
    ids = ids[ids > 0]
    if ids.size == 0:
        out = pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
        out.attrs["units"] = {c: units.get(c, "1") for c in cols}
        return out
    props = regionprops_table(lab, properties=("label",) + shape_props, spacing=px)
    df = pd.DataFrame(props).rename(columns=dict(_RENAME, area=size_col))
    if nd == 2:
        if iso:
            per = regionprops_table(lab, properties=("label", "perimeter"))["perimeter"] * px[0]
        else:
            per = np.full(len(df), np.nan)
        df["perimeter_um"] = per
    # centroids and intensities with one pass of bincount per channel (exactly regionprops' intensity_mean)
    flat = lab.ravel()
    n_max = int(flat.max()) + 1
    counts = np.bincount(flat, minlength=n_max).astype(float)
    rows = df["label"].to_numpy(int)
    cnt = counts[rows]
    idx = np.indices(lab.shape).reshape(nd, -1)
    cen = np.stack([np.bincount(flat, weights=idx[k], minlength=n_max)[rows] / cnt for k in range(nd)], axis=1)
    world = index_to_world(labels, cen)
    for k, d in enumerate(sd):
        df[f"centroid_{d}_mm"] = world[:, k]
    size = df[size_col].to_numpy(float)
    for name, img, _ in chans:
        arr = as_float(img)                      # one channel in float64 at a time
        finite = np.isfinite(arr)
        if not finite.all():
            warnings.warn(f"channel {name!r}: {int((~finite).sum())} NaN voxels left out of the object means",
                          AnalysisWarning, stacklevel=2)
        w = np.where(finite, arr, 0.0).ravel()
        n_ok = np.bincount(flat, weights=finite.ravel().astype(float), minlength=n_max)[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(flat, weights=w, minlength=n_max)[rows] / n_ok
        df[f"mean_{name}"] = mean
        df[f"integrated_{name}"] = mean * size
    df["label"] = df["label"].astype(float)
    df = df[cols].reset_index(drop=True)
    df.attrs["units"] = {c: units.get(c, "1") for c in cols}
    return df


# ------------------------------------------------------------------------------------------------
# gating
# ------------------------------------------------------------------------------------------------

_COND = re.compile(r"^\s*(?P<ch>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<thr>otsu|[-+0-9.eE]+)\s*$")
_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def _conditions(rule: str | Sequence[str]) -> list[str]:
    if isinstance(rule, str):
        return [p for p in re.split(r"\s*(?:&|\band\b)\s*", rule) if p.strip()]
    return [str(r) for r in rule]


def gate_objects(table: pd.DataFrame, gates: Mapping[str, str | Sequence[str]]) -> pd.Series:
    """Cell type of every object from marker thresholds on its mean intensities; the first gate that holds wins.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`object_table` (its ``mean_<channel>`` columns are the markers).
    gates : mapping type -> rule
        A rule is ``"CD68 > 2.5"``, several conditions joined by ``&`` (``"PanCK > otsu & CD68 <= 1"``),
        or a list of conditions. ``otsu`` is Otsu's threshold of that marker over the objects.

    Returns
    -------
    pandas.Series
        The type of each row (:data:`OTHER` where no gate holds), named ``type``;
        ``attrs["thresholds"]`` holds every threshold used, by ``type: condition``.

    Raises
    ------
    AnalysisError
        A rule that does not parse, or a channel that is not in the table (the message lists them).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"mean_CD68": [5.0, 0.1, 0.2], "mean_PanCK": [0.1, 4.0, 0.3]})
    >>> gate_objects(t, {"macrophage": "CD68 > 1", "tumour": "PanCK > 1"}).tolist()
    ['macrophage', 'tumour', 'other']
    """
    have = channel_columns(table)
    out = np.full(len(table), OTHER, dtype=object)
    free = np.ones(len(table), bool)
    used: dict[str, float] = {}
    for kind, rule in gates.items():
        ok = np.ones(len(table), bool)
        for cond in _conditions(rule):
            m = _COND.match(cond)
            if m is None:
                raise AnalysisError(f"gate {kind!r}: cannot read {cond!r}; write '<channel> <op> <number or otsu>' "
                                    f"with op one of > >= < <=, e.g. 'CD68 > 2.5'")
            ch = m.group("ch").strip()
            if ch not in have:
                raise AnalysisError(f"gate {kind!r}: no channel {ch!r}; channels are {have}")
            values = table[f"mean_{ch}"].to_numpy(float)
            thr = foreground_threshold(values) if m.group("thr") == "otsu" else float(m.group("thr"))
            used[f"{kind}: {cond.strip()}"] = thr
            ok &= _OPS[m.group("op")](values, thr)
        take = ok & free
        out[take] = str(kind)
        free &= ~take
    s = pd.Series(out, index=table.index, name="type", dtype=object)
    s.attrs["thresholds"] = used
    return s


def threshold_compartments(channels: Mapping[str, xr.DataArray], rules: Mapping[str, str | Sequence[str]]
                           ) -> dict[str, np.ndarray]:
    """Pixel compartments from channel thresholds (``{"collagen": "Collagen > 5"}``), same grammar as the gates.

    ``otsu`` as a threshold is Otsu's of that channel's pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> col = spatial_image(np.array([[0.0, 9.0], [1.0, 8.0]]), spacing=0.001)
    >>> threshold_compartments({"Collagen": col}, {"collagen": "Collagen > 5"})["collagen"].tolist()
    [[False, True], [False, True]]
    """
    out: dict[str, np.ndarray] = {}
    for name, rule in rules.items():
        ok = None
        for cond in _conditions(rule):
            m = _COND.match(cond)
            if m is None:
                raise AnalysisError(f"compartment {name!r}: cannot read {cond!r}; write '<channel> <op> <number or "
                                    "otsu>', e.g. 'Collagen > 5'")
            ch = m.group("ch").strip()
            if ch not in channels:
                raise AnalysisError(f"compartment {name!r}: no channel {ch!r}; channels are {list(channels)}")
            values = as_float(channels[ch])
            thr = foreground_threshold(values) if m.group("thr") == "otsu" else float(m.group("thr"))
            hit = _OPS[m.group("op")](values, thr)
            ok = hit if ok is None else ok & hit
        out[str(name)] = ok if ok is not None else np.zeros(0, bool)
    return out


# ------------------------------------------------------------------------------------------------
# ratios and mixtures
# ------------------------------------------------------------------------------------------------


def ratio_populations(
    table: pd.DataFrame,
    numerator: str,
    denominator: str,
    *,
    max_components: int = 3,
    n_components: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-object ratio of two channels and its sub-populations (Gaussian mixture of the log ratio).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`object_table`; ratios use ``integrated_<channel>`` (e.g. protein / lipid per
        liposome). Objects where either is <= 0 are left out with a warning.
    numerator, denominator : str
        Channel names (an unknown one raises an error listing the channels).
    max_components : int
        Components tried (1..max) when ``n_components`` is None; the fewest with the lowest BIC wins.
    n_components : int, optional
        Force the number of sub-populations.
    seed : int
        Random state of scikit-learn's ``GaussianMixture``.

    Returns
    -------
    per_object : pandas.DataFrame
        ``label``, ``ratio``, ``log10_ratio``, ``population`` (0, 1, ... in increasing ratio).
    populations : pandas.DataFrame
        One row per population: ``population``, ``n``, ``weight``, ``ratio_median`` (10 ** the
        component mean), ``log10_sd``, plus ``bic`` of the chosen model.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> lipid = np.full(400, 100.0)
    >>> protein = np.r_[10 ** rng.normal(0, 0.05, 300), 10 ** rng.normal(1, 0.05, 100)] * 100
    >>> t = pd.DataFrame({"label": np.arange(400.0), "integrated_protein": protein, "integrated_lipid": lipid,
    ...                   "mean_protein": protein, "mean_lipid": lipid})
    >>> per, pops = ratio_populations(t, "protein", "lipid")
    >>> pops["n"].tolist(), pops["ratio_median"].round(1).tolist()
    ([300, 100], [1.0, 10.0])
    """
    from sklearn.mixture import GaussianMixture

    have = channel_columns(table)
    for ch in (numerator, denominator):
        if ch not in have:
            raise AnalysisError(f"ratio: no channel {ch!r}; channels are {have}")
    a = table[f"integrated_{numerator}"].to_numpy(float)
    b = table[f"integrated_{denominator}"].to_numpy(float)
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    if not ok.all():
        warnings.warn(f"ratio {numerator}/{denominator}: {int((~ok).sum())} of {ok.size} objects have a "
                      "non-positive value and were left out", AnalysisWarning, stacklevel=2)
    labels = table["label"].to_numpy(float)[ok] if "label" in table else np.flatnonzero(ok).astype(float)
    ratio = a[ok] / b[ok]
    logr = np.log10(ratio)
    per = pd.DataFrame({"label": labels, "ratio": ratio, "log10_ratio": logr,
                        "population": np.zeros(ratio.size, int)})
    cols = ["population", "n", "weight", "ratio_median", "log10_sd", "bic"]
    if ratio.size < 2:
        return per, pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    x = logr.reshape(-1, 1)
    ks = [int(n_components)] if n_components else list(range(1, max(1, int(max_components)) + 1))
    ks = [k for k in ks if k <= ratio.size]
    best = None
    for k in ks:
        gm = GaussianMixture(k, random_state=seed, n_init=2).fit(x)
        bic = gm.bic(x)
        if best is None or bic < best[1] - 1e-9:
            best = (gm, bic)
    gm, bic = best
    order = np.argsort(gm.means_.ravel())
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    pop = rank[gm.predict(x)]
    per["population"] = pop
    rows = []
    for r, comp in enumerate(order):
        rows.append({"population": r, "n": int((pop == r).sum()), "weight": float(gm.weights_[comp]),
                     "ratio_median": float(10 ** gm.means_.ravel()[comp]),
                     "log10_sd": float(np.sqrt(gm.covariances_.ravel()[comp])), "bic": float(bic)})
    return per, pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------------
# compartments
# ------------------------------------------------------------------------------------------------


def compartment_table(
    image: xr.DataArray,
    compartments: Mapping[str, Any],
    mask: xr.DataArray | None = None,
) -> pd.DataFrame:
    """A map's mean in each compartment (nucleus, cytoplasm, stroma, marker+ cells...) and the global mean's bias.

    Parameters
    ----------
    image : xarray.DataArray
        A single-channel map (the drug, the nanoparticle).
    compartments : mapping name -> bool array or DataArray
        Each compartment as a mask on the image grid (they may overlap).
    mask : xarray.DataArray, optional
        The region; compartments are cut to it, and the global mean is over it.

    Returns
    -------
    pandas.DataFrame
        One row per compartment: ``compartment``, ``n_voxels``, ``area_fraction`` (of the
        region), ``mean``, ``share`` (its fraction of the region's total signal),
        ``enrichment`` (mean / global mean) and ``global_mean_bias`` ((global mean - mean) /
        mean: how far the region's average is from what this compartment holds), then a last
        row ``compartment="all"`` with the global mean.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> drug = spatial_image(np.array([[0.0, 0.0, 4.0, 4.0]]), spacing=0.001)
    >>> t = compartment_table(drug, {"nucleus": np.array([[1, 1, 0, 0]], bool),
    ...                              "cytoplasm": np.array([[0, 0, 1, 1]], bool)})
    >>> t[["compartment", "mean", "global_mean_bias"]].values.tolist()
    [['nucleus', 0.0, nan], ['cytoplasm', 4.0, -0.5], ['all', 2.0, 0.0]]
    """
    img = image
    for d in ("t", "c"):
        if d in img.dims:
            if img.sizes[d] != 1:
                raise AnalysisError(f"compartment_table needs a single-channel map; the image has {img.sizes[d]} "
                                    f"entries along {d!r}")
            img = img.isel({d: 0}, drop=True)
    vals = as_float(img)
    region = region_array(mask, img)
    region = np.ones(vals.shape, bool) if region is None else region
    region &= np.isfinite(vals)
    total = float(vals[region].sum())
    n_region = int(region.sum())
    gmean = total / n_region if n_region else float("nan")
    rows = []
    for name, comp in compartments.items():
        c = np.asarray(comp.values if isinstance(comp, xr.DataArray) else comp)
        if c.shape != vals.shape:
            raise AnalysisError(f"compartment {name!r} has shape {c.shape}, the map {vals.shape}")
        c = (c != 0) & region
        n = int(c.sum())
        mean = float(vals[c].mean()) if n else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            bias = (gmean - mean) / mean if (n and mean != 0) else float("nan")
            enrich = mean / gmean if gmean not in (0.0,) else float("nan")
        rows.append({"compartment": str(name), "n_voxels": n, "area_fraction": n / n_region if n_region else np.nan,
                     "mean": mean, "share": float(vals[c].sum()) / total if total else float("nan"),
                     "enrichment": enrich, "global_mean_bias": bias})
    rows.append({"compartment": "all", "n_voxels": n_region, "area_fraction": 1.0, "mean": gmean, "share": 1.0,
                 "enrichment": 1.0, "global_mean_bias": 0.0})
    return pd.DataFrame(rows)
