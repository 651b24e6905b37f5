"""Linear spectral unmixing of a multi-wavelength image: one concentration map per endmember plus a residual map.

Each pixel's spectrum ``b`` (one value per wavelength) is modelled as ``A x`` with ``A`` the endmembers' spectra
as columns and ``x >= 0`` their concentrations (non-negative least squares, :mod:`.nnls`). Dask images are
unmixed block by block with :func:`dask.array.map_blocks` (the wavelength axis in one chunk), so a stack larger
than memory is never loaded whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spatial_dims, validate

from .nnls import nnls_columns
from .spectra import spectra_matrix

__all__ = ["unmix", "wavelengths_of"]

_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(nm)?\s*$", re.IGNORECASE)


def wavelengths_of(image: xr.DataArray, wavelengths: Sequence[float] | None = None) -> np.ndarray:
    """The image's wavelengths in nm: its ``c`` coords (numbers, or text such as ``"750"``/``"750 nm"``).

    ``wavelengths`` overrides them (one per channel; for an image without a ``c`` dim, exactly one).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 3, 3)), spacing=0.1, dims=("c", "y", "x"), channels=["750 nm", "850"])
    >>> wavelengths_of(img).tolist()
    [750.0, 850.0]
    """
    n = image.sizes["c"] if "c" in image.dims else 1
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=float).reshape(-1)
        if wl.size != n:
            raise AnalysisError(f"wavelengths= gives {wl.size} values for an image with {n} channel(s)")
        return wl
    if "c" not in image.dims:
        raise AnalysisError("the image has no wavelength ('c') dim; give its wavelength with wavelengths=[nm], or "
                            "unmix an image whose channels are named by their wavelengths in nm")
    out = []
    for c in image.coords["c"].values:
        if isinstance(c, (int, float, np.integer, np.floating)):
            out.append(float(c))
            continue
        m = _NUMBER.match(str(c))
        if m is None:
            raise AnalysisError(f"channel {c!r} is not a wavelength in nm; name the channels by their wavelengths "
                                f"(e.g. '750') or pass wavelengths=[...] (channels: {image.coords['c'].values.tolist()})")
        out.append(float(m.group(1)))
    return np.asarray(out, dtype=float)


def _solve_block(block: np.ndarray, A: np.ndarray, method: str) -> np.ndarray:
    L = block.shape[0]
    B = np.asarray(block, dtype=np.float64).reshape(L, -1)
    X, rss = nnls_columns(A, B, method=method)
    out = np.concatenate([X, np.sqrt(rss / L)[None, :]], axis=0)
    return out.reshape((A.shape[1] + 1,) + block.shape[1:])


def unmix(image: xr.DataArray, endmembers: Mapping[str, Any] | Sequence[str], *,
          wavelengths: Sequence[float] | None = None, method: str = "auto", units: str = "a.u.") -> xr.DataArray:
    """Per-pixel non-negative least-squares unmixing of a multi-wavelength image.

    Parameters
    ----------
    image : xarray.DataArray
        Dims ``(c, [z,] y, x)`` with the wavelengths (nm) as ``c`` coords (numbers or text like ``"750"``), or
        give them with ``wavelengths=``. Numpy or dask (lazy: unmixed block by block on compute).
    endmembers : mapping name -> spectrum, or sequence of shipped names
        Each spectrum an array over the image's wavelengths, a callable of wavelength (nm), a
        ``{wavelength: value}`` tabulation (interpolated), or a shipped name (``"HbO2"``, ``"Hb"``: Prahl's
        molar extinction coefficients in cm^-1/M); see :mod:`multiscale.analysis.unmixing.spectra`.
    wavelengths : sequence of float, optional
        The channels' wavelengths in nm, when the ``c`` coords do not say.
    method : {"auto", "enumerate", "gradient"}
        Solver (:func:`multiscale.analysis.unmixing.nnls.nnls_columns`).
    units : str
        Units of the concentrations (they are the image's units divided by the spectra's units: with
        optoacoustic signal in a.u. and extinction coefficients in cm^-1/M, relative concentrations in a.u.).

    Returns
    -------
    xarray.DataArray
        Dims ``(c, [z,] y, x)`` on the image's grid with ``c`` = the endmember names then ``"residual"``: the
        concentration maps, and the root-mean-square misfit over the wavelengths, ``sqrt(||A x - b||^2 / L)``,
        in the image's units. ``attrs["endmembers"]``, ``attrs["wavelengths_nm"]`` and ``attrs["spectra"]``
        (the matrix used) record the model. Pixels with a non-finite value at any wavelength are NaN.

    Raises
    ------
    AnalysisError
        Fewer wavelengths than endmembers, wavelengths outside a tabulated spectrum, dependent spectra.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> from multiscale.analysis.unmixing.spectra import spectra_matrix
    >>> wl = [700.0, 750.0, 800.0, 850.0]
    >>> _, A = spectra_matrix(["HbO2", "Hb"], np.array(wl))
    >>> pixels = np.einsum("lk,kyx->lyx", A, np.stack([np.full((2, 2), 0.7), np.full((2, 2), 0.3)]))
    >>> img = spatial_image(pixels, spacing=0.1, dims=("c", "y", "x"), channels=wl)
    >>> u = unmix(img, ["HbO2", "Hb"])
    >>> u.coords["c"].values.tolist(), np.round(u.sel(c="HbO2").values[0, 0], 6)
    (['HbO2', 'Hb', 'residual'], np.float64(0.7))
    """
    if not isinstance(image, xr.DataArray):
        raise AnalysisError(f"unmix needs a spatial image (xarray.DataArray), got {type(image).__name__}")
    validate(image)
    if "t" in image.dims:
        raise AnalysisError("unmix works on one time frame; select it with image.isel(t=k)")
    wl = wavelengths_of(image, wavelengths)
    names, A = spectra_matrix(endmembers, wl)
    img = image if "c" in image.dims else image.expand_dims(c=[0])
    sd = spatial_dims(img)
    img = img.transpose("c", *sd)
    data = img.data
    K = len(names)
    if hasattr(data, "dask"):
        import dask.array as da

        data = data.rechunk({0: -1})
        out = da.map_blocks(_solve_block, data, A, method, dtype=np.float64,
                            chunks=((K + 1,),) + data.chunks[1:])
    else:
        out = _solve_block(np.asarray(data), A, method)
    coords = {d: img.coords[d].values for d in sd}
    coords["c"] = names + ["residual"]
    attrs = dict(image.attrs)
    attrs.update(units=units, endmembers=list(names), wavelengths_nm=wl.tolist(), spectra=A.tolist(),
                 residual_units=str(image.attrs.get("units", "") or "a.u."))
    attrs.pop("targets_mz", None)
    return xr.DataArray(out, dims=("c",) + sd, coords=coords, attrs=attrs, name="unmixed")
