"""Hand-made imzML files for the imzML tests (and checks that an independent reader, pyimzML, agrees with them).

``write_imzml`` writes the XML by hand so that tests can produce the variants real files show:
0-based or offset coordinates, a declared grid smaller than the data, integer arrays, zlib,
3-D, legacy data-type terms, foreign compression terms, placeholder UUIDs, huge (sparse) offsets.
"""

from __future__ import annotations

import uuid as uuidlib
import zlib
from pathlib import Path

import numpy as np
import pytest

DTYPE_TERMS = {
    "<f2": ("MS:1000520", "16-bit float"),
    "<f4": ("MS:1000521", "32-bit float"),
    "<f8": ("MS:1000523", "64-bit float"),
    "<i4": ("MS:1000519", "32-bit integer"),
    "<i8": ("MS:1000522", "64-bit integer"),
    "legacy<i4": ("IMS:1000141", "32-bit integer"),
    "legacy<i8": ("IMS:1000142", "64-bit integer"),
}


def _cv(acc: str, name: str, value: str = "", unit: str | None = None) -> str:
    u = f' unitCvRef="UO" unitAccession="{unit}" unitName="micrometer"' if unit else ""
    ref = acc.split(":")[0]
    return f'<cvParam cvRef="{ref}" accession="{acc}" name="{name}" value="{value}"{u}/>'


def write_imzml(
    path: Path,
    spectra: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]],
    *,
    mode: str = "processed",
    mz_dtype: str = "<f8",
    int_dtype: str = "<f4",
    compression: str | tuple[str, str] | None = None,
    pixel_size: tuple[float, float] | None = (10.0, 10.0),
    declared: tuple[int, int] | None = None,
    ibd_uuid: bytes | None = None,
    xml_uuid: str | None = None,
    spectrum_type: str = "centroid",
    polarity: str = "positive",
    offsets_at: list[int] | None = None,
    signed32_offsets: bool = False,
) -> Path:
    """Write ``path`` (.imzML) and its .ibd; ``spectra`` = [((x, y[, z]), mz, intensity), ...].

    ``offsets_at`` places spectrum i's arrays at that byte offset (the .ibd becomes sparse);
    ``signed32_offsets`` writes offsets as signed 32-bit integers, as some old exporters did.
    """
    path = Path(path)
    ibd = path.with_suffix(".ibd")
    u = uuidlib.uuid4()
    ibd_uuid = u.bytes if ibd_uuid is None else ibd_uuid
    xml_uuid = ("{%s}" % u).upper() if xml_uuid is None else xml_uuid
    mz_np = np.dtype(mz_dtype.replace("legacy", ""))
    int_np = np.dtype(int_dtype.replace("legacy", ""))

    def encode(arr: np.ndarray, dt: np.dtype) -> bytes:
        raw = np.asarray(arr, dtype=dt).tobytes()
        return zlib.compress(raw) if compression == "zlib" else raw

    records = []
    with open(ibd, "wb") as fh:
        fh.write(ibd_uuid)
        shared = None
        for i, (coords, mz, it) in enumerate(spectra):
            if offsets_at is not None:
                fh.seek(offsets_at[i])
            if mode == "continuous" and shared is not None:
                mz_rec = shared
            else:
                b = encode(mz, mz_np)
                mz_rec = (fh.tell(), len(mz), len(b))
                fh.write(b)
                shared = mz_rec
            b = encode(it, int_np)
            int_rec = (fh.tell(), len(it), len(b))
            fh.write(b)
            records.append((coords, mz_rec, int_rec))

    def off(v: int) -> int:
        if signed32_offsets:
            return int(np.array(v, dtype=np.int64).astype(np.uint32).astype(np.int32))
        return v

    if compression == "zlib":
        comp = _cv("MS:1000574", "zlib compression")
    elif compression is None:
        comp = _cv("MS:1000576", "no compression")
    else:
        comp = _cv(compression[0], compression[1])
    mzt, intt = DTYPE_TERMS[mz_dtype], DTYPE_TERMS[int_dtype]
    xs = [r[0][0] for r in records]
    ys = [r[0][1] for r in records]
    nx, ny = declared if declared is not None else (max(xs), max(ys))
    stype = _cv("MS:1000127", "centroid spectrum") if spectrum_type == "centroid" else _cv("MS:1000128", "profile spectrum")
    pol = _cv("MS:1000130", "positive scan") if polarity == "positive" else _cv("MS:1000129", "negative scan")
    storage = _cv("IMS:1000030", "continuous") if mode == "continuous" else _cv("IMS:1000031", "processed")
    px = ""
    if pixel_size is not None:
        px = _cv("IMS:1000046", "pixel size (x)", str(pixel_size[0]), "UO:0000017") + _cv(
            "IMS:1000047", "pixel size y", str(pixel_size[1]), "UO:0000017"
        )
    lines = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        '<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1">',
        "<fileDescription><fileContent>",
        _cv("MS:1000579", "MS1 spectrum"),
        stype,
        storage,
        _cv("IMS:1000080", "universally unique identifier", xml_uuid),
        "</fileContent></fileDescription>",
        '<referenceableParamGroupList count="3">',
        f'<referenceableParamGroup id="mzArray">{comp}{_cv("MS:1000514", "m/z array")}{_cv(*mzt)}'
        f'{_cv("IMS:1000101", "external data", "true")}</referenceableParamGroup>',
        f'<referenceableParamGroup id="intensityArray">{_cv(*intt)}{_cv("MS:1000515", "intensity array")}{comp}'
        "</referenceableParamGroup>",
        f'<referenceableParamGroup id="spectrum1">{_cv("MS:1000579", "MS1 spectrum")}{stype}{pol}</referenceableParamGroup>',
        "</referenceableParamGroupList>",
        '<scanSettingsList count="1"><scanSettings id="s1">',
        _cv("IMS:1000042", "max count of pixels x", str(nx)),
        _cv("IMS:1000043", "max count of pixels y", str(ny)),
        px,
        "</scanSettings></scanSettingsList>",
        '<instrumentConfigurationList count="1"><instrumentConfiguration id="IC1">',
        _cv("MS:1000031", "instrument model"),
        '<componentList count="1"><analyzer order="1">' + _cv("MS:1000484", "orbitrap") + "</analyzer></componentList>",
        "</instrumentConfiguration></instrumentConfigurationList>",
        f'<run id="r1"><spectrumList count="{len(records)}">',
    ]
    for i, (coords, mzr, itr) in enumerate(records):
        pos = _cv("IMS:1000050", "position x", str(coords[0])) + _cv("IMS:1000051", "position y", str(coords[1]))
        if len(coords) == 3:
            pos += _cv("IMS:1000052", "position z", str(coords[2]))
        lines.append(
            f'<spectrum id="s{i}" index="{i}" defaultArrayLength="0">'
            '<referenceableParamGroupRef ref="spectrum1"/>'
            f'<scanList count="1"><scan>{pos}</scan></scanList>'
            '<binaryDataArrayList count="2">'
            '<binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="mzArray"/>'
            f'{_cv("IMS:1000103", "external array length", str(mzr[1]))}'
            f'{_cv("IMS:1000104", "external encoded length", str(mzr[2]))}'
            f'{_cv("IMS:1000102", "external offset", str(off(mzr[0])))}<binary/></binaryDataArray>'
            '<binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="intensityArray"/>'
            f'{_cv("IMS:1000103", "external array length", str(itr[1]))}'
            f'{_cv("IMS:1000104", "external encoded length", str(itr[2]))}'
            f'{_cv("IMS:1000102", "external offset", str(off(itr[0])))}<binary/></binaryDataArray>'
            "</binaryDataArrayList></spectrum>"
        )
    lines += ["</spectrumList></run>", "</mzML>"]
    path.write_text("\n".join(lines), encoding="latin-1")
    return path


def random_spectra(
    coords: list[tuple[int, ...]],
    rng: np.random.Generator,
    n_peaks: int = 40,
    continuous: bool = False,
    integer: bool = False,
) -> list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """Sorted random centroid spectra (or one shared axis when ``continuous``)."""
    axis = np.sort(rng.uniform(100.0, 500.0, n_peaks))
    out = []
    for c in coords:
        mz = axis if continuous else np.sort(rng.uniform(100.0, 500.0, rng.integers(n_peaks // 2, n_peaks + 1)))
        it = rng.integers(0, 1000, mz.size) if integer else rng.uniform(0.0, 100.0, mz.size)
        out.append((c, mz, it.astype(np.float32).astype(np.float64)))  # exact in float32 files too
    return out


def grid(nx: int, ny: int, x0: int = 1, y0: int = 1, z: int | None = None) -> list[tuple[int, ...]]:
    return [((x, y) if z is None else (x, y, z)) for y in range(y0, y0 + ny) for x in range(x0, x0 + nx)]


# --------------------------------------------------------------------------------------------
# the hand-made files are valid imzML: an independent reader (pyimzML) reads them back
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["processed", "continuous"])
@pytest.mark.parametrize("int_dtype", ["<f4", "<i8", "legacy<i4"])
def test_hand_made_files_read_back_with_pyimzml(tmp_path: Path, mode: str, int_dtype: str) -> None:
    from pyimzml.ImzMLParser import ImzMLParser

    rng = np.random.default_rng(0)
    spectra = random_spectra(grid(3, 2), rng, continuous=mode == "continuous", integer="i" in int_dtype)
    p = write_imzml(tmp_path / "f.imzML", spectra, mode=mode, int_dtype=int_dtype)
    parser = ImzMLParser(str(p))
    assert parser.coordinates == [(c[0], c[1], 1) for c, _, _ in spectra]
    for i, (_, mz, it) in enumerate(spectra):
        m, v = parser.getspectrum(i)
        np.testing.assert_array_equal(m, mz)
        np.testing.assert_array_equal(v, it)
