"""Reference data for judging a registration: ground-truth transforms and landmark files.

Both are read in ITK's convention: a transform maps points of the **fixed** frame to the
**moving** frame, and points are ``(x, y[, z])`` rows in mm.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from multiscale.errors import RegistrationError, TransformError

from .transform import Transform

__all__ = ["truth_transform", "read_landmarks"]


def _find(root: Any, parts: list[str]) -> Any:
    node = root
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def truth_transform(path: str | os.PathLike, key: str, dim: int) -> Transform:
    """The ground-truth transform ``key`` of a JSON file (ITK convention: fixed -> moving points).

    Parameters
    ----------
    path : path
        A JSON file, e.g. the ``ground_truth.json`` of a synthetic study.
    key : str
        A dotted path into the file (``transforms.pet_to_mri``); a bare name is also looked up
        under ``transforms``.
    dim : int
        2 or 3: the size of the matrices.

    The entry is one of

    * a transform file name (relative to the JSON file's folder), or ``{"file": name}``,
      read with :meth:`Transform.load`;
    * a homogeneous matrix ``matrix_4x4`` (``matrix_3x3`` in 2-D) acting on column vectors
      ``(x, y[, z], 1)``;
    * ``matrix`` (default identity) and ``translation`` or ``translation_mm`` (default 0), with
      an optional centre ``center`` or ``centre_mm``.

    Returns
    -------
    Transform
        ``info`` records ``kind="ground truth"``, the file and the key.

    Raises
    ------
    TransformError
        The file cannot be read as JSON, has no entry ``key`` (the message lists the transforms
        it has), or the entry's numbers do not make a ``dim``-D transform.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "truth.json"
    >>> _ = f.write_text(json.dumps({"transforms": {"a_to_b": {"translation_mm": [1.0, 2.0]}}}))
    >>> truth_transform(f, "a_to_b", 2).transform_points([0.0, 0.0]).tolist()
    [1.0, 2.0]
    """
    import SimpleITK as sitk

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TransformError(f"{path}: cannot read ground truth as JSON: {exc}; give a JSON file of transforms") from exc
    if not isinstance(data, Mapping):
        raise TransformError(f"{path}: ground truth must be a JSON object of transforms, got {type(data).__name__}")

    node = _find(data, key.split("."))
    if node is None and isinstance(data.get("transforms"), Mapping):
        node = _find(data["transforms"], key.split("."))
    if node is None:
        keys = sorted(data.get("transforms", data)) if isinstance(data.get("transforms", data), Mapping) else []
        raise TransformError(
            f"{path}: no ground-truth transform {key!r}; transforms are {keys}; "
            "name one of them (a dotted path such as 'transforms.<name>' also works)"
        )
    if isinstance(node, str):
        return Transform.load(path.parent / node)
    if not isinstance(node, Mapping):
        raise TransformError(
            f"{path}: ground-truth transform {key!r} is a {type(node).__name__}; give a file name, "
            f"'matrix_{dim + 1}x{dim + 1}', or 'matrix' and 'translation_mm'"
        )
    if "file" in node:
        return Transform.load(path.parent / node["file"])
    hkey = f"matrix_{dim + 1}x{dim + 1}"
    try:
        if hkey in node:
            h = np.asarray(node[hkey], dtype=float).reshape(dim + 1, dim + 1)
            matrix, translation, centre = h[:dim, :dim], h[:dim, dim], None
        else:
            matrix = np.asarray(node.get("matrix", np.eye(dim)), dtype=float).reshape(dim, dim)
            translation = np.asarray(node.get("translation", node.get("translation_mm", np.zeros(dim))), dtype=float)
            centre = node.get("center", node.get("centre_mm"))
        t = sitk.AffineTransform(dim)
        if centre is not None:
            t.SetCenter(tuple(float(v) for v in centre))
        t.SetMatrix(tuple(float(v) for v in matrix.reshape(-1)))
        t.SetTranslation(tuple(float(v) for v in translation))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TransformError(
            f"{path}: ground-truth transform {key!r} does not make a {dim}-D transform ({exc}); give "
            f"'{hkey}' ({dim + 1}x{dim + 1} numbers) or 'matrix' ({dim}x{dim}) and 'translation_mm' ({dim})"
        ) from exc
    return Transform(t, {"kind": "ground truth", "file": str(path), "key": key})


def read_landmarks(path: str | os.PathLike, dim: int) -> np.ndarray:
    """Points (n, dim) in ITK ``(x, y[, z])`` order (mm) from a CSV file.

    The columns named ``x``, ``y`` (and ``z`` in 3-D) are used; without them, the last ``dim``
    numeric columns.

    Raises
    ------
    RegistrationError
        The file cannot be read, or has no rows or not ``dim`` numeric columns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "points.csv"
    >>> _ = f.write_text("name,x,y\\ntip,1.5,2.0\\nbase,0.0,-1.0\\n")
    >>> read_landmarks(f, 2).tolist()
    [[1.5, 2.0], [0.0, -1.0]]
    """
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise RegistrationError(f"{path}: cannot read landmarks: {exc}; give a CSV file with columns "
                                f"{', '.join('xyz'[:dim])} (mm)") from exc
    cols = [c for c in ("x", "y", "z")[:dim] if c in df.columns]
    if len(cols) != dim:
        cols = list(df.select_dtypes("number").columns[-dim:])
    if len(cols) != dim or len(df) < 1:
        raise RegistrationError(f"{path}: landmarks need {dim} numeric columns named {', '.join('xyz'[:dim])} (mm)"
                                f" and at least one row; found columns {list(df.columns)} and {len(df)} rows")
    try:
        return df[cols].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise RegistrationError(f"{path}: landmark columns {cols} are not all numbers ({exc}); "
                                "give one point per row in mm") from exc
