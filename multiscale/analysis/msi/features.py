"""Feature lists of an MSI dataset: peaks of the mean spectrum, recalibration, isotopes and adducts.

Conventions
-----------
* **Theoretical m/z** of an ion ``[M+A-L]^z`` (:func:`adduct_mz`): the monoisotopic masses (molmass) of the
  neutral molecule ``M`` plus the adduct atoms ``A`` minus the lost atoms ``L``, minus ``z`` electron masses
  (0.000548579909 u; a cation has lost electrons, an anion gained them), divided by ``|z|``. Doxorubicin
  C27H29NO11 gives [M+H]+ 544.18134, [M+Na]+ 566.16328, [M-H]- 542.16678 (published 544.1813, 566.1633, 542.1668).
* **Isotope envelope** (:func:`isotope_envelope`): molmass's isotopic distribution of the ion's elemental
  composition, grouped by nominal mass (M, M+1, M+2, ...), each group at its abundance-weighted mean m/z.
* **Isotope grouping** of a peak list (:func:`group_isotopes`): a peak is the M+k of a lighter one when it lies
  ``k x 1.0033548 / z`` (the 13C-12C spacing) above it within ``ppm`` and is less intense than M.
* **Recalibration**: a pixel's shift in ppm is ``(observed - theoretical) / theoretical x 1e6`` at a lock mass
  (or the median over several reference peaks), where ``observed`` is the intensity-weighted m/z of the pixel's
  signal within ``search_ppm`` of the peak, measured on sub-windows ``resolution_ppm`` wide (one pass over the
  file for every sub-window of every peak; the centroid is exact to half a sub-window). Recalibrated ion images
  sum, per pixel, the sub-windows that fall inside the window moved by the pixel's shift.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning

from .preprocessing import pick_peaks

__all__ = [
    "ELECTRON_MASS",
    "C13_SPACING",
    "ADDUCTS",
    "adduct_mz",
    "isotope_envelope",
    "feature_list",
    "feature_mz",
    "group_isotopes",
    "mz_shift_ppm",
    "pixel_shifts",
    "recalibrate_mz",
    "recalibrated_ion_images",
]

#: electron mass in u (CODATA 2018, as molmass uses)
ELECTRON_MASS = 0.000548579909065
#: mass difference 13C - 12C in u: the spacing of an isotope envelope (charge 1)
C13_SPACING = 1.0033548350723

#: adducts by their usual name: (atoms added, atoms lost, charge)
ADDUCTS: dict[str, tuple[str, str, int]] = {
    "[M]+": ("", "", 1),
    "[M+H]+": ("H", "", 1),
    "[M+Na]+": ("Na", "", 1),
    "[M+K]+": ("K", "", 1),
    "[M+NH4]+": ("NH4", "", 1),
    "[M+H-H2O]+": ("H", "H2O", 1),
    "[M+2H]2+": ("H2", "", 2),
    "[M]-": ("", "", -1),
    "[M-H]-": ("", "H", -1),
    "[M+Cl]-": ("Cl", "", -1),
    "[M+HCOO]-": ("HCOO", "", -1),
    "[M-H2O-H]-": ("", "H3O", -1),
}


def _mono(formula: str) -> float:
    if not formula:
        return 0.0
    from molmass import Formula

    try:
        return float(Formula(formula).monoisotopic_mass)
    except Exception as exc:  # noqa: BLE001 - molmass raises its own FormulaError (and ValueError, KeyError)
        raise AnalysisError(f"formula {formula!r} cannot be read ({exc}); write it as e.g. 'C27H29NO11'") from None


def _adduct(adduct: str) -> tuple[str, str, int]:
    if adduct not in ADDUCTS:
        raise AnalysisError(f"unknown adduct {adduct!r}; known adducts: {', '.join(ADDUCTS)}")
    return ADDUCTS[adduct]


def adduct_mz(formula: str, adduct: str = "[M+H]+") -> float:
    """Theoretical monoisotopic m/z of an adduct ion of a neutral molecule.

    Parameters
    ----------
    formula : str
        Neutral molecule, e.g. ``"C27H29NO11"`` (doxorubicin).
    adduct : str
        One of :data:`ADDUCTS` (``"[M+H]+"``, ``"[M+Na]+"``, ``"[M+K]+"``, ``"[M-H]-"``, ...).

    Returns
    -------
    float
        m/z, electron mass accounted for.

    Examples
    --------
    >>> round(adduct_mz("C27H29NO11", "[M+H]+"), 4)
    544.1813
    >>> round(adduct_mz("C27H29NO11", "[M-H]-"), 4)
    542.1668
    """
    add, loss, z = _adduct(adduct)
    mass = _mono(formula) + _mono(add) - _mono(loss) - z * ELECTRON_MASS
    return mass / abs(z)


def _ion_composition(formula: str, adduct: str) -> str:
    """The ion's elemental formula (neutral) as a molmass string, e.g. C27H30NO11 for [M+H]+."""
    from molmass import Formula

    add, loss, _ = _adduct(adduct)
    counts: dict[str, int] = {}
    for part, sign in ((formula, 1), (add, 1), (loss, -1)):
        if not part:
            continue
        for item in Formula(part).composition().values():
            counts[item.symbol] = counts.get(item.symbol, 0) + sign * int(item.count)
    bad = [s for s, n in counts.items() if n < 0]
    if bad:
        raise AnalysisError(f"{formula} cannot lose what the adduct {adduct} removes ({bad}); check the formula")
    return "".join(f"{s}{n}" for s, n in counts.items() if n > 0)


def isotope_envelope(formula: str, adduct: str = "[M+H]+", n: int = 3) -> pd.DataFrame:
    """m/z and relative abundance of the first ``n`` isotope peaks (M, M+1, M+2, ...) of an adduct ion.

    Returns
    -------
    pandas.DataFrame
        ``isotope`` (0 for M), ``label``, ``mz`` (abundance-weighted mean of the nominal-mass group),
        ``abundance`` (relative to M = 1), ``fraction`` (of the whole distribution).

    Examples
    --------
    >>> env = isotope_envelope("C27H29NO11", "[M+H]+")
    >>> env["label"].tolist(), round(float(env["mz"][0]), 4), round(float(env["abundance"][1]), 3)
    (['M', 'M+1', 'M+2'], 544.1813, 0.303)
    """
    from molmass import Formula

    _, _, z = _adduct(adduct)
    comp = _ion_composition(formula, adduct)
    spec = Formula(comp).spectrum(min_fraction=1e-9)
    rows = sorted(spec.values(), key=lambda p: p.mass)
    base = min(int(round(p.mass)) for p in rows if p.fraction > 1e-6)
    out = []
    for k in range(int(n)):
        group = [p for p in rows if int(round(p.mass)) == base + k]
        frac = float(sum(p.fraction for p in group))
        mass = float(sum(p.mass * p.fraction for p in group) / frac) if frac > 0 else np.nan
        out.append({"isotope": k, "label": "M" if k == 0 else f"M+{k}",
                    "mz": (mass - z * ELECTRON_MASS) / abs(z), "fraction": frac})
    df = pd.DataFrame(out)
    df["abundance"] = df["fraction"] / df["fraction"].iloc[0]
    df.attrs.update(formula=formula, adduct=adduct, ion=comp, charge=z)
    return df[["isotope", "label", "mz", "abundance", "fraction"]]


def feature_list(
    dataset: Any,
    *,
    snr: float = 5.0,
    top_n: int | None = None,
    bin_ppm: float = 2.0,
    min_distance_ppm: float = 10.0,
    mz_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Features (peaks) of a dataset's mean spectrum, or of a ``(mz, intensity)`` spectrum.

    Parameters
    ----------
    dataset : MSIDataset or tuple of arrays
        Anything with ``mean_spectrum(bin_ppm=...)`` (``multiscale.io.read_imzml``), or ``(mz, intensity)``.
    snr, min_distance_ppm, top_n
        Passed to :func:`multiscale.analysis.msi.pick_peaks`.
    bin_ppm : float
        Width of the mean spectrum's bins for processed (centroid) files.
    mz_range : (float, float), optional
        Keep features in this m/z range.

    Returns
    -------
    pandas.DataFrame
        ``mz``, ``apex_mz``, ``intensity``, ``snr``, ``apex_index`` by ascending m/z (possibly empty, with an
        :class:`~multiscale.errors.AnalysisWarning`).

    Examples
    --------
    >>> mz = np.linspace(100, 110, 1001)
    >>> spec = 1 + 0.01 * np.sin(mz * 37) + 50 * np.exp(-0.5 * ((mz - 104.2) / 0.02) ** 2)
    >>> feature_list((mz, spec))["mz"].round(3).tolist()
    [104.2]
    """
    if isinstance(dataset, tuple) and len(dataset) == 2:
        mz, inten = dataset
    elif hasattr(dataset, "mean_spectrum"):
        mz, inten = dataset.mean_spectrum(bin_ppm=bin_ppm)
    else:
        raise TypeError("dataset must be an MSIDataset (multiscale.io.read_imzml) or a (mz, intensity) tuple")
    peaks = pick_peaks(mz, inten, snr=snr, min_distance_ppm=min_distance_ppm, top_n=top_n)
    if mz_range is not None:
        peaks = peaks[(peaks["mz"] >= mz_range[0]) & (peaks["mz"] <= mz_range[1])].reset_index(drop=True)
    if len(peaks) == 0:
        warnings.warn(f"no peak of the mean spectrum reaches signal-to-noise {snr}; lower snr= or check the "
                      "m/z range", AnalysisWarning, stacklevel=2)
    return peaks


def feature_mz(features: Any, dataset: Any = None) -> np.ndarray:
    """The m/z values of a feature list (DataFrame with ``mz``, or numbers); None: :func:`feature_list` of ``dataset``.

    Raises
    ------
    AnalysisError
        Zero features, or m/z values that are not finite and positive.

    Examples
    --------
    >>> feature_mz([544.18, 790.63]).tolist()
    [544.18, 790.63]
    """
    if features is None:
        if dataset is None:
            raise AnalysisError("no features given; pass features= (m/z values or feature_list(dataset))")
        features = feature_list(dataset)
    if isinstance(features, pd.DataFrame):
        if "mz" not in features.columns:
            raise AnalysisError("the feature table has no 'mz' column; pass feature_list(dataset) or a list of m/z")
        mz = features["mz"].to_numpy(float)
    else:
        mz = np.atleast_1d(np.asarray(features, dtype=float))
    if mz.size == 0:
        raise AnalysisError("the feature list has zero peaks: nothing to analyse; lower snr= in feature_list, widen "
                            "its m/z range, or pass m/z values as features=")
    if not np.all(np.isfinite(mz)) or np.any(mz <= 0):
        raise AnalysisError(f"feature m/z values must be finite and > 0, got {mz[~(np.isfinite(mz) & (mz > 0))][:5]}")
    return mz


def group_isotopes(features: pd.DataFrame | Sequence[float], *, charge: int = 1, ppm: float = 5.0,
                   max_isotope: int = 2, intensity: Sequence[float] | None = None) -> pd.DataFrame:
    """Group a peak list into isotope envelopes (M, M+1, M+2 ...).

    A peak is the M+k (k <= ``max_isotope``) of a lighter monoisotopic peak when it lies
    ``k x 1.0033548 / charge`` above it within ``ppm`` and is less intense than that M (when intensities are
    known). Each peak is assigned once, lightest envelopes first.

    Returns
    -------
    pandas.DataFrame
        The features plus ``isotope_group`` (index of the group), ``isotope`` (0 for M) and ``monoisotopic_mz``.

    Examples
    --------
    >>> g = group_isotopes([544.1813, 545.1847, 546.1880, 600.0])
    >>> g["isotope"].tolist(), g["isotope_group"].tolist()
    ([0, 1, 2, 0], [0, 0, 0, 1])
    """
    df = features.copy() if isinstance(features, pd.DataFrame) else pd.DataFrame({"mz": np.asarray(features, float)})
    if intensity is not None:
        df["intensity"] = np.asarray(intensity, float)
    df = df.sort_values("mz", kind="stable").reset_index(drop=True)
    mz = df["mz"].to_numpy(float)
    inten = df["intensity"].to_numpy(float) if "intensity" in df else None
    n = mz.size
    group = np.full(n, -1, dtype=np.int64)
    iso = np.zeros(n, dtype=np.int64)
    gid = 0
    step = C13_SPACING / abs(int(charge))
    for i in range(n):
        if group[i] >= 0:
            continue
        group[i] = gid
        for k in range(1, int(max_isotope) + 1):
            target = mz[i] + k * step
            tol = ppm * 1e-6 * target
            lo, hi = np.searchsorted(mz, target - tol), np.searchsorted(mz, target + tol, side="right")
            cands = [j for j in range(lo, hi) if group[j] < 0 and (inten is None or inten[j] < inten[i])]
            if not cands:
                break
            j = min(cands, key=lambda c: abs(mz[c] - target))
            group[j], iso[j] = gid, k
        gid += 1
    df["isotope_group"] = group
    df["isotope"] = iso
    mono = {g: mz[(group == g) & (iso == 0)][0] for g in np.unique(group)}
    df["monoisotopic_mz"] = [mono[g] for g in group]
    return df


def mz_shift_ppm(observed: Any, theoretical: Any) -> np.ndarray:
    """Mass error in ppm: ``(observed - theoretical) / theoretical x 1e6``.

    Examples
    --------
    >>> round(float(mz_shift_ppm(500.001, 500.0)), 6)
    2.0
    """
    o, t = np.asarray(observed, float), np.asarray(theoretical, float)
    return (o - t) / t * 1e6


def recalibrate_mz(mz: Any, shift_ppm: Any) -> np.ndarray:
    """Undo a shift: the m/z that an observed ``mz`` measured with ``shift_ppm`` error really is.

    Examples
    --------
    >>> round(float(recalibrate_mz(500.001, 2.0)), 6)
    500.0
    """
    return np.asarray(mz, float) / (1.0 + np.asarray(shift_ppm, float) * 1e-6)


def _subwindows(centre: float, half_ppm: float, resolution_ppm: float) -> tuple[np.ndarray, np.ndarray]:
    k = int(np.ceil(half_ppm / resolution_ppm))
    offsets = np.arange(-k, k + 1) * resolution_ppm  # ppm offset of each sub-window's centre
    return centre * (1.0 + offsets * 1e-6), offsets


def _subwindow_images(dataset: Any, centres: Sequence[float], half_ppm: float,
                      resolution_ppm: float) -> tuple[xr.DataArray, list[np.ndarray]]:
    """One pass: images of sub-windows ``resolution_ppm`` wide spanning ``+-half_ppm`` around each centre."""
    mzs, offs = [], []
    for c in centres:
        m, o = _subwindows(float(c), half_ppm, resolution_ppm)
        mzs.append(m)
        offs.append(o)
    allmz = np.concatenate(mzs)
    # each sub-window is [c - r/2, c + r/2] ppm around its centre: consecutive ones touch (a peak exactly on an
    # edge would count twice; shrink by a hair)
    imgs = dataset.ion_images(allmz, tol=0.5 * resolution_ppm * (1 - 1e-9), tol_unit="ppm", dtype=np.float32)
    return imgs, offs


def pixel_shifts(
    dataset: Any,
    reference_mz: float | Sequence[float],
    *,
    search_ppm: float = 20.0,
    resolution_ppm: float = 0.05,
    min_intensity: float = 0.0,
    fill: str = "median",
) -> xr.DataArray:
    """Per-pixel mass shift (ppm) from a lock mass or several reference peaks.

    Parameters
    ----------
    dataset : MSIDataset
        Anything with ``ion_images(mz, tol, tol_unit, dtype)``.
    reference_mz : float or sequence of float
        Theoretical m/z of the lock mass (or of several peaks present in most pixels: the pixel's shift is
        the median of their shifts, each weighted equally).
    search_ppm : float
        Half-width of the search window around each reference m/z.
    resolution_ppm : float
        Width of the sub-windows the centroid is measured on (exact to half of it).
    min_intensity : float
        A peak counts in a pixel when its summed intensity in the search window exceeds this.
    fill : {"median", "nan"}
        Pixels where no reference peak was found get the median shift of the others (with an
        :class:`~multiscale.errors.AnalysisWarning`) or NaN.

    Returns
    -------
    xarray.DataArray
        Image of shifts in ppm (``attrs['units'] = 'ppm'``), ``attrs['n_peaks_found']`` per pixel in
        ``attrs['coverage']`` (fraction of pixels with a shift).

    Examples
    --------
    >>> shifts = pixel_shifts(ds, 556.2771, search_ppm=20)  # doctest: +SKIP
    """
    refs = np.atleast_1d(np.asarray(reference_mz, float))
    if refs.size == 0:
        raise AnalysisError("reference_mz is empty; give the lock mass (or reference peaks) m/z")
    imgs, offs = _subwindow_images(dataset, refs, search_ppm, resolution_ppm)
    vals = np.asarray(imgs.values, dtype=np.float64)
    sdims = imgs.dims[1:]
    per_peak = []
    start = 0
    for o in offs:
        block = vals[start : start + o.size]
        start += o.size
        total = block.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            centroid = np.tensordot(o, block, axes=(0, 0)) / total
        centroid[~(total > min_intensity)] = np.nan
        per_peak.append(centroid)
    stack = np.stack(per_peak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shift = np.nanmedian(stack, axis=0)
    found = np.isfinite(shift)
    coverage = float(found.mean()) if found.size else 0.0
    if not found.any():
        raise AnalysisError(f"no pixel has signal within {search_ppm} ppm of {refs.tolist()}; check the lock mass "
                            "or widen search_ppm")
    if not found.all() and fill == "median":
        warnings.warn(f"{int((~found).sum())} pixels have no reference peak within {search_ppm} ppm; they get the "
                      f"median shift {np.median(shift[found]):.3f} ppm", AnalysisWarning, stacklevel=2)
        shift = np.where(found, shift, np.median(shift[found]))
    out = xr.DataArray(shift, dims=sdims, coords={d: imgs.coords[d] for d in sdims}, name="mz_shift")
    out.attrs = {k: v for k, v in imgs.attrs.items() if k not in ("provenance", "agent", "units")}
    out.attrs.update(units="ppm", agent=f"mass shift from {refs.size} reference peak(s)", aspect="quality",
                     coverage=coverage, n_peaks_found=np.isfinite(stack).sum(axis=0).tolist() if stack.size < 10_000 else None,
                     provenance={"operation": "pixel_shifts", "reference_mz": refs.tolist(), "search_ppm": search_ppm,
                                 "resolution_ppm": resolution_ppm})
    return out


def recalibrated_ion_images(
    dataset: Any,
    mz: float | Sequence[float],
    shift_ppm: xr.DataArray | float,
    *,
    tol: float = 5.0,
    resolution_ppm: float = 0.05,
) -> xr.DataArray:
    """Ion images whose windows follow each pixel's mass shift (see :func:`pixel_shifts`).

    Pixel ``p`` of target ``m`` sums the signal in ``m (1 + s_p 1e-6) (1 +- tol 1e-6)``, measured on
    sub-windows ``resolution_ppm`` wide (window edges exact to half a sub-window), in one pass.

    Examples
    --------
    >>> imgs = recalibrated_ion_images(ds, [544.1813], pixel_shifts(ds, 556.2771), tol=3)  # doctest: +SKIP
    """
    targets = np.atleast_1d(np.asarray(mz, float))
    shift = np.asarray(shift_ppm.values if isinstance(shift_ppm, xr.DataArray) else shift_ppm, float)
    if not np.all(np.isfinite(shift)):
        raise AnalysisError("shift_ppm has NaN pixels; compute it with fill='median' or fill them first")
    span = float(np.max(np.abs(shift))) + tol + resolution_ppm
    imgs, offs = _subwindow_images(dataset, targets, span, resolution_ppm)
    vals = np.asarray(imgs.values, dtype=np.float64)
    sdims = imgs.dims[1:]
    shape = vals.shape[1:]
    sh = np.broadcast_to(shift, shape)
    out = np.zeros((targets.size,) + shape)
    start = 0
    for k, o in enumerate(offs):
        block = vals[start : start + o.size]
        start += o.size
        # sub-window j counts for pixel p when its centre offset is within tol of the pixel's shift
        inside = np.abs(o[:, None] - sh.reshape(1, -1)) <= tol + 1e-9
        out[k] = (block.reshape(o.size, -1) * inside).sum(axis=0).reshape(shape)
    res = xr.DataArray(out, dims=("c",) + sdims, coords={"c": targets.tolist(), **{d: imgs.coords[d] for d in sdims}},
                       name="ion_images")
    res.attrs = {k: v for k, v in imgs.attrs.items() if k != "provenance"}
    res.attrs.update(units="counts", agent=f"{targets.size} recalibrated ion image(s) ± {tol:g} ppm",
                     provenance={"operation": "recalibrated_ion_images", "mz": targets.tolist(), "tol_ppm": tol,
                                 "resolution_ppm": resolution_ppm})
    return res
