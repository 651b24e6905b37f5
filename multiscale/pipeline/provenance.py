"""Provenance: what was run, on what, with which versions, and how long each step took."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from multiscale._util import jsonable, write_json_atomic

__all__ = ["file_sha256", "input_checksums", "package_versions", "write_json", "provenance_record"]

_PACKAGES = (
    "multiscale", "numpy", "scipy", "dask", "distributed", "xarray", "zarr", "SimpleITK", "nibabel",
    "pydicom", "pyimzML", "tifffile", "scikit-image", "pandas", "pyarrow", "PyYAML", "matplotlib",
)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (or of every file under a folder, in sorted order), as hex.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt"); _ = open(p, "w").write("abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while True:
                block = fh.read(chunk)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()


def input_checksums(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """``{path: sha256}`` for each existing input (missing files map to ``"missing"``)."""
    out = {}
    for p in paths:
        p = Path(p)
        out[str(p)] = file_sha256(p) if p.exists() else "missing"
    return out


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the numbers, plus Python's.

    Examples
    --------
    >>> "numpy" in package_versions()
    True
    """
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN and infinities as ``null``)."""
    return write_json_atomic(obj, path, nonfinite="null")


def provenance_record(parameters: Mapping[str, Any], inputs: Mapping[str, str],
                      timings: Mapping[str, float], **extra: Any) -> dict[str, Any]:
    """A provenance record: versions, platform, parameters, input checksums and timings (s) per step.

    Examples
    --------
    >>> rec = provenance_record({"shells": 5}, {"a.nii": "00"}, {"load:mri": 0.1})
    >>> sorted(rec)[:3]
    ['created', 'host', 'inputs']
    """
    rec = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "packages": package_versions(),
        "parameters": jsonable(parameters, nonfinite="null"),
        "inputs": dict(inputs),
        "timings_s": {k: round(float(v), 4) for k, v in timings.items()},
    }
    rec.update(jsonable(extra, nonfinite="null"))
    return rec
