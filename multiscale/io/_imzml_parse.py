"""Private: stream-parse an imzML file into a compact spectrum index, and cache that index.

The index holds, per spectrum, the m/z and intensity array offsets, element counts and encoded
lengths in the .ibd, and the (x, y, z) positions. Everything else (data types, compression,
pixel size, polarity, instrument) is header metadata. Controlled-vocabulary terms are matched by
accession, never by name (except to refuse an unknown compression scheme).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiscale._util import atomic_write
from multiscale.errors import ImzMLError, ImzMLWarning

INDEX_VERSION = 5

# --- controlled vocabulary ------------------------------------------------------------------
MZ_ARRAY = "MS:1000514"
INTENSITY_ARRAY = "MS:1000515"
EXT_OFFSET = "IMS:1000102"
EXT_LENGTH = "IMS:1000103"
EXT_ENCODED = "IMS:1000104"
POS_X, POS_Y, POS_Z = "IMS:1000050", "IMS:1000051", "IMS:1000052"
CONTINUOUS, PROCESSED = "IMS:1000030", "IMS:1000031"
UUID_TERM = "IMS:1000080"
SHA1_TERM, MD5_TERM = "IMS:1000091", "IMS:1000090"
MAX_COUNT_X, MAX_COUNT_Y = "IMS:1000042", "IMS:1000043"
PIXEL_SIZE_X, PIXEL_SIZE_Y = "IMS:1000046", "IMS:1000047"
CENTROID, PROFILE = "MS:1000127", "MS:1000128"
POSITIVE, NEGATIVE = "MS:1000130", "MS:1000129"
SERIAL_NUMBER = "MS:1000529"
NO_COMPRESSION, ZLIB = "MS:1000576", "MS:1000574"

DTYPES: dict[str, str] = {
    "MS:1000520": "<f2",  # 16-bit float
    "MS:1000521": "<f4",  # 32-bit float
    "MS:1000523": "<f8",  # 64-bit float
    "MS:1000518": "<i2",  # 16-bit integer
    "MS:1000519": "<i4",  # 32-bit integer
    "MS:1000522": "<i8",  # 64-bit integer
    "IMS:1000141": "<i4",  # legacy imzML 32-bit integer
    "IMS:1000142": "<i8",  # legacy imzML 64-bit integer
}
OTHER_COMPRESSION: dict[str, str] = {
    "MS:1002312": "MS-Numpress linear prediction compression",
    "MS:1002313": "MS-Numpress positive integer compression",
    "MS:1002314": "MS-Numpress short logged float compression",
    "MS:1002746": "MS-Numpress linear prediction compression followed by zlib compression",
    "MS:1002747": "MS-Numpress positive integer compression followed by zlib compression",
    "MS:1002748": "MS-Numpress short logged float compression followed by zlib compression",
    "MS:1003088": "truncation, delta prediction and zlib compression",
    "MS:1003089": "truncation, linear prediction and zlib compression",
    "MS:1003090": "delta prediction and zlib compression",
    "MS:1003091": "linear prediction and zlib compression",
}
# pixel size units -> factor to millimetres
LENGTH_UNITS_MM: dict[str, float] = {
    "UO:0000017": 1e-3,  # micrometer
    "UO:0000018": 1e-6,  # nanometer
    "UO:0000016": 1.0,  # millimeter
    "UO:0000008": 1e3,  # meter
}






@dataclass
class ArrayFormat:
    """How one kind of binary array (m/z or intensity) is stored."""

    dtype: str
    compression: str  # "none" or "zlib"


@dataclass
class ImzMLIndex:
    """Everything needed to read spectra: per-spectrum arrays plus header metadata."""

    mz_offset: np.ndarray
    mz_length: np.ndarray
    mz_encoded: np.ndarray
    int_offset: np.ndarray
    int_length: np.ndarray
    int_encoded: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    has_z: bool
    mz_format: ArrayFormat
    int_format: ArrayFormat
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spectra(self) -> int:
        return int(self.x.size)

    _ARRAYS = ("mz_offset", "mz_length", "mz_encoded", "int_offset", "int_length", "int_encoded", "x", "y", "z")

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in self._ARRAYS}
        meta = {
            "has_z": self.has_z,
            "mz_format": [self.mz_format.dtype, self.mz_format.compression],
            "int_format": [self.int_format.dtype, self.int_format.compression],
            "header": self.header,
        }
        out["meta"] = np.array(json.dumps(meta))
        return out

    @classmethod
    def from_npz(cls, data: Any) -> ImzMLIndex:
        meta = json.loads(str(data["meta"]))
        arrays = {k: np.asarray(data[k]) for k in cls._ARRAYS}
        return cls(
            **arrays,
            has_z=bool(meta["has_z"]),
            mz_format=ArrayFormat(*meta["mz_format"]),
            int_format=ArrayFormat(*meta["int_format"]),
            header=meta["header"],
        )


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(value: str | None, path: Path, what: str) -> int:
    if value is None or value == "":
        raise ImzMLError(f"{path}: {what} is missing; the imzML is incomplete, re-export it")
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            raise ImzMLError(f"{path}: {what} = {value!r} is not a number; fix or re-export the imzML") from None
        if not f.is_integer():
            raise ImzMLError(f"{path}: {what} = {value!r} is not an integer; fix or re-export the imzML") from None
        return int(f)


def _params_of(elem: ET.Element, ns: str) -> dict[str, tuple[str, str | None, str | None]]:
    """accession -> (value, name, unitAccession) of the direct cvParam children of ``elem``."""
    out = {}
    for c in elem:
        if c.tag == ns + "cvParam":
            acc = c.get("accession")
            if acc:
                out[acc] = (c.get("value") or "", c.get("name"), c.get("unitAccession"))
    return out


def _array_format(params: dict[str, tuple], path: Path, kind: str, where: str) -> ArrayFormat:
    dtype = None
    for acc, t in DTYPES.items():
        if acc in params:
            dtype = t
            break
    if dtype is None:
        raise ImzMLError(
            f"{path}: {where}: the {kind} array has no data type term (e.g. MS:1000521 '32-bit float', "
            "MS:1000523 '64-bit float', MS:1000519 '32-bit integer'); add it to its referenceableParamGroup"
        )
    comp = "none"
    if ZLIB in params:
        comp = "zlib"
    for acc, (_, name, _) in params.items():
        other = OTHER_COMPRESSION.get(acc)
        if other is None and acc not in (ZLIB, NO_COMPRESSION) and name and "compression" in name.lower():
            other = name
        if other is not None:
            raise ImzMLError(
                f"{path}: {where}: the {kind} array uses '{other}' ({acc}); only uncompressed and zlib "
                "arrays are supported; convert the file without compression (or with zlib), e.g. with "
                "msconvert or the vendor exporter"
            )
    return ArrayFormat(dtype, comp)


def parse_imzml(path: Path) -> ImzMLIndex:
    """Stream-parse ``path`` (an .imzML file) into an :class:`ImzMLIndex`."""
    groups: dict[str, dict[str, tuple]] = {}
    header_params: dict[str, tuple] = {}  # first occurrence of every header cvParam
    file_content: dict[str, tuple] = {}
    instrument: dict[str, Any] = {}
    cols: dict[str, list[int]] = {k: [] for k in ImzMLIndex._ARRAYS}
    has_z = False
    mz_fmt = int_fmt = None
    spectrum_params: dict[str, tuple] | None = None
    ns = ""
    slist = None
    in_run = False
    n = 0
    try:
        context = ET.iterparse(str(path), events=("start", "end"))
        for event, elem in context:
            if event == "start":
                if not in_run:
                    tag = _local(elem.tag)
                    if tag == "mzML" or tag == "indexedmzML":
                        ns = elem.tag[: -len(tag)]
                    elif tag == "run":
                        in_run = True
                elif elem.tag == ns + "spectrumList":
                    slist = elem
                continue
            tag = elem.tag
            if tag == ns + "spectrum":
                fmt = _read_spectrum(elem, ns, groups, cols, path, n)
                if fmt[2]:
                    has_z = True
                if mz_fmt is None:
                    mz_fmt, int_fmt = fmt[0], fmt[1]
                    spectrum_params = _spectrum_level_params(elem, ns, groups)
                elif fmt[0] != mz_fmt or fmt[1] != int_fmt:
                    raise ImzMLError(
                        f"{path}: spectrum {n} (id {elem.get('id')!r}): array data type/compression "
                        f"({fmt[0]}, {fmt[1]}) differs from the first spectrum's ({mz_fmt}, {int_fmt}); "
                        "mixed formats are not supported; re-export the file with one format"
                    )
                n += 1
                elem.clear()
                if slist is not None:
                    slist.remove(elem)
            elif in_run:
                continue
            elif tag == ns + "cvParam":
                acc = elem.get("accession")
                if acc and acc not in header_params:
                    header_params[acc] = (elem.get("value") or "", elem.get("name"), elem.get("unitAccession"))
            elif tag == ns + "referenceableParamGroup":
                groups[elem.get("id", "")] = _params_of(elem, ns)
            elif tag == ns + "fileContent":
                file_content = _params_of(elem, ns)
            elif tag == ns + "instrumentConfiguration" and not instrument:
                own = _params_of(elem, ns)
                names = [v[1] for a, v in own.items() if a != SERIAL_NUMBER and v[1]]
                instrument["instrument"] = names[0] if names else ""
                for part in ("source", "analyzer", "detector"):
                    p = elem.find(f"{ns}componentList/{ns}{part}")
                    if p is not None:
                        instrument[part] = [v[1] for v in _params_of(p, ns).values() if v[1]]
    except ET.ParseError as err:
        line, col = getattr(err, "position", (None, None))
        raise ImzMLError(
            f"{path}: malformed XML at line {line}, column {col} ({err}); the imzML is damaged or was cut "
            "short; re-copy or re-export it"
        ) from None
    if n == 0:
        raise ImzMLError(f"{path}: the spectrumList holds no spectra; is this an imzML file with data?")

    header = _header(path, header_params, file_content, groups, spectrum_params or {}, instrument)
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in cols.items()}
    for key in ("mz_offset", "int_offset"):
        arrays[key] = repair_signed_offsets(arrays[key])
    assert mz_fmt is not None and int_fmt is not None
    return ImzMLIndex(**arrays, has_z=has_z, mz_format=mz_fmt, int_format=int_fmt, header=header)


def _spectrum_level_params(elem: ET.Element, ns: str, groups: dict) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for c in elem:
        if c.tag == ns + "referenceableParamGroupRef":
            out.update(groups.get(c.get("ref", ""), {}))
    out.update(_params_of(elem, ns))
    return out


def _read_spectrum(elem: ET.Element, ns: str, groups: dict, cols: dict, path: Path, n: int) -> tuple:
    cv = ns + "cvParam"
    ref = ns + "referenceableParamGroupRef"
    x = y = z = None
    for c in elem.iter(cv):
        acc = c.get("accession")
        if acc == POS_X:
            x = c.get("value")
        elif acc == POS_Y:
            y = c.get("value")
        elif acc == POS_Z:
            z = c.get("value")
    sid = elem.get("id")
    where = f"spectrum {n} (id {sid!r})"
    found: dict[str, tuple] = {}
    for bda in elem.iter(ns + "binaryDataArray"):
        params: dict[str, tuple] = {}
        for c in bda:
            if c.tag == ref:
                g = groups.get(c.get("ref", ""))
                if g is None:
                    raise ImzMLError(
                        f"{path}: {where}: referenceableParamGroupRef {c.get('ref')!r} names no "
                        "referenceableParamGroup; fix the reference or re-export the file"
                    )
                params.update(g)
        params.update(_params_of(bda, ns))
        if MZ_ARRAY in params:
            kind = "m/z"
        elif INTENSITY_ARRAY in params:
            kind = "intensity"
        else:
            continue
        found[kind] = params
    for kind in ("m/z", "intensity"):
        if kind not in found:
            raise ImzMLError(
                f"{path}: {where} has no {kind} array (binaryDataArray with "
                f"{MZ_ARRAY if kind == 'm/z' else INTENSITY_ARRAY}); the imzML is incomplete, re-export it"
            )
    pre = {"m/z": "mz_", "intensity": "int_"}
    fmts = []
    for kind in ("m/z", "intensity"):
        p = found[kind]
        fmt = _array_format(p, path, kind, where)
        fmts.append(fmt)
        cols[pre[kind] + "offset"].append(_int(p.get(EXT_OFFSET, (None,))[0], path, f"{where} {kind} array external offset (IMS:1000102)"))
        cols[pre[kind] + "length"].append(_int(p.get(EXT_LENGTH, (None,))[0], path, f"{where} {kind} array external array length (IMS:1000103)"))
        enc = p.get(EXT_ENCODED, (None,))[0]
        if fmt.compression == "none" and not enc:
            enc_v = -1  # derived from the length later
        else:
            enc_v = _int(enc, path, f"{where} {kind} array external encoded length (IMS:1000104)")
        cols[pre[kind] + "encoded"].append(enc_v)
    cols["x"].append(_int(x, path, f"{where} position x (IMS:1000050)"))
    cols["y"].append(_int(y, path, f"{where} position y (IMS:1000051)"))
    cols["z"].append(_int(z, path, f"{where} position z (IMS:1000052)") if z is not None else 1)
    return fmts[0], fmts[1], z is not None


def _value(params: dict, acc: str) -> str | None:
    v = params.get(acc)
    return None if v is None else v[0]


def _header(path: Path, hp: dict, fc: dict, groups: dict, sp: dict, instrument: dict) -> dict[str, Any]:
    all_terms = {**hp, **{a: v for g in groups.values() for a, v in g.items()}, **sp, **fc}
    storage = "continuous" if CONTINUOUS in fc else "processed" if PROCESSED in fc else ""
    spectrum_type = ""
    for src in (sp, fc, all_terms):
        if CENTROID in src:
            spectrum_type = "centroid"
            break
        if PROFILE in src:
            spectrum_type = "profile"
            break
    polarity = ""
    for src in (sp, all_terms):
        if POSITIVE in src and NEGATIVE in src:
            polarity = "mixed"
            break
        if POSITIVE in src:
            polarity = "positive"
            break
        if NEGATIVE in src:
            polarity = "negative"
            break

    invalid: dict[str, str] = {}

    def size_mm(acc: str) -> float | None:
        v = hp.get(acc)
        if v is None or v[0] in ("", None):
            return None
        try:
            val = float(v[0])
        except ValueError:
            raise ImzMLError(
                f"{path}: pixel size {acc} = {v[0]!r} is not a number; fix the scanSettings cvParam"
            ) from None
        unit = v[2] or "UO:0000017"
        if unit not in LENGTH_UNITS_MM:
            raise ImzMLError(
                f"{path}: pixel size {acc} has unit {unit!r}; expected micrometer (UO:0000017), nanometer "
                "(UO:0000018) or millimeter (UO:0000016); fix the unitAccession"
            )
        if not np.isfinite(val) or val <= 0:
            invalid["x" if acc == PIXEL_SIZE_X else "y"] = str(v[0])  # decided with the grid (one row or not)
            return None
        return val * LENGTH_UNITS_MM[unit]

    def count(acc: str) -> int | None:
        v = _value(hp, acc)
        try:
            return int(float(v)) if v else None
        except ValueError:
            return None

    px, py = size_mm(PIXEL_SIZE_X), size_mm(PIXEL_SIZE_Y)
    return {
        "storage": storage,
        "spectrum_type": spectrum_type,
        "polarity": polarity,
        "uuid": _value(fc, UUID_TERM) or _value(hp, UUID_TERM) or "",
        "sha1": _value(fc, SHA1_TERM) or _value(hp, SHA1_TERM) or "",
        "md5": _value(fc, MD5_TERM) or _value(hp, MD5_TERM) or "",
        "pixel_size_x_mm": px,
        "pixel_size_y_mm": py,
        "pixel_size_invalid": invalid,
        "declared_pixels_x": count(MAX_COUNT_X),
        "declared_pixels_y": count(MAX_COUNT_Y),
        **{k: v for k, v in instrument.items()},
    }


def repair_signed_offsets(offsets: np.ndarray) -> np.ndarray:
    """Undo signed 32-bit offsets: add 2**32 at each switch from non-negative to negative.

    Examples
    --------
    >>> import numpy as np
    >>> repair_signed_offsets(np.array([16, 2**31 - 8, -2**31 + 8])).tolist()
    [16, 2147483640, 2147483656]
    """
    off = np.asarray(offsets, dtype=np.int64)
    neg = off < 0
    if not neg.any():
        return off
    prev_nonneg = np.concatenate([[False], ~neg[:-1]])
    switches = np.cumsum(neg & prev_nonneg)
    return off + switches.astype(np.int64) * (1 << 32)


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


def user_cache_dir() -> Path:
    """Folder for the index caches: ``$MULTISCALE_CACHE_DIR/imzml``, else the user cache folder (XDG).

    Reading never writes next to the user's data: the caches live here only.
    """
    env = os.environ.get("MULTISCALE_CACHE_DIR")
    if env:
        return Path(env) / "imzml"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "multiscale" / "imzml"


def _file_key(imzml: Path, ibd: Path) -> dict[str, Any]:
    a, b = imzml.stat(), ibd.stat()
    return {
        "version": INDEX_VERSION,
        "imzml": str(imzml.resolve()),
        "imzml_size": a.st_size,
        "imzml_mtime_ns": a.st_mtime_ns,
        "imzml_inode": a.st_ino,
        "imzml_ctime_ns": a.st_ctime_ns,
        "ibd_size": b.st_size,
        "ibd_mtime_ns": b.st_mtime_ns,
        "ibd_inode": b.st_ino,
        "ibd_ctime_ns": b.st_ctime_ns,
    }


def folder_is_writable(folder: Path) -> bool:
    """True when ``folder`` is meant to be written: the process may write it *and* its mode has a
    write bit (root may write anywhere, but a folder with mode r-x is read-only by intent)."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def cache_candidates(imzml: Path, cache_dir: Path | None) -> list[Path]:
    """Where the index cache lives: ``cache_dir`` when given, else the user cache folder (never beside the data).

    The name holds a digest of the file's resolved path; the cache's recorded key (sizes, mtimes,
    inodes, ctimes) decides whether it is still valid.
    """
    digest = hashlib.sha1(str(imzml.resolve()).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    return [folder / f"{imzml.name}.{digest}.index.npz"]


def load_cached_index(imzml: Path, ibd: Path, cache_dir: Path | None) -> tuple[ImzMLIndex | None, Path | None]:
    """The cached index if one matches the files' current size and mtime, else ``(None, None)``."""
    key = _file_key(imzml, ibd)
    for cand in cache_candidates(imzml, cache_dir):
        if not cand.is_file():
            continue
        try:
            with np.load(cand, allow_pickle=False) as data:
                if json.loads(str(data["key"])) != key:
                    continue
                return ImzMLIndex.from_npz(data), cand
        except Exception:  # noqa: BLE001 - a damaged cache is simply rebuilt
            continue
    return None, None


def save_index(index: ImzMLIndex, imzml: Path, ibd: Path, cache_dir: Path | None) -> Path | None:
    """Write the index cache atomically to the first writable candidate folder; None if none is."""
    payload = index.to_npz_dict()
    payload["key"] = np.array(json.dumps(_file_key(imzml, ibd)))
    for cand in cache_candidates(imzml, cache_dir):
        folder = cand.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not folder_is_writable(folder):
                continue
            def write(tmp: Path) -> None:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **payload)

            return atomic_write(cand, write, suffix=".tmp")
        except OSError:
            continue
    warnings.warn(
        f"{imzml}: could not write the index cache anywhere (tried {[str(c) for c in cache_candidates(imzml, cache_dir)]}); "
        "reopening will parse the XML again; set MULTISCALE_CACHE_DIR to a writable folder",
        ImzMLWarning,
        stacklevel=3,
    )
    return None
