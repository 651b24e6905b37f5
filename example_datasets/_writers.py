"""File writers for the example study: NIfTI (SimpleITK), OME-TIFF (tifffile), imzML (pyimzML).

Every writer produces byte-identical files for identical input (no time stamps, no random UUIDs),
so that a seed always gives the same checksums.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import SimpleITK as sitk
import tifffile


def write_volume(path: Path, array_zyx: np.ndarray, spacing_zyx: Sequence[float], origin_xyz: Sequence[float]) -> None:
    """Write a 3-D numpy (z, y, x) array as NIfTI with identity direction (LPS world, ITK convention)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    img.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing_zyx))))
    img.SetOrigin(tuple(float(o) for o in origin_xyz))
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(img, str(path), useCompression=True)


def deterministic_uuid(*parts: object) -> uuid.UUID:
    """A UUID derived from ``parts`` (version-4 layout, reproducible)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def write_ome_tiff(
    path: Path,
    data_cyx: np.ndarray,
    pixel_size_um: float,
    channel_names: Sequence[str],
    file_uuid: uuid.UUID,
    position_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    emission_nm: Sequence[float] | None = None,
) -> None:
    """Write a (c, y, x) array as a single-file OME-TIFF, one page per channel, zlib-compressed.

    The OME-XML is written here (not by tifffile) so that it is deterministic; it states
    PhysicalSizeX/Y in µm, the channel names and the plane position (mm) of pixel (0, 0).
    """
    c, ny, nx = data_cyx.shape
    dtype = {np.dtype("uint8"): "uint8", np.dtype("uint16"): "uint16"}[data_cyx.dtype]
    urn = f"urn:uuid:{file_uuid}"
    chans = []
    for i, name in enumerate(channel_names):
        em = ""
        if emission_nm is not None:
            em = f' EmissionWavelength="{float(emission_nm[i])}" EmissionWavelengthUnit="nm"'
        chans.append(f'<Channel ID="Channel:0:{i}" Name="{escape(name)}" SamplesPerPixel="1"{em}/>')
    tiffdata = [
        f'<TiffData IFD="{i}" FirstC="{i}" FirstZ="0" FirstT="0" PlaneCount="1">'
        f'<UUID FileName="{escape(path.name)}">{urn}</UUID></TiffData>'
        for i in range(c)
    ]
    px, py, pz = position_mm
    planes = [
        f'<Plane TheC="{i}" TheZ="0" TheT="0" PositionX="{px}" PositionXUnit="mm" '
        f'PositionY="{py}" PositionYUnit="mm" PositionZ="{pz}" PositionZUnit="mm"/>'
        for i in range(c)
    ]
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 '
        'http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd" '
        f'UUID="{urn}" Creator="multiscale example_datasets">'
        f'<Image ID="Image:0" Name="{escape(path.name.split(".")[0])}">'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="{dtype}" '
        f'SizeX="{nx}" SizeY="{ny}" SizeC="{c}" SizeZ="1" SizeT="1" '
        f'PhysicalSizeX="{pixel_size_um!r}" PhysicalSizeXUnit="&#181;m" '
        f'PhysicalSizeY="{pixel_size_um!r}" PhysicalSizeYUnit="&#181;m">'
        + "".join(chans) + "".join(tiffdata) + "".join(planes)
        + "</Pixels></Image></OME>"
    )
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        for i in range(c):
            tw.write(
                np.ascontiguousarray(data_cyx[i]),
                photometric="minisblack",
                compression="zlib",
                predictor=True,
                description=xml if i == 0 else None,
                metadata=None,
                software="multiscale example_datasets",
            )


_PIXEL_SIZE_PARAMS = (
    '      <cvParam cvRef="IMS" accession="IMS:1000046" name="pixel size (x)" value="{px}" '
    'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>\n'
    '      <cvParam cvRef="IMS" accession="IMS:1000047" name="pixel size y" value="{py}" '
    'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>\n'
    '      <cvParam cvRef="IMS" accession="IMS:1000044" name="max dimension x" value="{dx}" '
    'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>\n'
    '      <cvParam cvRef="IMS" accession="IMS:1000045" name="max dimension y" value="{dy}" '
    'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>\n'
)

# optional per-spectrum summaries that pyimzML writes; dropped to keep the XML small
_OPTIONAL_SPECTRUM_PARAMS = re.compile(
    r'[ \t]*<cvParam cvRef="MS" accession="MS:10005(28|27|04|05)"[^\n]*/>\n'
    r'|[ \t]*<cvParam cvRef="MS" accession="MS:1000285"[^\n]*/>\n'
)


def write_imzml(
    path: Path,
    spectra: Iterable[tuple[np.ndarray, np.ndarray, tuple[int, int]]],
    pixel_size_um: tuple[float, float],
    shape_yx: tuple[int, int],
    file_uuid: uuid.UUID,
) -> None:
    """Write processed-mode centroid imzML + .ibd with pyimzML's ``ImzMLWriter``, then make it
    deterministic and complete:

    * the random UUID pyimzML draws is replaced by ``file_uuid`` in both files, and the .ibd SHA-1
      recomputed;
    * the run id (pyimzML uses the output path) becomes the file stem;
    * ``pixel size x/y`` (IMS:1000046/1000047, µm) and ``max dimension x/y`` are added to the scan
      settings (pyimzML's writer does not write them);
    * the optional per-spectrum summaries (lowest/highest/base peak m/z, TIC) are dropped, which
      halves the XML (about 1.3 kB per pixel remain).

    ``spectra`` yields ``(mz float64, intensity float32, (x, y))`` with 1-based x (column), y (row).
    """
    try:
        from pyimzml.ImzMLWriter import ImzMLWriter
    except ImportError as exc:
        raise ImportError("writing the example study's imzML needs pyimzML, in the 'example' extra: "
                          "pip install 'multiscale[example]' (or '.[example]' in a source checkout)") from exc

    path = Path(path)
    ibd = path.with_suffix(".ibd")
    with ImzMLWriter(str(path), mode="processed", spec_type="centroid", mz_dtype=np.float64,
                     intensity_dtype=np.float32, polarity="positive") as w:
        old_uuid = w.uuid
        old_run = w.run_id
        for mzs, ints, xy in spectra:
            w.addSpectrum(mzs, ints, xy)
    raw = bytearray(ibd.read_bytes())
    raw[:16] = file_uuid.bytes
    ibd.write_bytes(bytes(raw))
    sha1 = hashlib.sha1(bytes(raw)).hexdigest().upper()
    xml = path.read_text(encoding="ISO-8859-1")
    xml = xml.replace(("{%s}" % old_uuid).upper(), ("{%s}" % file_uuid).upper())
    xml = re.sub(r'(name="ibd SHA-1" value=")[0-9A-F]+(")', rf"\g<1>{sha1}\g<2>", xml)
    xml = xml.replace(f'id="{old_run}"', f'id="{path.stem}"')
    px, py = pixel_size_um
    ny, nx = shape_yx
    extra = _PIXEL_SIZE_PARAMS.format(px=f"{px:g}", py=f"{py:g}", dx=f"{px * nx:g}", dy=f"{py * ny:g}")
    anchor = "    </scanSettings>"
    if anchor not in xml:
        raise RuntimeError(f"{path}: pyimzML's output has no </scanSettings>; cannot add the pixel size")
    xml = xml.replace(anchor, extra + anchor, 1)
    xml = _OPTIONAL_SPECTRUM_PARAMS.sub("", xml)
    head, sep, body = xml.partition("<spectrumList")
    first, nl, rest = body.partition("\n")  # the rest of the <spectrumList ...> line stays as is
    xml = head + sep + first + nl + "\n".join(line.lstrip() for line in rest.split("\n"))  # no indentation
    # pyimzML refers to an instrument configuration id it never declares; point at the one it does
    xml = xml.replace('instrumentConfigurationRef="instrumentConfiguration0"', 'instrumentConfigurationRef="IC1"')
    path.write_text(xml, encoding="ISO-8859-1")
