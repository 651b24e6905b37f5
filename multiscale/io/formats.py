"""The registry of file formats: :data:`FORMATS`, in the order ``sniff`` tries them (first match wins).

Adding a format is one module ending in ``FORMAT = Format(...)`` (:class:`multiscale.io.format.Format`)
plus one line below. The order matters where contents overlap:

* OME-Zarr before any other folder (an OME-Zarr is a folder; so is a DICOM series);
* RTSTRUCT and SEG before generic DICOM (all three are DICOM files; the Modality decides), and a
  folder holding only RTSTRUCT files before a DICOM folder;
* the DICOM folder after every other folder format (it takes any remaining folder);
* the whole-slide format before TIFF (its sniff takes only SVS/NDPI/SCN and non-OME pyramids);
* imzML (which also matches by suffix) and MetaImage (a text header) after the formats with magic bytes.
"""

from __future__ import annotations

from . import (
    dicom,
    dicom_folder,
    geojson,
    imc,
    imzml,
    jpeg,
    metaimage,
    nifti,
    nrrd,
    omezarr,
    png,
    rtstruct,
    seg,
    slide,
    tiff,
)
from .format import Format

__all__ = ["FORMATS", "format_named", "formats_table"]

#: every readable format, in the order :func:`multiscale.io.dispatch.sniff` tries them
FORMATS: list[Format] = [
    omezarr.FORMAT,
    nifti.FORMAT,
    rtstruct.FORMAT,
    seg.FORMAT,
    dicom.FORMAT,
    dicom_folder.FORMAT,
    nrrd.FORMAT,
    slide.FORMAT,
    tiff.FORMAT,
    png.FORMAT,
    jpeg.FORMAT,
    imzml.FORMAT,
    imc.FORMAT,
    geojson.FORMAT,
    metaimage.FORMAT,
]


def format_named(name: str) -> Format:
    """The entry of :data:`FORMATS` called ``name``.

    Raises
    ------
    KeyError
        No such format; the message lists the names.

    Examples
    --------
    >>> format_named("imzml").channel_option
    'mz'
    """
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(f"no format named {name!r}; known: {[f.name for f in FORMATS]}")


def formats_table() -> str:
    """The list of formats (a reStructuredText definition list), generated from :data:`FORMATS` so it cannot drift.

    Each entry: name and suffixes, then the description, the options ``load`` passes to the reader
    (besides ``channels``/``reference``/``resample``) and the suffixes ``save`` writes.

    Examples
    --------
    >>> print("\\n".join(formats_table().splitlines()[3:6]))
    nifti (.nii, .nii.gz)
        NIfTI-1/2 volume (nibabel; RAS converted to LPS).
        options: agent, aspect, lazy, modality, scale, spacing, units; writes .nii, .nii.gz
    """
    lines = []
    for fmt in FORMATS:
        lines.append(f"{fmt.name} ({', '.join(fmt.suffixes) or 'folder'})")
        lines.append(f"    {fmt.description}.")
        opts = sorted(fmt.options - {"reference", "resample"})
        tail = f"; writes {', '.join(fmt.write_suffixes)}" if fmt.write is not None else ""
        via = f" (channels= is {fmt.channel_option}=)" if fmt.channel_option else ""
        lines.append(f"    options: {', '.join(opts) or '(none)'}{via}{tail}")
    return "\n".join(lines)
