"""Features of many regions of a label image in one pass (shells, habitats, blocks, lesions).

The intensity families (``stat``, ``ih``) are computed for all regions at once from grouped sums
(``numpy.bincount``) and one group-wise sort; the families that need a per-region mesh, sphere or
matrix (``morph``, ``loc``, ``ivh`` and the six texture matrices) loop over the regions, each on
its bounding box (``scipy.ndimage.find_objects``), never on the whole image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from . import histogram, intensity
from ._roi import Roi, RoiError, image_array, roi_mask_array, warn_once
from ._rows import COLUMNS
from ._settings import texture_settings
from .local_intensity import sphere_kernel
from .processing import refuse_processing

__all__ = ["regional_features"]

_VECTORISED = ("stat", "ih")


def _labels_array(image: xr.DataArray, labels: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(labels, xr.DataArray):
        lab = np.asarray(labels.values)
        # grid check (same rule as masks)
        roi_mask_array(image, labels, shape, None)
    else:
        lab = np.asarray(labels)
        if lab.shape != shape and lab.size == int(np.prod(shape)):
            lab = lab.reshape(shape)
        if lab.shape != shape:
            raise RoiError(f"labels array has shape {lab.shape} but the image has shape {shape}; "
                           "pass a label image on the image grid")
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)):
            raise RoiError("labels contain NaN; use 0 for background")
        if not np.all(lab == np.round(lab)):
            raise RoiError("labels must be integers (0 = background)")
        lab = lab.astype(np.int64)
    elif lab.dtype.kind == "b":
        lab = lab.astype(np.int64)
    elif lab.dtype.kind not in "iu":
        raise RoiError(f"labels have dtype {lab.dtype}; pass an integer label image (0 = background)")
    return lab


def regional_features(
    image: xr.DataArray,
    labels: Any,
    families: str | Iterable[str] | None = None,
    regions: Sequence[int] | None = None,
    aggregation: str | Sequence[str] | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """IBSI features of every region of a label image, one pass for the intensity families.

    Parameters
    ----------
    image : xarray.DataArray
        A 2-D or 3-D spatial image.
    labels : xarray.DataArray or numpy.ndarray
        Integer label image on the image's grid; 0 is background.
    families : str or iterable of str, optional
        As in :func:`features`; default all (morphology only for 3-D images).
    regions : sequence of int, optional
        Labels to report; default every non-zero label present.
    aggregation : str or sequence of str, optional
        As in :func:`features`.
    **settings
        As in :func:`features` (discretisation, re-segmentation, outlier filtering, ...), applied to
        each region separately: FBN bins span each region's own range, outlier filtering uses each
        region's own mean and SD.

    Returns
    -------
    pandas.DataFrame
        Column ``label`` followed by the columns of :func:`features`; one row per region and feature.
        For every region the values equal ``features(image, labels == region, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(16.0).reshape(4, 4), spacing=0.5)
    >>> lab = np.repeat([[1, 1, 2, 2]], 4, axis=0)
    >>> df = regional_features(img, lab, families="stat")
    >>> df[df.tag == "stat_mean"].set_index("label")["value"].tolist()
    [6.5, 8.5]
    """
    from . import check_aggregation, resolve_families, roi_feature_rows

    s = texture_settings(**settings)
    refuse_processing(s, "regional_features")
    fams = resolve_families(families)
    check_aggregation(aggregation)
    values, spacing, is_2d = image_array(image)
    shape = values.shape[1:] if is_2d else values.shape
    lab = _labels_array(image, labels, shape).reshape(values.shape)
    if is_2d and "morph" in fams:
        if families is not None:
            raise RoiError("morphological features need a 3-D image; drop 'morph' from families")
        fams = [f for f in fams if f != "morph"]
    present = np.unique(lab)
    present = present[present != 0]
    if regions is None:
        region_ids = present
    else:
        region_ids = np.asarray(list(regions), dtype=np.int64)
        if np.any(region_ids == 0):
            raise RoiError("region 0 is the background; list non-zero labels in regions=")
    n_regions = region_ids.size
    notes: list[str] = []
    frames: list[pd.DataFrame] = []
    if n_regions == 0:
        warn_once(["the label image has no regions (all voxels are 0): no features"])
        return pd.DataFrame(columns=["label", *COLUMNS])

    # group index 0..n-1 per voxel, -1 outside the requested regions
    order = np.argsort(region_ids)
    sorted_ids = region_ids[order]
    pos = np.searchsorted(sorted_ids, lab)
    pos = np.clip(pos, 0, n_regions - 1)
    hit = (sorted_ids[pos] == lab) & (lab != 0)
    group = np.where(hit, order[pos], -1)

    # intensity masks for all regions at once
    finite = np.isfinite(values)
    nan_regions = np.unique(group[(group >= 0) & ~finite])
    if nan_regions.size:
        if s["nan_policy"] == "raise":
            raise RoiError(f"image has NaN voxels inside regions {region_ids[nan_regions].tolist()}; fill them or "
                           "pass nan_policy='omit'")
        notes.append(f"NaN voxels inside regions {region_ids[nan_regions].tolist()} "
                     + ("were dropped" if s["nan_policy"] == "omit" else "make their features NaN"))
    in_int = (group >= 0) & finite
    if s["resegment_range"] is not None:
        lo, hi = s["resegment_range"]
        with np.errstate(invalid="ignore"):
            in_int &= (values >= lo) & (values <= hi)
    if s["outlier_sigma"] is not None:
        g0 = group[in_int]
        v0 = values[in_int]
        st = intensity.grouped_statistics(v0, g0, n_regions)
        mu, sd = st["mean"][g0], np.sqrt(st["var"][g0])
        keep = (v0 >= mu - s["outlier_sigma"] * sd) & (v0 <= mu + s["outlier_sigma"] * sd)
        flat = np.flatnonzero(in_int)
        in_int[np.unravel_index(flat[~keep], in_int.shape)] = False
    g = group[in_int]
    v = values[in_int]
    counts = np.bincount(g, minlength=n_regions)
    if np.any(counts == 0):
        notes.append(f"regions {region_ids[counts == 0].tolist()} are empty: their features are NaN")

    vec_rows: dict[int, list[dict]] = {k: [] for k in range(n_regions)}
    if "stat" in fams:
        st = intensity.grouped_statistics(v, g, n_regions)
        for k in range(n_regions):
            vec_rows[k] += [dict(tag=t, ibsi_id=i, aggregation="", family=intensity.FAMILY, feature=nm,
                                 value=float(st[t[5:]][k])) for t, i, nm in intensity.FEATURES]
    if "ih" in fams:
        q, ng = _grouped_discretise(v, g, n_regions, s)
        hf = histogram.grouped_histogram_features(q, g, n_regions, ng)
        ih_rows = {k: [dict(tag=t, ibsi_id=i, aggregation="", family=histogram.FAMILY, feature=nm,
                            value=float(hf[t[3:]][k])) for t, i, nm in histogram.FEATURES] for k in range(n_regions)}
    else:
        ih_rows = {k: [] for k in range(n_regions)}

    looped = [f for f in fams if f not in _VECTORISED]
    slices = ndimage.find_objects(np.where(group >= 0, group + 1, 0).astype(np.int32), max_label=n_regions)
    margin = [k // 2 for k in sphere_kernel(spacing, 1000.0 * s["local_volume_cm3"]).shape] if "loc" in looped \
        else [0, 0, 0]
    for k in range(n_regions):
        rows: list[dict] = []
        sl = slices[k]
        by_family: dict[str, list[dict]] = {}
        if looped:
            if sl is None:  # a requested region that is absent: NaN rows from an empty box
                box = tuple(slice(0, 1) for _ in values.shape)
            else:
                box = tuple(slice(max(a.start - m, 0), min(a.stop + m, n))
                            for a, m, n in zip(sl, margin, values.shape))
            morph = group[box] == k
            roi = Roi(values=values[box], morph_mask=morph, int_mask=in_int[box] & morph, spacing=spacing,
                      is_2d=is_2d)
            fam_rows, fnotes, _ = roi_feature_rows(roi, s, looped, aggregation)
            notes += fnotes
            for r in fam_rows:
                by_family.setdefault(_family_of(r), []).append(r)
        for f in fams:
            if f == "stat":
                rows += vec_rows[k]
            elif f == "ih":
                rows += ih_rows[k]
            else:
                rows += by_family.get(f, [])
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        if s["nan_policy"] == "propagate" and k in set(nan_regions.tolist()):
            df["value"] = np.nan
        df.insert(0, "label", int(region_ids[k]))
        frames.append(df)
    warn_once(notes)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["settings"] = s
    return out


def _family_of(row: dict) -> str:
    tag = row["tag"]
    prefix = tag.split("_", 1)[0]
    return {"morph": "morph", "loc": "loc", "ivh": "ivh", "cm": "glcm", "rlm": "glrlm", "szm": "glszm",
            "dzm": "gldzm", "ngt": "ngtdm", "ngl": "ngldm"}.get(prefix, prefix)


def _grouped_discretise(v: np.ndarray, g: np.ndarray, n: int, s: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-region IBSI discretisation (FBN over each region's range; FBS from its anchor)."""
    if v.size == 0:
        return np.zeros(0, dtype=np.int64), np.full(n, s["n_bins"] or 1, dtype=np.int64)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, g, v)
    np.maximum.at(hi, g, v)
    if s["discretisation"] == "fbn":
        nb = int(s["n_bins"])
        with np.errstate(invalid="ignore"):
            span = (hi - lo)[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(span > 0, np.floor(nb * (v - lo[g]) / np.where(span > 0, span, 1)), 0).astype(np.int64) + 1
        return np.clip(q, 1, nb), np.full(n, nb, dtype=np.int64)
    w = float(s["bin_width"])
    rng = s["resegment_range"]
    if s["min_anchor"] is not None:
        anchor = np.full(n, float(s["min_anchor"]))
    elif rng is not None and np.isfinite(rng[0]):
        anchor = np.full(n, float(rng[0]))
    else:
        anchor = lo
    q = np.floor((v - anchor[g]) / w).astype(np.int64) + 1
    if q.size and q.min() < 1:
        raise RoiError("values below the FBS anchor; lower min_anchor or re-segment")
    top = np.zeros(n, dtype=np.int64)
    np.maximum.at(top, g, q)
    if rng is not None and np.isfinite(rng[1]):
        top = np.maximum(top, np.maximum(np.ceil((rng[1] - anchor) / w - 1e-12), 1).astype(np.int64))
    return q, np.maximum(top, 1)
