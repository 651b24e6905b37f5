"""Endmember spectra: the haemoglobin tabulation shipped with the package, and any user spectrum on the image's wavelengths.

The shipped table (``data/haemoglobin_prahl.tsv``) is S. Prahl's compilation (Oregon Medical Laser Center) of
the molar extinction coefficients of oxy- and deoxy-haemoglobin measured by W. B. Gratzer and N. Kollias, in
cm^-1/(mol/L) (decadic), 600-1000 nm every 2 nm. Between rows the spectra are interpolated linearly; a
wavelength outside the table is refused (no extrapolation).

A user's endmember (ICG, gold nanorods, a dye) may be given as

* an array with one value per wavelength of the image;
* a callable ``f(wavelengths_nm) -> values``;
* a tabulation: a mapping ``{wavelength_nm: value}`` or a :class:`pandas.Series` indexed by wavelength (linear
  interpolation; outside the tabulated range refused);
* the name of a shipped spectrum (``"HbO2"``, ``"Hb"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from multiscale.errors import AnalysisError

__all__ = ["haemoglobin_spectra", "shipped_spectrum", "SHIPPED", "tabulated", "spectrum_on", "spectra_matrix"]

#: names of the shipped spectra (column of the haemoglobin table) and their aliases
SHIPPED: dict[str, str] = {"hbo2": "HbO2", "oxyhaemoglobin": "HbO2", "oxyhemoglobin": "HbO2", "hbo": "HbO2",
                           "hb": "Hb", "hhb": "Hb", "hbr": "Hb", "deoxyhaemoglobin": "Hb", "deoxyhemoglobin": "Hb"}


@lru_cache(maxsize=1)
def haemoglobin_spectra() -> pd.DataFrame:
    """Molar extinction coefficients of HbO2 and Hb (cm^-1/M), indexed by wavelength in nm (Prahl, OMLC).

    Examples
    --------
    >>> t = haemoglobin_spectra()
    >>> t.loc[800].tolist()   # near the isosbestic point
    [816.0, 761.72]
    >>> float(t.index.min()), float(t.index.max())
    (600.0, 1000.0)
    """
    text = resources.files("multiscale.analysis.unmixing").joinpath("data/haemoglobin_prahl.tsv").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    arr = np.array(rows, dtype=float)
    df = pd.DataFrame({"HbO2": arr[:, 1], "Hb": arr[:, 2]}, index=pd.Index(arr[:, 0], name="wavelength_nm"))
    df.attrs["units"] = "cm^-1/M"
    return df


def tabulated(wavelengths: Sequence[float], values: Sequence[float], name: str = "spectrum") -> Callable[[Any], np.ndarray]:
    """A spectrum from a table, interpolated linearly; wavelengths outside the table are refused.

    Examples
    --------
    >>> f = tabulated([700, 800, 900], [1.0, 3.0, 2.0])
    >>> f([750, 850]).tolist()
    [2.0, 2.5]
    >>> f([650])
    Traceback (most recent call last):
    ...
    multiscale.errors.AnalysisError: spectrum is tabulated over 700-900 nm; wavelength(s) [650.0] nm lie outside: give its values there or leave those channels out
    """
    wl = np.asarray(wavelengths, dtype=float)
    val = np.asarray(values, dtype=float)
    if wl.ndim != 1 or wl.shape != val.shape or wl.size < 1:
        raise AnalysisError(f"{name}: a tabulation needs as many values as wavelengths, got {wl.shape} and {val.shape}")
    order = np.argsort(wl)
    wl, val = wl[order], val[order]
    if np.any(np.diff(wl) == 0):
        raise AnalysisError(f"{name}: the tabulation repeats a wavelength")

    def spectrum(at: Any) -> np.ndarray:
        at = np.atleast_1d(np.asarray(at, dtype=float))
        out = (at < wl[0] - 1e-9) | (at > wl[-1] + 1e-9)
        if out.any():
            raise AnalysisError(f"{name} is tabulated over {wl[0]:g}-{wl[-1]:g} nm; wavelength(s) "
                                f"{at[out].tolist()} nm lie outside: give its values there or leave those channels out")
        return np.interp(at, wl, val)

    return spectrum


def shipped_spectrum(name: str) -> Callable[[Any], np.ndarray]:
    """The shipped spectrum called ``name`` (``HbO2``, ``Hb`` or an alias) as a function of wavelength (nm).

    Examples
    --------
    >>> float(shipped_spectrum("oxyhaemoglobin")(750)[0])
    518.0
    """
    key = SHIPPED.get(str(name).lower())
    if key is None:
        raise AnalysisError(f"no shipped spectrum called {name!r}; shipped: HbO2, Hb (Prahl's haemoglobin table); "
                            "give other absorbers' spectra as arrays, callables or {wavelength: value} tabulations")
    t = haemoglobin_spectra()
    return tabulated(t.index.to_numpy(), t[key].to_numpy(), name=f"{key} (Prahl's table)")


def spectrum_on(name: str, spec: Any, wavelengths: np.ndarray) -> np.ndarray:
    """Endmember ``name``'s values at ``wavelengths`` (nm) from any accepted description (see the module).

    Examples
    --------
    >>> spectrum_on("Hb", None, np.array([700.0, 800.0])).tolist()
    [1794.28, 761.72]
    >>> spectrum_on("dye", {700: 1.0, 900: 3.0}, np.array([800.0])).tolist()
    [2.0]
    """
    wavelengths = np.asarray(wavelengths, dtype=float)
    if spec is None:
        spec = name
    if isinstance(spec, str):
        values = shipped_spectrum(spec)(wavelengths)
    elif isinstance(spec, pd.Series):
        values = tabulated(spec.index.to_numpy(float), spec.to_numpy(float), name)(wavelengths)
    elif isinstance(spec, Mapping):
        values = tabulated([float(k) for k in spec], [float(v) for v in spec.values()], name)(wavelengths)
    elif callable(spec):
        values = np.asarray(spec(wavelengths), dtype=float).reshape(-1)
        if values.size == 1 and wavelengths.size > 1:
            values = np.full(wavelengths.size, float(values[0]))
    else:
        values = np.asarray(spec, dtype=float).reshape(-1)
        if values.size != wavelengths.size:
            raise AnalysisError(f"endmember {name!r}: {values.size} values for {wavelengths.size} wavelengths "
                                f"({wavelengths.tolist()} nm); give one value per wavelength, a callable or a "
                                "{wavelength: value} tabulation")
    if values.shape != wavelengths.shape or not np.all(np.isfinite(values)):
        raise AnalysisError(f"endmember {name!r}: its spectrum is not finite at {wavelengths.tolist()} nm")
    return values


def spectra_matrix(endmembers: Mapping[str, Any] | Sequence[str], wavelengths: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The endmembers' names and the matrix ``A`` (wavelengths x endmembers) of their spectra.

    Raises
    ------
    AnalysisError
        No endmember, fewer wavelengths than endmembers, or spectra that are linearly dependent on these
        wavelengths (the concentrations would not be identifiable).

    Examples
    --------
    >>> names, A = spectra_matrix(["HbO2", "Hb"], np.array([750.0, 850.0]))
    >>> names, A.tolist()
    (['HbO2', 'Hb'], [[518.0, 1405.24], [1058.0, 691.32]])
    """
    if isinstance(endmembers, Mapping):
        items = list(endmembers.items())
    else:
        items = [(str(n), None) for n in endmembers]
    if not items:
        raise AnalysisError("no endmember given; name at least one spectrum (e.g. endmembers=['HbO2', 'Hb'])")
    names = [str(n) for n, _ in items]
    if len(set(names)) != len(names) or "residual" in names:
        raise AnalysisError(f"endmember names must be unique and not 'residual'; got {names}")
    wavelengths = np.asarray(wavelengths, dtype=float)
    if wavelengths.size < len(items):
        raise AnalysisError(
            f"{len(items)} endmembers ({', '.join(names)}) cannot be unmixed from {wavelengths.size} wavelength(s) "
            f"({', '.join(f'{w:g}' for w in wavelengths)} nm): use at least as many wavelengths as endmembers, or "
            "fewer endmembers")
    A = np.column_stack([spectrum_on(n, s, wavelengths) for n, s in items])
    if np.linalg.matrix_rank(A, tol=1e-10 * np.abs(A).max(initial=1.0) * max(A.shape)) < A.shape[1]:
        raise AnalysisError(f"the spectra of {names} are linearly dependent at {wavelengths.tolist()} nm: their "
                            "concentrations cannot be told apart; choose other wavelengths or fewer endmembers")
    return names, A
