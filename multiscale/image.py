"""The image object: an ``xarray.DataArray`` that knows where it is in physical space.

Every loader returns one, registration moves it between frames, analysis measures it.

Conventions
-----------
* dims are a subset of ``("t", "c", "z", "y", "x")``, always in that order.
* coords on spatial dims are voxel-centre positions in **millimetres**. When the
  direction matrix is the identity (the usual case) they are world (LPS for medical
  volumes) positions. For oblique images the coords are ``origin + i * spacing`` along
  each array axis and world positions come from :func:`index_to_world`.
* ``attrs["direction"]`` is the direction-cosine matrix in **numpy (z, y, x) order**:
  ``direction[i][j]`` is the world-``i`` component of the unit vector of array axis ``j``.
* ``attrs["spacing"]`` keeps the exact spacing per dim so that SimpleITK round trips are
  bit-exact; if it disagrees with the coords (after slicing with a step, say) the coords win.

This module is the only place where numpy's ``(z, y, x)`` and ITK's ``(x, y, z)`` orders meet:
:func:`to_sitk`, :func:`from_sitk`, :func:`zyx_to_xyz` and :func:`xyz_to_zyx`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import ImageError

__all__ = [
    "ALL_DIMS",
    "SPATIAL_DIMS",
    "ImageError",
    "spatial_image",
    "like",
    "is_spatial_image",
    "validate",
    "spatial_dims",
    "spacing",
    "origin",
    "direction",
    "shape",
    "to_sitk",
    "from_sitk",
    "index_to_world",
    "world_to_index",
    "bounding_box",
    "zyx_to_xyz",
    "xyz_to_zyx",
    "grid_of",
    "same_grid",
    "voxel_volume",
    "Grid",
    "select_channel",
    "binary_mask",
    "as_image",
    "MODALITIES",
    "ASPECTS",
]

ALL_DIMS: tuple[str, ...] = ("t", "c", "z", "y", "x")

#: modality codes (DICOM where one exists)
MODALITIES: tuple[str, ...] = (
    "PT", "CT", "MR", "NM", "US", "FLUO", "IVM", "HISTO", "MSI", "IMC", "SEG", "OT",
)
#: what a map shows (``attrs["aspect"]``; "" when not said)
ASPECTS: tuple[str, ...] = ("drug", "nanoparticle", "environment", "anatomy", "mask", "")
SPATIAL_DIMS: tuple[str, ...] = ("z", "y", "x")

#: attrs every image carries (empty when unknown)
DEFAULT_ATTRS: dict[str, Any] = {
    "modality": "",
    "aspect": "",
    "agent": "",
    "units": "",
    "scale": "",
    "space_units": "mm",
}

_ORTHO_TOL = 1e-4
_EVEN_TOL = 1e-6

# ---------------------------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------------------------


def _infer_dims(ndim: int) -> tuple[str, ...]:
    if ndim == 2:
        return ("y", "x")
    if ndim == 3:
        return ("z", "y", "x")
    if ndim == 4:
        return ("c", "z", "y", "x")
    if ndim == 5:
        return ALL_DIMS
    raise ImageError(
        f"cannot infer dims for a {ndim}-D array; pass dims=, e.g. dims=('c', 'y', 'x')"
    )


def _check_dims(dims: Sequence[str]) -> tuple[str, ...]:
    dims = tuple(dims)
    unknown = [d for d in dims if d not in ALL_DIMS]
    if unknown:
        raise ImageError(f"unknown dims {unknown}; allowed dims are {ALL_DIMS}")
    if len(set(dims)) != len(dims):
        raise ImageError(f"dims {dims} repeat a name")
    order = [ALL_DIMS.index(d) for d in dims]
    if order != sorted(order):
        wanted = tuple(d for d in ALL_DIMS if d in dims)
        raise ImageError(
            f"dims {dims} are not in (t, c, z, y, x) order; transpose the array to {wanted}"
        )
    if not any(d in SPATIAL_DIMS for d in dims):
        raise ImageError(f"dims {dims} have no spatial dim (z, y or x)")
    sp = [d for d in dims if d in SPATIAL_DIMS]
    if sp not in (["y", "x"], ["z", "y", "x"], ["x"]):
        raise ImageError(f"spatial dims {tuple(sp)} must be ('y', 'x') or ('z', 'y', 'x')")
    return dims


def _as_vector(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size == 1 and n > 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise ImageError(
            f"{name} has {arr.size} values but the image has {n} spatial dims; give one value per "
            "spatial dim in the array's order, e.g. (dz, dy, dx)"
        )
    if not np.all(np.isfinite(arr)):
        raise ImageError(f"{name} {tuple(arr)} contains NaN or infinity")
    return arr


def _check_direction(direction: Any, n: int) -> np.ndarray:
    if direction is None:
        return np.eye(n)
    d = np.asarray(direction, dtype=float)
    if d.size != n * n:
        raise ImageError(f"direction must be a {n}x{n} matrix for {n} spatial dims, got shape {d.shape}")
    d = d.reshape(n, n)
    if not np.all(np.isfinite(d)):
        raise ImageError("direction contains NaN or infinity")
    err = np.abs(d.T @ d - np.eye(n)).max()
    if err > _ORTHO_TOL:
        raise ImageError(
            f"direction {d.tolist()} is not orthonormal (|D^T D - I| = {err:.3g}); "
            "give unit, mutually perpendicular axis vectors"
        )
    return d


def spatial_image(
    data: Any,
    spacing: Sequence[float] | float,
    origin: Sequence[float] | None = None,
    direction: Any = None,
    dims: Sequence[str] | None = None,
    *,
    channels: Sequence[Any] | None = None,
    name: str | None = None,
    **attrs: Any,
) -> xr.DataArray:
    """Build an image that knows its physical space.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        Voxel values; dims in ``(t, c, z, y, x)`` order. Dask arrays stay lazy.
    spacing : sequence of float or float
        Voxel size in mm, in the array's spatial dims order, e.g. ``(dz, dy, dx)``.
    origin : sequence of float, optional
        World position (mm) of the centre of the first voxel, same order as ``spacing``.
        Zero when not given.
    direction : array_like, optional
        Direction cosines in numpy ``(z, y, x)`` order (see module docstring). Identity when
        not given.
    dims : sequence of str, optional
        Dims of ``data``. Inferred when omitted: 2-D ``(y, x)``, 3-D ``(z, y, x)``,
        4-D ``(c, z, y, x)``, 5-D ``(t, c, z, y, x)``.
    channels : sequence, optional
        Names (dyes, stains) or m/z values for the ``c`` dim.
    name : str, optional
        Name of the DataArray.
    **attrs
        ``modality``, ``aspect``, ``agent``, ``units``, ``scale``, ``provenance``, ...

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ImageError
        Non-positive spacing, unknown or mis-ordered dims, non-orthonormal direction,
        or a shape that does not match ``dims``.

    Examples
    --------
    >>> import numpy as np
    >>> img = spatial_image(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.5), modality="MR")
    >>> float(img.x[1] - img.x[0])
    0.5
    >>> spacing(img)
    (2.0, 0.5, 0.5)
    """
    ndim = getattr(data, "ndim", None)
    if ndim is None:
        data = np.asarray(data)
        ndim = data.ndim
    dims = _infer_dims(ndim) if dims is None else _check_dims(dims)
    if len(dims) != ndim:
        raise ImageError(
            f"dims {tuple(dims)} name {len(dims)} axes but the array has {ndim} (shape {tuple(data.shape)})"
        )
    sdims = [d for d in dims if d in SPATIAL_DIMS]
    n = len(sdims)
    sp = _as_vector(spacing, n, "spacing")
    if np.any(sp <= 0):
        raise ImageError(f"spacing {tuple(sp)} must be > 0 mm in every spatial dim")
    org = np.zeros(n) if origin is None else _as_vector(origin, n, "origin")
    dmat = _check_direction(direction, n)

    coords: dict[str, Any] = {}
    for k, d in enumerate(sdims):
        size = data.shape[dims.index(d)]
        coords[d] = org[k] + np.arange(size, dtype=float) * sp[k]
    if channels is not None:
        if "c" not in dims:
            raise ImageError("channels= given but the image has no 'c' dim")
        nc = data.shape[dims.index("c")]
        channels = list(channels)
        if len(channels) != nc:
            raise ImageError(f"{len(channels)} channel names for {nc} channels")
        coords["c"] = channels
    all_attrs = dict(DEFAULT_ATTRS)
    all_attrs.update(attrs)
    all_attrs["direction"] = tuple(tuple(float(v) for v in row) for row in dmat)
    all_attrs["spacing"] = {d: float(sp[k]) for k, d in enumerate(sdims)}
    all_attrs.setdefault("provenance", {})
    out = xr.DataArray(data, dims=dims, coords=coords, attrs=all_attrs, name=name)
    if name is None:  # xarray names the array after a dask graph key otherwise: not a name, and not reproducible
        out.name = None
    return out


def like(template: xr.DataArray, data: Any, dims: Sequence[str] | None = None, **attrs: Any) -> xr.DataArray:
    """A new image with ``template``'s geometry and attrs and new voxel values.

    ``data`` may drop or add the ``c``/``t`` dims; spatial dims must match the template.

    Examples
    --------
    >>> import numpy as np
    >>> a = spatial_image(np.ones((3, 4)), spacing=(0.5, 0.5))
    >>> b = like(a, np.zeros((3, 4)), units="counts")
    >>> spacing(b), b.attrs["units"]
    ((0.5, 0.5), 'counts')
    """
    sd = spatial_dims(template)
    if dims is None:
        extra = data.ndim - len(sd)
        lead = [d for d in ("t", "c") if d in template.dims]
        if extra == len(lead):
            dims = tuple(lead) + sd
        elif extra == 0:
            dims = sd
        elif extra == 1:
            dims = ("c",) + sd
        else:
            raise ImageError(f"cannot match a {data.ndim}-D array to the template's dims {template.dims}")
    dims = _check_dims(dims)
    for d in sd:
        if data.shape[dims.index(d)] != template.sizes[d]:
            raise ImageError(
                f"array shape {tuple(data.shape)} does not match the template's {d} size {template.sizes[d]}"
            )
    coords = {d: template.coords[d].values for d in sd}
    if "c" in dims and "c" in template.dims and data.shape[dims.index("c")] == template.sizes["c"]:
        coords["c"] = template.coords["c"].values if "c" in template.coords else np.arange(template.sizes["c"])
    new_attrs = dict(template.attrs)
    new_attrs.update(attrs)
    return xr.DataArray(data, dims=dims, coords=coords, attrs=new_attrs, name=template.name)


# ---------------------------------------------------------------------------------------------
# geometry accessors
# ---------------------------------------------------------------------------------------------


def is_spatial_image(obj: Any) -> bool:
    """True when ``obj`` is a DataArray with known dims and spatial coords."""
    if not isinstance(obj, xr.DataArray):
        return False
    try:
        validate(obj)
    except ImageError:
        return False
    return True


def spatial_dims(image: xr.DataArray) -> tuple[str, ...]:
    """The spatial dims of ``image`` in array order, e.g. ``('z', 'y', 'x')``."""
    return tuple(d for d in image.dims if d in SPATIAL_DIMS)


def shape(image: xr.DataArray) -> tuple[int, ...]:
    """Sizes of the spatial dims, in array order."""
    return tuple(int(image.sizes[d]) for d in spatial_dims(image))


def spacing(image: xr.DataArray) -> tuple[float, ...]:
    """Voxel size in mm along each spatial dim, in array order.

    Examples
    --------
    >>> import numpy as np
    >>> spacing(spatial_image(np.zeros((2, 3)), spacing=(0.25, 0.5)))
    (0.25, 0.5)
    """
    stored = image.attrs.get("spacing") or {}
    out = []
    for d in spatial_dims(image):
        c = np.asarray(image.coords[d].values, dtype=float) if d in image.coords else None
        s = stored.get(d) if isinstance(stored, Mapping) else None
        if c is None or c.size < 2:
            if s is None:
                raise ImageError(f"dim {d!r} has fewer than two coords and no stored spacing")
            out.append(float(s))
            continue
        derived = (c[-1] - c[0]) / (c.size - 1)
        if s is not None and abs(derived - s) <= 1e-9 * max(abs(s), 1e-12):
            out.append(float(s))
        else:
            out.append(float(derived))
    return tuple(out)


def origin(image: xr.DataArray) -> tuple[float, ...]:
    """Coordinate (mm) of the first voxel centre along each spatial dim, in array order."""
    out = []
    for d in spatial_dims(image):
        if d not in image.coords:
            raise ImageError(f"dim {d!r} has no coords; build images with spatial_image()")
        out.append(float(image.coords[d].values[0]))
    return tuple(out)


def direction(image: xr.DataArray) -> np.ndarray:
    """Direction cosines in numpy order (``n x n``, identity when not set)."""
    n = len(spatial_dims(image))
    d = image.attrs.get("direction")
    if d is None:
        return np.eye(n)
    return _check_direction(d, n)


def voxel_volume(image: xr.DataArray) -> float:
    """Volume (mm^3, or mm^2 for 2-D images) of one voxel."""
    return float(np.prod(spacing(image)))


def validate(image: xr.DataArray) -> xr.DataArray:
    """Check dims, coords and direction; return the image unchanged or raise :class:`ImageError`."""
    if not isinstance(image, xr.DataArray):
        raise ImageError(f"expected an xarray.DataArray image, got {type(image).__name__}")
    _check_dims(image.dims)
    for d in spatial_dims(image):
        if d not in image.coords:
            raise ImageError(f"spatial dim {d!r} has no coords in mm; build images with spatial_image()")
        c = np.asarray(image.coords[d].values, dtype=float)
        if c.size >= 2:
            steps = np.diff(c)
            step = (c[-1] - c[0]) / (c.size - 1)
            if step <= 0:
                raise ImageError(f"coords of {d!r} must increase (spacing > 0), got step {step}")
            if np.abs(steps - step).max() > _EVEN_TOL * max(abs(step), 1e-12) + 1e-12:
                raise ImageError(f"coords of {d!r} are not evenly spaced")
    direction(image)
    return image


def grid_of(image: xr.DataArray) -> dict[str, Any]:
    """The sampling grid of ``image``: ``dims``, ``shape``, ``spacing``, ``origin``, ``direction``.

    Examples
    --------
    >>> import numpy as np
    >>> g = grid_of(spatial_image(np.zeros((2, 3)), spacing=(1.0, 2.0)))
    >>> g["shape"], g["spacing"]
    ((2, 3), (1.0, 2.0))
    """
    return {
        "dims": spatial_dims(image),
        "shape": shape(image),
        "spacing": spacing(image),
        "origin": origin(image),
        "direction": direction(image),
    }


def same_grid(a: xr.DataArray, b: xr.DataArray, rtol: float = 1e-6) -> bool:
    """True when ``a`` and ``b`` sample the same voxel centres (shape, spacing, origin, direction)."""
    ga, gb = grid_of(a), grid_of(b)
    if ga["dims"] != gb["dims"] or ga["shape"] != gb["shape"]:
        return False
    tol = rtol * max(max(ga["spacing"]), 1e-12)
    return (
        np.allclose(ga["spacing"], gb["spacing"], rtol=rtol, atol=0)
        and np.allclose(ga["origin"], gb["origin"], rtol=0, atol=tol * 10)
        and np.allclose(ga["direction"], gb["direction"], atol=1e-6)
    )


@dataclass(frozen=True)
class Grid:
    """A sampling grid in array order: dims, shape, spacing (mm), origin (mm), direction.

    The one grid representation of the package: what :func:`grid_of` describes as a mapping,
    :meth:`Grid.of` builds from an image, a mapping or a SimpleITK image. Everything is in numpy
    array order ``(z, y, x)``; ``direction`` is the direction-cosine matrix in that order.

    Examples
    --------
    >>> import numpy as np
    >>> g = Grid.of(spatial_image(np.zeros((2, 3)), spacing=(1.0, 2.0), origin=(5.0, 0.0)))
    >>> g.dims, g.shape, g.spacing, g.origin
    (('y', 'x'), (2, 3), (1.0, 2.0), (5.0, 0.0))
    >>> g.embedded(0.5).shape
    (1, 2, 3)
    """

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: np.ndarray

    @classmethod
    def of(cls, reference: Any) -> Grid:
        """The grid of an image, of a ``grid_of``-style mapping or of a SimpleITK image.

        A mapping gives ``shape`` (or ``size``), ``spacing``, ``origin`` and optionally
        ``direction`` and ``dims``, all in ``(z, y, x)`` order as :func:`grid_of` returns them.
        A :class:`Grid` is returned as it is.

        Raises
        ------
        ImageError
            A mapping without shape or spacing, with a shape of other than 2 or 3 entries, or a
            spacing <= 0.
        TypeError
            Anything else.
        """
        if isinstance(reference, Grid):
            return reference
        if isinstance(reference, xr.DataArray):
            g = grid_of(validate(reference))
            return cls(tuple(g["dims"]), tuple(g["shape"]), tuple(g["spacing"]), tuple(g["origin"]),
                       np.asarray(g["direction"], dtype=float))
        if isinstance(reference, Mapping):
            shape_ = reference.get("shape", reference.get("size"))
            missing = [k for k, v in (("shape", shape_), ("spacing", reference.get("spacing"))) if v is None]
            if missing:
                raise ImageError(
                    f"reference grid mapping lacks {missing}; give shape (or size), spacing, origin "
                    "[, direction, dims] in (z, y, x) order, as multiscale.image.grid_of returns"
                )
            shape_ = tuple(int(v) for v in np.atleast_1d(shape_))
            n = len(shape_)
            if n not in (2, 3):
                raise ImageError(f"reference grid shape {shape_} must have 2 or 3 entries (z, y, x order)")
            sp = tuple(float(v) for v in np.broadcast_to(np.asarray(reference["spacing"], float), (n,)))
            if min(sp) <= 0:
                raise ImageError(f"reference grid spacing {sp} must be > 0 mm")
            org = tuple(float(v) for v in np.asarray(reference.get("origin", np.zeros(n)), float).reshape(n))
            d = np.asarray(reference.get("direction", np.eye(n)), dtype=float).reshape(n, n)
            dims = tuple(reference.get("dims", ("z", "y", "x")[3 - n:]))
            return cls(dims, shape_, sp, org, d)
        try:
            import SimpleITK as sitk
        except ImportError:  # pragma: no cover
            sitk = None
        if sitk is not None and isinstance(reference, sitk.Image):
            n = reference.GetDimension()
            d = np.asarray(reference.GetDirection(), float).reshape(n, n)[::-1, ::-1]
            return cls(("z", "y", "x")[3 - n:], tuple(reference.GetSize())[::-1],
                       tuple(reference.GetSpacing())[::-1], tuple(reference.GetOrigin())[::-1], d)
        raise TypeError(
            f"reference must be an image, a grid mapping or a SimpleITK image, got {type(reference).__name__}"
        )

    def embedded(self, thickness: float) -> Grid:
        """This 2-D grid as one slice at z = 0 of a 3-D grid (slice-to-volume)."""
        if len(self.dims) != 2:
            raise ImageError(f"only a 2-D grid can be embedded in 3-D; this one has dims {self.dims}")
        d = np.eye(3)
        d[1:, 1:] = self.direction
        return Grid(("z", "y", "x"), (1,) + self.shape, (float(thickness),) + self.spacing,
                    (0.0,) + self.origin, d)


# ---------------------------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------------------------

#: how close (in m/z) a number must be to a channel's m/z to select it
MZ_TOLERANCE = 0.01


def select_channel(image: xr.DataArray, channel: str | None, what: str = "map") -> xr.DataArray:
    """One channel of ``image`` (by name, MSI target or m/z), or the image itself for ``channel=None``.

    Parameters
    ----------
    image : xarray.DataArray
    channel : str or None
        A ``c`` coordinate (compared as text: a dye, a stain, an MSI target name), or a number
        read as an m/z: the nearest channel within 0.01 is taken. ``None`` returns ``image``,
        without its ``c`` dim when that holds a single channel.
    what : str
        How error messages name the image (e.g. ``"fixed mri:T2"``).

    Returns
    -------
    xarray.DataArray
        Without the ``c`` dim; attrs are the image's plus ``channel``.

    Raises
    ------
    ImageError
        A channel asked of an image without channels, or no channel of that name / m/z (the
        message lists the channels and the image's ``targets_mz`` attr when it has one).

    Examples
    --------
    >>> import numpy as np
    >>> img = spatial_image(np.zeros((2, 3, 4)), spacing=1.0, dims=("c", "y", "x"), channels=["a", "b"])
    >>> select_channel(img, "b").dims
    ('y', 'x')
    >>> msi = spatial_image(np.zeros((2, 3, 4)), spacing=0.02, dims=("c", "y", "x"), channels=[544.18, 790.63])
    >>> select_channel(msi, "790.632").attrs["channel"]  # the nearest m/z within 0.01
    '790.632'
    """
    if channel is None:
        if "c" in image.dims:
            if image.sizes["c"] == 1:
                return image.isel(c=0, drop=True)
            return image
        return image
    if "c" not in image.dims:
        raise ImageError(f"{what}: channel {channel!r} asked of an image without channels")
    names = [str(v) for v in image.coords["c"].values] if "c" in image.coords else []
    if channel in names:
        out = image.isel(c=names.index(channel), drop=True)
    else:
        try:
            target = float(channel)
            values = np.array([float(v) for v in image.coords["c"].values])
        except (TypeError, ValueError, KeyError):
            targets = image.attrs.get("targets_mz") or {}
            raise ImageError(
                f"{what}: no channel {channel!r}; channels are {names}"
                + (f" (targets {sorted(targets)})" if targets else "")
            ) from None
        k = int(np.argmin(np.abs(values - target)))
        if abs(values[k] - target) > MZ_TOLERANCE:
            raise ImageError(f"{what}: no channel at m/z {target}; channels are {names}")
        out = image.isel(c=k, drop=True)
    out.attrs = dict(image.attrs)
    out.attrs["channel"] = channel
    return out



# ---------------------------------------------------------------------------------------------
# coordinates
# ---------------------------------------------------------------------------------------------


def zyx_to_xyz(points: Any) -> np.ndarray:
    """Reverse the last axis of a point array: numpy ``(z, y, x)`` rows to ITK ``(x, y, z)``."""
    return np.asarray(points, dtype=float)[..., ::-1].copy()


def xyz_to_zyx(points: Any) -> np.ndarray:
    """Reverse the last axis of a point array: ITK ``(x, y, z)`` rows to numpy ``(z, y, x)``."""
    return np.asarray(points, dtype=float)[..., ::-1].copy()


def index_to_world(image: xr.DataArray, index: Any, xyz: bool = False) -> np.ndarray:
    """World positions (mm) of (possibly fractional) voxel indices.

    Parameters
    ----------
    image : xarray.DataArray
    index : array_like, shape (..., n)
        Indices in array order ``(z, y, x)`` (or ``(x, y, z)`` when ``xyz=True``).
    xyz : bool
        Rows in ITK ``(x, y, z)`` order for both input and output.

    Examples
    --------
    >>> import numpy as np
    >>> img = spatial_image(np.zeros((2, 3, 4)), spacing=(2.0, 1.0, 0.5), origin=(10, 0, 0))
    >>> index_to_world(img, [1, 0, 2]).tolist()
    [12.0, 0.0, 1.0]
    """
    idx = np.asarray(index, dtype=float)
    if xyz:
        idx = xyz_to_zyx(idx)
    sp = np.asarray(spacing(image))
    org = np.asarray(origin(image))
    d = direction(image)
    world = org + (idx * sp) @ d.T
    return zyx_to_xyz(world) if xyz else world


def world_to_index(image: xr.DataArray, points: Any, xyz: bool = False) -> np.ndarray:
    """Continuous voxel indices of world points (mm); inverse of :func:`index_to_world`.

    Examples
    --------
    >>> import numpy as np
    >>> img = spatial_image(np.zeros((2, 3, 4)), spacing=(2.0, 1.0, 0.5), origin=(10, 0, 0))
    >>> world_to_index(img, [12.0, 0.0, 1.0]).tolist()
    [1.0, 0.0, 2.0]
    """
    pts = np.asarray(points, dtype=float)
    if xyz:
        pts = xyz_to_zyx(pts)
    sp = np.asarray(spacing(image))
    org = np.asarray(origin(image))
    d = direction(image)
    idx = ((pts - org) @ d) / sp
    return zyx_to_xyz(idx) if xyz else idx


def bounding_box(image: xr.DataArray, xyz: bool = False) -> np.ndarray:
    """Axis-aligned physical bounding box (mm) of the voxels' outer edges.

    Returns
    -------
    numpy.ndarray, shape (2, n)
        ``[min, max]`` rows, in ``(z, y, x)`` order (or ``(x, y, z)`` when ``xyz=True``).

    Examples
    --------
    >>> import numpy as np
    >>> bounding_box(spatial_image(np.zeros((2, 4)), spacing=(1.0, 0.5))).tolist()
    [[-0.5, -0.25], [1.5, 1.75]]
    """
    sh = np.asarray(shape(image), dtype=float)
    n = sh.size
    corners = np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in sh], indexing="ij")).reshape(n, -1).T
    w = index_to_world(image, corners)
    box = np.stack([w.min(axis=0), w.max(axis=0)])
    return zyx_to_xyz(box) if xyz else box


# ---------------------------------------------------------------------------------------------
# SimpleITK
# ---------------------------------------------------------------------------------------------


def to_sitk(image: xr.DataArray, channel: Any = None):
    """Convert to a ``SimpleITK.Image`` (computes dask data).

    Geometry is exact: spacing, origin and direction are taken from the image, reordered to
    ITK's ``(x, y, z)``. A ``c`` dim becomes a vector image unless ``channel`` picks one
    (by coordinate value or, failing that, by position).

    Examples
    --------
    >>> import numpy as np
    >>> img = spatial_image(np.zeros((2, 3, 4), np.float32), spacing=(2.0, 1.0, 0.5))
    >>> to_sitk(img).GetSpacing()
    (0.5, 1.0, 2.0)
    """
    import SimpleITK as sitk

    validate(image)
    if "t" in image.dims:
        if image.sizes["t"] != 1:
            raise ImageError("to_sitk: select one time point first, e.g. image.isel(t=0)")
        image = image.isel(t=0)
    if "c" in image.dims and channel is not None:
        if "c" in image.coords and channel in list(image.coords["c"].values):
            image = image.sel(c=channel)
        else:
            image = image.isel(c=int(channel))
    arr = np.asarray(image.data.compute() if hasattr(image.data, "compute") else image.data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    is_vector = "c" in image.dims
    if is_vector:
        arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
            is_vector = False
    sitk_img = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=is_vector)
    sitk_img.SetSpacing(tuple(float(v) for v in spacing(image)[::-1]))
    sitk_img.SetOrigin(tuple(float(v) for v in origin(image)[::-1]))
    d = direction(image)
    d_xyz = d[::-1, ::-1]
    sitk_img.SetDirection(tuple(float(v) for v in d_xyz.reshape(-1)))
    return sitk_img


def from_sitk(sitk_image: Any, channels: Sequence[Any] | None = None, **attrs: Any) -> xr.DataArray:
    """Convert a ``SimpleITK.Image`` to the image object (inverse of :func:`to_sitk`).

    Vector images get a ``c`` dim (named by ``channels`` when given).

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> s = sitk.Image(4, 3, sitk.sitkFloat32); s.SetSpacing((0.5, 2.0))
    >>> img = from_sitk(s, modality="MR")
    >>> img.dims, spacing(img)
    (('y', 'x'), (2.0, 0.5))
    """
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk_image)
    n = sitk_image.GetDimension()
    if n not in (2, 3):
        raise ImageError(f"from_sitk supports 2-D and 3-D images, got {n}-D")
    sp = np.asarray(sitk_image.GetSpacing(), dtype=float)[::-1]
    org = np.asarray(sitk_image.GetOrigin(), dtype=float)[::-1]
    d_xyz = np.asarray(sitk_image.GetDirection(), dtype=float).reshape(n, n)
    d = d_xyz[::-1, ::-1]
    sd = ("z", "y", "x")[3 - n :]
    if sitk_image.GetNumberOfComponentsPerPixel() > 1:
        arr = np.moveaxis(arr, -1, 0)
        dims = ("c",) + sd
    else:
        dims = sd
    return spatial_image(arr, spacing=sp, origin=org, direction=d, dims=dims, channels=channels, **attrs)


def binary_mask(image: xr.DataArray, label: int | None = None, source: Any = "", what: str = "mask") -> xr.DataArray:
    """A region as a 0/1 ``uint8`` image: ``image == label`` when a label is given, else ``image > 0``.

    A singleton ``c`` or ``t`` is dropped; several channels or frames are refused (a region is one
    volume: select one with ``isel(c=...)`` or ``isel(t=...)`` first). The result has
    ``attrs["aspect"] = "mask"`` and no units.

    Raises
    ------
    ImageError
        Several channels or frames, or no voxel selected; the message names ``source`` and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> labels = spatial_image(np.array([[0, 1], [2, 2]]), spacing=1.0)
    >>> binary_mask(labels, label=2).values.tolist()
    [[0, 0], [1, 1]]
    """
    where = f"{source}: " if source else ""
    m = image
    for dim, word in (("c", "channels"), ("t", "frames")):
        if dim in m.dims:
            if m.sizes[dim] != 1:
                raise ImageError(f"{where}{what} has {m.sizes[dim]} {word}; give a one-{word[:-1]} label image "
                                 f"(select one with isel({dim}=...))")
            m = m.isel({dim: 0}, drop=True)
    data = np.asarray(m.data.compute() if hasattr(m.data, "compute") else m.data)
    sel = data == label if label is not None else data > 0
    if not sel.any():
        which = f"label {label}" if label is not None else "non-zero voxels"
        raise ImageError(f"{where}{what} has no {which}; check the file or the 'label' field")
    return like(m, sel.astype(np.uint8), aspect="mask", units="")


def as_image(data: Any, spacing: Sequence[float] | float | None = None, *, like: xr.DataArray | None = None,
             **attrs: Any) -> xr.DataArray:
    """``data`` as an image: an image is returned as it is; a plain array needs ``spacing=`` (mm), as in scikit-image,
    or ``like=`` an image whose grid it is on (a mask beside its image).

    The analysis functions call this first, so ``uptake_metrics(array, mask, spacing=(2, 1, 1))`` works.

    Raises
    ------
    ImageError
        A plain array without ``spacing``, or an image with a ``spacing=`` that contradicts its own.

    Examples
    --------
    >>> import numpy as np
    >>> img = as_image(np.zeros((2, 3, 4)), spacing=(2.0, 1.0, 0.5), units="SUVbw")
    >>> spacing(img), img.attrs["units"], as_image(img) is img
    ((2.0, 1.0, 0.5), 'SUVbw', True)
    """
    if is_spatial_image(data):
        if spacing is not None:
            want = np.broadcast_to(np.asarray(spacing, dtype=float), (len(spatial_dims(data)),))
            if not np.allclose(want, _spacing_of(data), rtol=1e-6):
                raise ImageError(f"spacing={tuple(want.tolist())} contradicts the image's own spacing "
                                 f"{_spacing_of(data)}; drop spacing= for an image")
        return data
    if isinstance(data, xr.DataArray):
        data = data.data
    if like is not None and spacing is None:
        return _like_of(like, data, **attrs)
    if spacing is None:
        raise ImageError("a plain array needs spacing= (voxel size in mm, z y x order, e.g. spacing=(2.0, 1.0, 1.0)) "
                         "or an image from multiscale.image.spatial_image / multiscale.io.load")
    return spatial_image(data, spacing=spacing, **attrs)


_spacing_of = spacing  # the functions, shadowed by as_image's arguments
_like_of = like
