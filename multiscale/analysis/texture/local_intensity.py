"""Local intensity features (IBSI chapter 3.2, ``loc_*``): intensity peaks in a 1 cm^3 sphere.

The local mean at a voxel is the mean of all image voxels (inside or outside the ROI) whose
centres lie within ``r = (3 V / (4 pi))^(1/3)`` mm of it (``V`` = 1000 mm^3 by default), computed
for every ROI voxel at once by a convolution.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ._rows import feature_row

__all__ = ["FAMILY", "local_mean", "local_intensity_features", "sphere_kernel"]

FAMILY = "loc"


def sphere_kernel(spacing: tuple[float, float, float], volume_mm3: float = 1000.0) -> np.ndarray:
    """Boolean kernel of the voxels whose centres lie in a sphere of ``volume_mm3`` (mm^3).

    Examples
    --------
    >>> sphere_kernel((2.0, 2.0, 2.0)).shape
    (7, 7, 7)
    """
    r = (3.0 * volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
    half = [int(np.floor(r / s + 1e-9)) for s in spacing]
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (zz**2 + yy**2 + xx**2) <= r * r * (1 + 1e-12)


def local_mean(values: np.ndarray, where: np.ndarray, spacing: tuple[float, float, float],
               volume_mm3: float = 1000.0) -> np.ndarray:
    """Mean intensity in the sphere around each voxel of ``where`` (1-D, in ``where``'s C order).

    NaN voxels of ``values`` are left out of the means; the image border is not padded.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((1, 1, 5)); v[0, 0, 2] = 5.0
    >>> local_mean(v, v > 0, (10.0, 10.0, 1.0), volume_mm3=4 * np.pi / 3).tolist()
    [1.6666666666666667]
    """
    kernel = sphere_kernel(spacing, volume_mm3).astype(float)
    if not where.any():
        return np.empty(0)
    idx = np.nonzero(where)
    half = [k // 2 for k in kernel.shape]
    lo_want = [int(i.min()) - h for i, h in zip(idx, half)]
    hi_want = [int(i.max()) + h + 1 for i, h in zip(idx, half)]
    lo = [max(a, 0) for a in lo_want]
    hi = [min(b, n) for b, n in zip(hi_want, values.shape)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    v = values[crop]
    finite = np.isfinite(v)
    at = tuple(i - a for i, a in zip(idx, lo))
    all_finite = bool(finite.all())
    sums = signal.convolve(v if all_finite else np.where(finite, v, 0.0), kernel, mode="same")
    if all_finite and lo == lo_want and hi == hi_want:
        # every sphere around an ROI voxel lies inside the image and holds no NaN: full counts
        return sums[at] / float(kernel.sum())
    counts = signal.convolve(finite.astype(float), kernel, mode="same")
    local = sums / np.maximum(np.rint(counts), 1.0)
    return local[at]


def local_intensity_features(values: np.ndarray, int_mask: np.ndarray, spacing: tuple[float, float, float],
                             volume_cm3: float = 1.0) -> list[dict]:
    """IBSI local intensity peak (``loc_peak_loc``) and global intensity peak (``loc_peak_glob``).

    Parameters
    ----------
    values : numpy.ndarray
        The whole image (z, y, x); voxels outside the ROI enter the local means.
    int_mask : numpy.ndarray
        Intensity mask (bool, same shape).
    spacing : tuple of float
        Voxel size (z, y, x) in mm.
    volume_cm3 : float
        Sphere volume in cm^3 (IBSI: 1).

    Returns
    -------
    list of dict
        Local peak: the highest local mean among the voxels of maximum intensity. Global peak:
        the highest local mean over the ROI. NaN for an empty ROI.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.ones((5, 5, 5)); img[2, 2, 2] = 28.0
    >>> rows = local_intensity_features(img, img > 0, (5.0, 5.0, 5.0))
    >>> [round(r["value"], 3) for r in rows]
    [4.857, 4.857]
    """
    if not int_mask.any():
        loc = glob = float("nan")
    else:
        means = local_mean(values, int_mask, spacing, 1000.0 * volume_cm3)
        roi_values = values[int_mask]
        top = roi_values == roi_values.max()
        loc = float(means[top].max())
        glob = float(means.max())
    return [
        feature_row("loc_peak_loc", "VJGA", FAMILY, "Local intensity peak", loc),
        feature_row("loc_peak_glob", "0F91", FAMILY, "Global intensity peak", glob),
    ]
