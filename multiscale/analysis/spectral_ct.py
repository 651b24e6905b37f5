"""Spectral (multi-energy) CT basis-material decomposition into water, iodine, gadolinium... in mg/mL.

Each voxel's linear attenuation at the channels' energies is modelled as ``mu(E) = sum_m rho_m (mu/rho)_m(E)``
with ``rho_m`` the partial density of material ``m`` (g/mL) and ``(mu/rho)_m`` its mass attenuation coefficient
from **xraydb** (Elam, Ravel and Sieber's tables: :func:`xraydb.mu_elam` for elements, :func:`xraydb.material_mu`
at unit density for compounds such as water), total attenuation including coherent scattering. The partial
densities are the non-negative least-squares solution (:mod:`multiscale.analysis.unmixing.nnls`), reported in
mg/mL (a contrast agent's concentration; water about 1000 mg/mL).

Channels are virtual monoenergetic images (an energy in keV per channel: ``c`` coords such as ``40``,
``"40 keV"``, or ``energies_kev=``) or energy bins (``[lo, hi]`` keV: the coefficient is averaged uniformly over
the bin, a first-order model of a photon-counting bin). Values are linear attenuation in 1/cm (``units`` ``1/cm``
or ``1/mm``) or Hounsfield units (``HU``: ``mu = mu_water(E) (1 + HU / 1000)``, water at 1 g/mL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spatial_dims, validate

from ._masks import mask_array, to_numpy
from .family import Family, FamilyResult, tidy_rows
from .figures import feature_map_figure
from .unmixing.nnls import nnls_columns

__all__ = ["MATERIALS", "mass_attenuation", "energies_of", "linear_attenuation", "decompose",
           "spectral_ct_result", "spectral_ct_table", "FAMILY"]

#: material names -> xraydb element symbol or chemical formula
MATERIALS: dict[str, str] = {
    "water": "H2O", "iodine": "I", "gadolinium": "Gd", "calcium": "Ca", "gold": "Au", "bismuth": "Bi",
    "barium": "Ba", "tantalum": "Ta", "ytterbium": "Yb", "hafnium": "Hf", "xenon": "Xe",
}
_ENERGY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(kev)?\s*$", re.IGNORECASE)


def mass_attenuation(material: str, energies_kev: Any) -> np.ndarray:
    """Mass attenuation coefficient (cm^2/g) of a material at energies in keV (xraydb, total with coherent).

    ``material`` is a name of :data:`MATERIALS`, an element symbol (``"I"``) or a formula (``"CaCO3"``).
    An energy given as ``[lo, hi]`` is a bin: the coefficient averaged over it (0.25 keV steps).

    Examples
    --------
    >>> mass_attenuation("iodine", [40.0]).round(2).tolist()     # NIST XCOM: 22.10 cm^2/g
    [22.1]
    >>> mass_attenuation("water", [60.0]).round(4).tolist()      # NIST XCOM: 0.2059 cm^2/g
    [0.2059]
    """
    import xraydb

    key = MATERIALS.get(str(material).lower(), str(material))
    out = []
    for e in energies_kev:
        grid = np.atleast_1d(np.asarray(e, dtype=float))
        if grid.size == 2:
            lo, hi = sorted(grid.tolist())
            grid = np.linspace(lo, hi, max(int(round((hi - lo) / 0.25)) + 1, 2))
        elif grid.size != 1:
            raise AnalysisError(f"an energy is one value in keV or a [lo, hi] bin, got {e!r}")
        if np.any(grid <= 1.0) or np.any(grid > 1000.0):
            raise AnalysisError(f"energy {e!r} keV is outside 1-1000 keV; energies are in keV (e.g. 40, not 40000)")
        ev = grid * 1000.0
        try:
            if re.fullmatch(r"[A-Z][a-z]?", key):
                mu = xraydb.mu_elam(key, ev)
            else:
                mu = xraydb.material_mu(key, ev, density=1.0)
        except Exception as exc:
            raise AnalysisError(f"unknown material {material!r} for xraydb ({type(exc).__name__}: {exc}); use one of "
                                f"{sorted(MATERIALS)}, an element symbol or a chemical formula") from exc
        out.append(float(np.mean(mu)))
    return np.asarray(out, dtype=float)


def energies_of(image: xr.DataArray, energies_kev: Sequence[Any] | None = None) -> list[Any]:
    """The channels' energies in keV: ``energies_kev=`` or the ``c`` coords (``40``, ``"40 keV"``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 2, 2)), spacing=1.0, dims=("c", "y", "x"), channels=["40 keV", "70keV"])
    >>> energies_of(img)
    [40.0, 70.0]
    """
    n = image.sizes["c"] if "c" in image.dims else 1
    if energies_kev is not None:
        e = list(energies_kev)
        if len(e) != n:
            raise AnalysisError(f"energies_kev= gives {len(e)} energies for an image with {n} channel(s)")
        return e
    if "c" not in image.dims:
        raise AnalysisError("the image has no energy ('c') dim; give its energy with energies_kev=[keV]")
    out = []
    for c in image.coords["c"].values:
        if isinstance(c, (int, float, np.integer, np.floating)):
            out.append(float(c))
            continue
        m = _ENERGY.match(str(c))
        if m is None:
            raise AnalysisError(f"channel {c!r} is not an energy in keV; name the channels by energy ('40 keV') or "
                                f"pass energies_kev=[...] (channels: {image.coords['c'].values.tolist()})")
        out.append(float(m.group(1)))
    return out


def linear_attenuation(image: xr.DataArray, energies: list[Any], units: str | None = None) -> np.ndarray:
    """The image as linear attenuation in 1/cm (channels first), converting HU or 1/mm."""
    u = str(units or image.attrs.get("units") or "").strip()
    img = image if "c" in image.dims else image.expand_dims(c=[0])
    data = img.transpose("c", *spatial_dims(img)).data
    if u in ("1/cm", "cm^-1", "cm-1"):
        return data
    if u in ("1/mm", "mm^-1", "mm-1"):
        return data * 10.0
    if u.upper() == "HU":
        mu_w = mass_attenuation("water", energies)
        shape = (-1,) + (1,) * (data.ndim - 1)
        return mu_w.reshape(shape) * (1.0 + data / 1000.0)
    raise AnalysisError(f"the image's units are {u!r}; spectral CT decomposition needs linear attenuation "
                        "('1/cm' or '1/mm') or 'HU': set the image's units (study: units: HU) or pass input_units=")


def _solve_block(block: np.ndarray, A: np.ndarray) -> np.ndarray:
    L = block.shape[0]
    X, rss = nnls_columns(A, np.asarray(block, dtype=np.float64).reshape(L, -1))
    out = np.concatenate([X * 1000.0, np.sqrt(rss / L)[None, :]], axis=0)  # g/mL -> mg/mL
    return out.reshape((A.shape[1] + 1,) + block.shape[1:])


def decompose(image: xr.DataArray, materials: Sequence[str] = ("water", "iodine", "gadolinium"), *,
              energies_kev: Sequence[Any] | None = None, input_units: str | None = None) -> xr.DataArray:
    """Basis-material decomposition of a multi-energy CT image into partial densities (mg/mL).

    Parameters
    ----------
    image : xarray.DataArray
        ``(c, [z,] y, x)`` with one energy (keV) or energy bin per channel; numpy or dask (lazy, block by block).
    materials : sequence of str
        Basis materials (:data:`MATERIALS` names, element symbols or formulas); at most as many as channels.
    energies_kev : sequence, optional
        Energies (or ``[lo, hi]`` bins) when the ``c`` coords do not say.
    input_units : str, optional
        ``HU``, ``1/cm`` or ``1/mm`` when ``attrs["units"]`` does not say.

    Returns
    -------
    xarray.DataArray
        ``c`` = the materials then ``residual``: partial densities in mg/mL (``units``), and the RMS misfit of
        the attenuation in 1/cm. ``attrs["mass_attenuation_cm2_g"]`` holds the matrix used.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> E = [40.0, 50.0, 60.0, 80.0]
    >>> mu = 1.0 * mass_attenuation("water", E) + 0.005 * mass_attenuation("iodine", E)
    >>> img = spatial_image(np.broadcast_to(mu[:, None, None], (4, 2, 2)).copy(), spacing=0.1, dims=("c", "y", "x"),
    ...                     channels=E, units="1/cm")
    >>> d = decompose(img, ["water", "iodine", "gadolinium"])
    >>> d.sel(c=["water", "iodine", "gadolinium"]).values[:, 0, 0].round(3).tolist()
    [1000.0, 5.0, 0.0]
    """
    if not isinstance(image, xr.DataArray):
        raise AnalysisError(f"decompose needs a spatial image (xarray.DataArray), got {type(image).__name__}")
    validate(image)
    if "t" in image.dims:
        raise AnalysisError("decompose works on one time frame; select it with image.isel(t=k)")
    materials = [str(m) for m in materials]
    energies = energies_of(image, energies_kev)
    if len(materials) == 0 or len(set(materials)) != len(materials):
        raise AnalysisError(f"materials must be one or more distinct names, got {materials}")
    if len(energies) < len(materials):
        raise AnalysisError(f"{len(materials)} materials ({', '.join(materials)}) cannot be separated with "
                            f"{len(energies)} energy channel(s): use at least as many energies as materials")
    A = np.column_stack([mass_attenuation(m, energies) for m in materials])
    if np.linalg.matrix_rank(A, tol=1e-8 * np.abs(A).max()) < A.shape[1]:
        raise AnalysisError(f"the attenuation of {materials} is linearly dependent at these energies; choose "
                            "energies on both sides of the contrast agents' K-edges (I 33.2 keV, Gd 50.2 keV)")
    mu = linear_attenuation(image, energies, input_units)
    K = len(materials)
    if hasattr(mu, "dask"):
        import dask.array as da

        mu = mu.rechunk({0: -1})
        out = da.map_blocks(_solve_block, mu, A, dtype=np.float64, chunks=((K + 1,),) + mu.chunks[1:])
    else:
        out = _solve_block(np.asarray(mu), A)
    sd = spatial_dims(image)
    coords = {d: image.coords[d].values for d in sd}
    coords["c"] = materials + ["residual"]
    attrs = dict(image.attrs, units="mg/mL", residual_units="1/cm", materials=materials,
                 energies_kev=[e if np.isscalar(e) else list(e) for e in energies], mass_attenuation_cm2_g=A.tolist())
    return xr.DataArray(out, dims=("c",) + sd, coords=coords, attrs=attrs, name="materials")


def spectral_ct_result(image: xr.DataArray, mask: xr.DataArray | None = None, *,
                       materials: Sequence[str] | None = None,
                       energies_kev: Sequence[Any] | None = None, input_units: str | None = None) -> FamilyResult:
    """The family's evaluate: the decomposition, the region's mean partial densities and residual, the maps."""
    if isinstance(image, xr.DataArray) and "c" not in image.dims and energies_kev is None:
        got = f" (channel {image.coords['c'].item()!r})" if "c" in image.coords else ""
        raise AnalysisError(f"spectral CT decomposition needs the whole multi-energy image (energies as 'c' coords); "
                            f"it got a single channel{got}. Pass the stack itself (in a study: maps: [sct]), or give "
                            "energies_kev= for a one-channel image")
    d = decompose(image, materials if materials is not None else ("water", "iodine", "gadolinium"), energies_kev=energies_kev,
                  input_units=input_units)
    first = d.isel(c=0, drop=True)
    m = mask_array(mask, first, "mask")
    vals = np.asarray(to_numpy(d), dtype=float)[:, m]
    finite = np.isfinite(vals).all(axis=0)
    res: dict[str, float] = {}
    for k, name in enumerate(d.attrs["materials"]):
        res[f"mean_{name}"] = float(vals[k, finite].mean()) if finite.any() else float("nan")
        res[f"median_{name}"] = float(np.median(vals[k, finite])) if finite.any() else float("nan")
    res["residual_rms_mean"] = float(vals[-1, finite].mean()) if finite.any() else float("nan")
    rows = tidy_rows(res, lambda k: "1/cm" if k.startswith("residual") else "mg/mL",
                     detail=f"xraydb mass attenuation at {d.attrs['energies_kev']} keV")
    return FamilyResult(rows=rows, images={"materials": d.sel(c=list(d.attrs["materials"]))})


def spectral_ct_table(image: xr.DataArray, mask: xr.DataArray | None = None, *,
                      materials: list[str] | None = None, energies_kev: list[Any] | None = None,
                      input_units: str | None = None) -> list[dict[str, Any]]:
    """The study's ``spectral_ct``: mean and median partial density (mg/mL) of each basis material in a region.

    Parameters
    ----------
    image : xarray.DataArray
        The multi-energy CT image (energies as ``c`` coords, units HU or 1/cm).
    mask : xarray.DataArray, optional
        The region.
    materials : list of str, optional
        Basis materials (default water, iodine, gadolinium).
    energies_kev : list, optional
        The channels' energies (or ``[lo, hi]`` bins) in keV when the ``c`` coords do not say.
    input_units : str, optional
        ``HU``, ``1/cm`` or ``1/mm`` when the image's units do not say.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> mu = 1.0 * mass_attenuation("water", [70.0])
    >>> rows = spectral_ct_table(spatial_image(np.full((2, 2), mu[0]), spacing=0.5, units="1/cm"),
    ...                          materials=["water"], energies_kev=[70.0])
    >>> rows[0]["metric"], round(rows[0]["value"], 6), rows[0]["units"]
    ('mean_water', 1000.0, 'mg/mL')
    """
    return spectral_ct_result(image, mask, materials=materials,
                              energies_kev=energies_kev, input_units=input_units).rows


def _figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    maps = result.images.get("materials")
    return [] if maps is None else [("materials", feature_map_figure(maps, title=title))]


FAMILY = Family(
    name="spectral_ct",
    table=spectral_ct_table,
    inputs=("image", "mask"),
    evaluate_fn=spectral_ct_result,
    figure=_figures,
    whole_image=True,
    description="multi-energy CT basis-material decomposition (water, iodine, gadolinium; xraydb) in mg/mL",
)
