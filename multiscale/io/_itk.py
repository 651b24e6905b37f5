"""NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) through SimpleITK: the code both formats share.

The formats themselves are :mod:`multiscale.io.nrrd` and :mod:`multiscale.io.metaimage`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale._util import atomic_write
from multiscale.image import spatial_image, to_sitk

from ._common import LoadError, attrs_from_json, attrs_to_json, fail, provenance, restore_attrs, tempdir_for
from ._geometry import direction_xyz_to_zyx

__all__ = ["read_itk", "write_itk", "ATTRS_KEY", "data_file_companion"]

#: key-value field holding our attrs as JSON (the same key as the NIfTI header extension)
ATTRS_KEY = "multiscale_attrs"


def data_file_companion(path: Path, keys: tuple[str, ...], local: tuple[str, ...]) -> list[Path]:
    """The data file a detached header names (``ElementDataFile`` of .mhd, ``data file`` of .nhdr), if it exists.

    ``keys`` are the header field names (lower case), ``local`` the values meaning "in this file".

    Examples
    --------
    >>> data_file_companion(Path("missing.mhd"), ("elementdatafile",), ("local",))
    []
    """
    try:
        with open(path, "rb") as fh:
            text = fh.read(4096).decode("latin-1")
    except OSError:
        return []
    for line in text.splitlines():
        if ":" in line and "=" not in line.split(":", 1)[0]:
            key, _, value = line.partition(":")
            value = value.lstrip("=")
        elif "=" in line:
            key, _, value = line.partition("=")
        else:
            continue
        if key.strip().lower() in keys:
            value = value.strip()
            if not value or value.lower() in local or value.upper().startswith("LIST") or "%" in value:
                return []
            cand = (path.parent / value.split()[0])
            return [cand] if cand.is_file() else []
    return []


def _sitk_read(path: Path):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln for ln in first if "rror" in ln or "xception" in ln), first[-1] if first else "")
        raise fail(path, "header/voxel data", f"SimpleITK cannot read it ({detail.strip()[:200]})",
                   "check that the file (and its .raw/.zraw data file) is complete") from exc


def read_itk(path: str | os.PathLike, *, modality: str = "", spacing: Any = None, **attrs: Any) -> xr.DataArray:
    """Read NRRD, MHA/MHD (or any SimpleITK-readable volume) into the image object (LPS, mm).

    Vector pixels become a ``c`` dim; 4-D images become ``(t, z, y, x)``.

    Examples
    --------
    >>> img = read_itk("mask.nrrd")  # doctest: +SKIP
    """
    import SimpleITK as sitk

    path = Path(path)
    s = _sitk_read(path)
    stored = {}
    if s.HasMetaDataKey(ATTRS_KEY):
        stored = attrs_from_json(s.GetMetaData(ATTRS_KEY))
    n = s.GetDimension()
    sp_xyz = np.asarray(s.GetSpacing(), dtype=float)
    org_xyz = np.asarray(s.GetOrigin(), dtype=float)
    d_xyz = np.asarray(s.GetDirection(), dtype=float).reshape(n, n)
    arr = sitk.GetArrayViewFromImage(s).copy()
    vector = s.GetNumberOfComponentsPerPixel() > 1
    if vector:
        arr = np.moveaxis(arr, -1, 0)
    if n == 4:
        if vector:
            raise fail(path, "dimension", "4-D vector images are not supported", "split the components first")
        sp_xyz, org_xyz, d_xyz = sp_xyz[:3], org_xyz[:3], d_xyz[:3, :3]
        dims: tuple[str, ...] = ("t", "z", "y", "x")
        n = 3
    elif n in (2, 3):
        dims = ("z", "y", "x")[3 - n:]
        if vector:
            dims = ("c",) + dims
    else:
        raise fail(path, "dimension", f"{n}-D images are not supported", "use 2-D to 4-D images")
    if np.any(sp_xyz <= 0):
        raise fail(path, "spacing", f"zero or negative voxel size {sp_xyz.tolist()}",
                   "fix the header or pass spacing=(dz, dy, dx)")
    if spacing is not None:
        sp_xyz = np.asarray(spacing, dtype=float).reshape(-1)[::-1]
    err = float(np.abs(d_xyz.T @ d_xyz - np.eye(n)).max())
    if err > 1e-4:
        raise fail(path, "direction (space directions / TransformMatrix)",
                   f"not orthonormal (|D^T D - I| = {err:.3g})", "resample onto an orthogonal grid first")
    out_attrs = restore_attrs(stored)
    out_attrs.pop("provenance", None)
    channels = out_attrs.pop("channels", None) if vector else None
    if channels is not None and len(channels) != arr.shape[0]:
        channels = None
    if modality:
        out_attrs["modality"] = modality
    out_attrs.update(attrs)
    out_attrs.setdefault("spacing_known", True)
    out_attrs["provenance"] = provenance(path, "SimpleITK", spacing=spacing)
    return spatial_image(arr, spacing=sp_xyz[::-1], origin=org_xyz[::-1], direction=direction_xyz_to_zyx(d_xyz),
                         dims=dims, channels=channels, **out_attrs)


def write_itk(image: xr.DataArray, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write NRRD or MHA/MHD (by suffix) through SimpleITK, atomically; attrs in a key-value field.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> write_itk(spatial_image(np.zeros((2, 3, 4)), spacing=1.0), "x.nrrd")  # doctest: +SKIP
    """
    import SimpleITK as sitk

    if "t" in image.dims and image.sizes["t"] != 1:
        raise LoadError(f"{path}: {Path(path).suffix}: time series cannot be written by this writer; "
                        "select one time point (image.isel(t=0)) or save as NIfTI/OME-Zarr")
    s = to_sitk(image)
    keep = dict(image.attrs)
    if "c" in image.dims and "c" in image.coords:
        keep["channels"] = list(image.coords["c"].values)
    s.SetMetaData(ATTRS_KEY, attrs_to_json(keep))
    target = Path(path)
    if target.suffix.lower() in (".mhd", ".nhdr"):
        # header + data pair: write both under their final names in a scratch folder next to the
        # target, then move the data file first and the header last (each move atomic), so a
        # reader never finds a header without its data
        scratch = tempdir_for(target)
        try:
            sitk.WriteImage(s, str(scratch / target.name), compress)
            written = sorted(scratch.iterdir(), key=lambda f: f.name == target.name)
            for f in written:
                os.replace(f, target.parent / f.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target
    return atomic_write(target, lambda tmp: sitk.WriteImage(s, str(tmp), compress), suffix=target.suffix)
