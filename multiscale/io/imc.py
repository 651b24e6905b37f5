"""Imaging mass cytometry: Fluidigm/Standard BioTools ``.mcd`` files and their ``.txt`` exports (readimc).

Every acquisition is a ``(c, y, x)`` image of ion counts, one channel per metal isotope: the ``c``
coords are the marker labels the panel gave (``DNA1``, ``CD68``, ``PanCK``), or the isotope
(``Ir191``) where a label is empty or repeated; ``attrs["channel_metals"]`` keeps the isotopes in the
same order. The pixel size is the acquisition's ablation step (``AblationDistanceBetweenShotsX/Y``
in the ``.mcd``; 1 µm, IMC's usual step, for the ``.txt`` export, which does not record it: pass
``pixel_size_um=`` when yours differs), in mm coords like every image. An ``.mcd`` may hold several
acquisitions: ``acquisition=`` picks one by its ID (default the first); :func:`read_acquisitions`
reads them all.

Examples
--------
>>> FORMAT.sniff(b"Start_push\\tEnd_push\\tPushes_duration\\tX\\tY\\tZ\\t", Path("a.txt"))
True
>>> FORMAT.sniff(b"\\x00\\x01", Path("slide.MCD")), FORMAT.sniff(b"hello", Path("notes.txt"))
(True, False)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import spatial_image

from ._common import check_voxels, fail, provenance
from .format import Format

__all__ = ["FORMAT", "read_imc", "read_acquisitions", "acquisitions_of"]

_TXT_HEAD = b"Start_push\tEnd_push\tPushes_duration\tX\tY\tZ"


def _sniff(head: bytes, path: Path) -> bool:
    if head.startswith(_TXT_HEAD):
        return True
    return Path(path).suffix.lower() == ".mcd" and not Path(path).is_dir()


def _channel_names(labels: list[str], metals: list[str]) -> list[str]:
    names = []
    for label, metal in zip(labels, metals):
        label = (label or "").strip()
        names.append(label if label and labels.count(label) == 1 and label not in metals else metal)
    return names


def _image(path: Path, data: np.ndarray, labels: list[str], metals: list[str], pixel_um: tuple[float, float],
           reader: str, extra: dict[str, Any], attrs: dict[str, Any]) -> xr.DataArray:
    names = _channel_names(list(labels), list(metals))
    img = spatial_image(np.asarray(data, dtype=np.float32), spacing=(pixel_um[0] / 1000.0, pixel_um[1] / 1000.0),
                        dims=("c", "y", "x"), channels=names,
                        modality=attrs.pop("modality", None) or "IMC", units=attrs.pop("units", None) or "counts",
                        provenance=provenance(path, reader, **extra), **attrs)
    img.attrs["channel_metals"] = list(metals)
    img.attrs["channel_labels"] = list(labels)
    return img


def _read_txt(path: Path, pixel_size_um: float | None, attrs: dict[str, Any]) -> xr.DataArray:
    from readimc import TXTFile

    px = 1.0 if pixel_size_um is None else float(pixel_size_um)
    if px <= 0:
        raise fail(path, "pixel_size_um=", f"{pixel_size_um!r} is not a positive size", "pass the ablation step in µm")
    try:
        with TXTFile(path) as f:
            metals = [f"{m}{n}" for m, n in zip(f.channel_metals, f.channel_masses)]
            labels = list(f.channel_labels)
            data = f.read_acquisition()
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise fail(path, "IMC text export", f"cannot be read ({type(exc).__name__}: {exc})",
                   "the file is truncated or not an IMC .txt export; export it again from the .mcd") from exc
    if not np.isfinite(data).all():
        raise fail(path, "IMC text export", "holds incomplete rows (missing values)",
                   "the file is truncated; export it again from the .mcd")
    check_voxels(path, "X/Y", data.shape)
    return _image(path, data, labels, metals, (px, px), "readimc.TXTFile",
                  {"pixel_size_um": px, "pixel_size_source": "given" if pixel_size_um else
                   "assumed 1 µm (the .txt export does not record the ablation step)"}, attrs)


def _open_mcd(path: Path):
    from readimc import MCDFile

    f = MCDFile(path)
    try:
        f.open()
    except Exception as exc:  # noqa: BLE001 - readimc raises IOError, XML ParseError, struct errors...
        f.close()
        raise fail(path, "MCD metadata", f"cannot be read ({type(exc).__name__}: {exc})",
                   "the file is truncated or corrupt (the XML schema at its end is missing or broken); copy it "
                   "again, or read the acquisitions' .txt exports instead") from exc
    return f


def _schema_offset(path: Path) -> int:
    """Byte offset of the (last) XML schema, which follows the acquisitions' data blocks."""
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return int(mm.rfind("<MCDSchema".encode("utf-16-le")))


def acquisitions_of(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The acquisitions of an ``.mcd`` file: ``id``, ``description``, ``width_px``, ``height_px``, ``channels``.

    Examples
    --------
    >>> acquisitions_of("slide.mcd")[0]["id"]  # doctest: +SKIP
    1
    """
    path = Path(path)
    f = _open_mcd(path)
    try:
        out = []
        for slide in f.slides:
            for acq in slide.acquisitions:
                out.append({"id": int(acq.id), "slide": int(slide.id), "description": acq.description or "",
                            "width_px": acq.width_px, "height_px": acq.height_px,
                            "channels": _channel_names(list(acq.channel_labels), list(acq.channel_names))})
        return out
    finally:
        f.close()


def _read_mcd(path: Path, acquisition: int | None, pixel_size_um: float | None,
              attrs: dict[str, Any]) -> dict[int, xr.DataArray]:
    f = _open_mcd(path)
    try:
        acqs = [a for s in f.slides for a in s.acquisitions]
        if not acqs:
            raise fail(path, "acquisitions", "the file holds no acquisition", "check that the run acquired data")
        ids = [int(a.id) for a in acqs]
        if acquisition is not None:
            if int(acquisition) not in ids:
                raise fail(path, "acquisition=", f"no acquisition {acquisition!r}", f"acquisitions are {ids}")
            acqs = [a for a in acqs if int(a.id) == int(acquisition)]
        out = {}
        xml_at = _schema_offset(path)
        for acq in acqs:
            h, w = acq.height_px or 0, acq.width_px or 0
            check_voxels(path, "MaxX/MaxY", (acq.num_channels, h, w))
            end = int(acq.metadata.get("DataEndOffset", 0) or 0)
            if end > xml_at:
                raise fail(path, f"acquisition {acq.id} DataEndOffset",
                           f"{end} runs into the XML schema at byte {xml_at}: the data block is truncated",
                           "the file is truncated or corrupt; copy it again")
            try:
                data = f.read_acquisition(acq)
            except Exception as exc:  # noqa: BLE001 - readimc raises IOError/ValueError on corrupt blocks
                raise fail(path, f"acquisition {acq.id} data", f"cannot be read ({type(exc).__name__}: {exc})",
                           "the file is truncated or corrupt; copy it again") from exc
            if pixel_size_um is not None:
                px = (float(pixel_size_um), float(pixel_size_um))
                source = "given"
            else:
                py, pxx = acq.pixel_size_y_um, acq.pixel_size_x_um
                px = (float(py or 1.0), float(pxx or 1.0))
                source = "AblationDistanceBetweenShotsX/Y" if py and pxx else "assumed 1 µm (not in the file)"
            meta = dict(attrs)
            meta.setdefault("agent", acq.description or "")
            img = _image(path, data, list(acq.channel_labels), list(acq.channel_names), px, "readimc.MCDFile",
                         {"acquisition": int(acq.id), "pixel_size_um": list(px), "pixel_size_source": source}, meta)
            img.attrs["acquisition"] = int(acq.id)
            if acq.roi_points_um is not None:
                img.attrs["roi_points_um"] = [list(p) for p in acq.roi_points_um]
            out[int(acq.id)] = img
        return out
    finally:
        f.close()


def read_acquisitions(path: str | os.PathLike, *, pixel_size_um: float | None = None,
                      **attrs: Any) -> dict[int, xr.DataArray]:
    """Every acquisition of an ``.mcd`` (or the one of a ``.txt`` export, as ID 0), by acquisition ID."""
    path = Path(path)
    if path.suffix.lower() == ".mcd":
        return _read_mcd(path, None, pixel_size_um, attrs)
    return {0: _read_txt(path, pixel_size_um, attrs)}


def read_imc(path: str | os.PathLike, *, acquisition: int | None = None, pixel_size_um: float | None = None,
             **attrs: Any) -> xr.DataArray:
    """One IMC acquisition as a ``(c, y, x)`` image of ion counts with marker names as channels.

    Parameters
    ----------
    path : path-like
        An ``.mcd`` file or an acquisition's ``.txt`` export.
    acquisition : int, optional
        The ``.mcd`` acquisition ID (default: the first); an unknown ID lists the file's IDs.
    pixel_size_um : float, optional
        Overrides the ablation step (µm).
    **attrs
        ``modality`` (default ``IMC``), ``aspect``, ``agent``, ``scale``, ``units`` (default ``counts``).

    Raises
    ------
    LoadError
        A truncated or corrupt file, naming it and the part that failed.
    """
    path = Path(path)
    if path.is_dir():
        raise fail(path, "path", "is a folder, not an IMC file", "point at the .mcd or .txt file")
    if path.suffix.lower() == ".mcd":
        return next(iter(_read_mcd(path, acquisition, pixel_size_um, attrs).values()))
    if acquisition not in (None, 0):
        raise fail(path, "acquisition=", "a .txt export holds one acquisition", "leave acquisition= out")
    return _read_txt(path, pixel_size_um, attrs)


FORMAT = Format(
    name="imc",
    sniff=_sniff,
    read=read_imc,
    options=frozenset({"acquisition", "pixel_size_um", "modality", "aspect", "agent", "scale", "units"}),
    suffixes=(".mcd", ".txt"),
    description="Imaging mass cytometry .mcd file or .txt export (readimc); one acquisition as (c, y, x) ion counts",
)
