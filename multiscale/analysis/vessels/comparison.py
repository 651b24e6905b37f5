"""The study family ``penetration_comparison``: two maps (two formulations) against the same vessels.

For a pair ``[a, b]`` (e.g. 125 nm and 12 nm particles) in a region, the penetration depths from the vessel
wall of both maps at 50 % and 1/e of their perivascular value, and the ratio ``b / a`` and difference ``b - a``
with bootstrap CIs (:func:`~multiscale.analysis.vessels.perivascular.compare_penetration`). The vessels are the
``vessels`` input (a mask, or a vessel channel segmented with ``scales_mm``...), or else segmented from ``a``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisWarning

from ..family import Family
from .distance import vessel_mask_on
from .network import vessel_mask_of
from .perivascular import compare_penetration

__all__ = ["penetration_comparison_table", "FAMILY"]


def penetration_comparison_table(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    vessels: xr.DataArray | None = None,
    *,
    scales_mm: list[float] | None = None,
    method: str = "frangi",
    threshold: str | float = "otsu",
    grow: bool = False,
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    background: float | str = "far",
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Penetration of ``b`` against ``a`` from the same vessels; the study's ``penetration_comparison``.

    Rows: ``vessel_fraction``, and per level (``half``, ``1_over_e``): ``<level>.depth_a_mm``, ``<level>.depth_b_mm`` (with ``_ci_low``/
    ``_ci_high``), ``<level>.ratio`` (b / a, with CI) and ``<level>.difference_mm`` (b - a, with CI).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:200, :10] * 0.005
    >>> v = spatial_image((yy < 0.0075).astype(np.uint8), spacing=0.005)
    >>> d = np.maximum(yy - 0.0075, 0)
    >>> large, small = (spatial_image(np.exp(-d / L), spacing=0.005) for L in (0.1, 0.2))
    >>> t = penetration_comparison_table(large, small, None, v, bin_mm=0.01, background=0.0, n_boot=20)
    >>> round(float(t.set_index("metric").loc["1_over_e.ratio", "value"]), 1)
    2.0
    """
    vm = vessel_mask_of(a, vessels, scales_mm=scales_mm, method=method, threshold=threshold, grow=grow)
    if mask is None:
        mask = vm.copy(data=np.ones(vm.shape, np.uint8))
    rows: list[dict[str, Any]] = []
    keys = ("depth_a_mm", "depth_a_ci_low", "depth_a_ci_high", "depth_b_mm", "depth_b_ci_low", "depth_b_ci_high",
            "ratio", "difference_mm", "ratio_ci_low", "ratio_ci_high", "difference_ci_low", "difference_ci_high")
    region = vessel_mask_on(mask, a, "region mask")
    ves = vessel_mask_on(vm, a) & region
    rows.append({"metric": "vessel_fraction", "value": float(ves.sum() / max(region.sum(), 1)), "units": "1",
                 "detail": "vessel voxels of the region"})
    empty = not ves.any()
    if empty:
        warnings.warn("no vessel in the region: the penetration comparison is NaN", AnalysisWarning, stacklevel=2)
    for name, level in (("half", 0.5), ("1_over_e", "1/e")):
        if empty:
            r = dict.fromkeys(keys, np.nan)
        else:
            r = compare_penetration(a, b, vm, mask, level=level, background=background, bin_mm=bin_mm, n_bins=n_bins,
                                    max_distance_mm=max_distance_mm, reference=reference, n_boot=n_boot, ci=ci,
                                    seed=seed)
        for k, v in r.items():
            unit = "1" if k.startswith("ratio") else "mm"
            rows.append({"metric": f"{name}.{k}", "value": float(v), "units": unit,
                         "detail": f"b / a and b - a; background {background}"})
    return pd.DataFrame(rows)


FAMILY = Family(
    name="penetration_comparison",
    table=penetration_comparison_table,
    inputs=("a", "b", "mask"),
    optional=("vessels",),
    description="two formulations' penetration from the same vessels: 50 %/1-e depths, ratio and difference "
                "with bootstrap CIs",
)
