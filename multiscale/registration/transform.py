"""The :class:`Transform`: a SimpleITK transform with a named direction, a record and files.

Direction, once and for all: a transform maps points of the **fixed** frame to the **moving**
frame (physical mm, rows in ITK ``(x, y[, z])`` order). Images travel the other way: resampling
the moving image onto the fixed grid uses that same transform.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiscale._util import atomic_write, jsonable, write_text_atomic
from multiscale.errors import TransformError

__all__ = ["Transform", "TransformError", "compose", "compose_chain", "identity", "linear_parts", "linear_summary"]

_SIDE_SUFFIX = ".json"
_FIELD_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")




def _sitk():
    import SimpleITK as sitk

    return sitk


class Transform:
    """A spatial transform mapping points of the fixed frame into the moving frame.

    Wraps a ``SimpleITK.Transform`` (``.sitk``) and records what produced it (``.info``: metric
    before/after, stages kept, iterations, time, provenance).

    Parameters
    ----------
    sitk_transform : SimpleITK.Transform
        The wrapped transform; it is copied, so later changes to the argument do not leak in.
    info : mapping, optional
        What produced the transform; stored as a plain dict.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> t = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))
    >>> t.transform_points([[0.0, 0.0], [2.0, 3.0]]).tolist()
    [[1.0, 0.0], [3.0, 3.0]]
    """

    def __init__(self, sitk_transform: Any, info: Mapping[str, Any] | None = None) -> None:
        sitk = _sitk()
        if isinstance(sitk_transform, Transform):
            info = {**sitk_transform.info, **(info or {})}
            sitk_transform = sitk_transform.sitk
        if not isinstance(sitk_transform, sitk.Transform):
            raise TransformError(
                f"Transform wraps a SimpleITK transform, got {type(sitk_transform).__name__}; "
                "build one with SimpleITK (e.g. sitk.Euler2DTransform()) or use landmark_transform()"
            )
        self._t = _copy_sitk(sitk_transform)
        self.info: dict[str, Any] = dict(info or {})

    # ------------------------------------------------------------------ basics
    @property
    def sitk(self) -> Any:
        """The wrapped ``SimpleITK.Transform`` (a copy is safer if you plan to modify it)."""
        return self._t

    @property
    def dimension(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return int(self._t.GetDimension())

    @property
    def kind(self) -> str:
        """ITK class name of the transform, e.g. ``'Euler2DTransform'`` or ``'CompositeTransform'``."""
        return self._t.GetName()

    @property
    def is_linear(self) -> bool:
        """True when the transform is affine (a matrix and a translation), composites included."""
        return self._t.IsLinear()

    def __repr__(self) -> str:
        stages = self.info.get("stages_kept")
        extra = f", stages_kept={stages}" if stages else ""
        return f"Transform({self.kind}, {self.dimension}D{extra})"

    def copy(self) -> Transform:
        """An independent copy (transform and info)."""
        return Transform(self._t, copy.deepcopy(self.info))

    # ------------------------------------------------------------------ points
    def transform_points(self, points: Any) -> np.ndarray:
        """Map points of the fixed frame into the moving frame.

        Parameters
        ----------
        points : array_like, shape (n, d) or (d,)
            Physical positions in mm, each row in ITK ``(x, y[, z])`` order (convert numpy
            ``(z, y, x)`` rows with :func:`multiscale.image.zyx_to_xyz`).

        Returns
        -------
        numpy.ndarray
            Same shape as ``points``: where each point lands in the moving frame.

        Examples
        --------
        >>> import SimpleITK as sitk
        >>> t = Transform(sitk.Euler2DTransform((0.0, 0.0), np.pi / 2))
        >>> np.round(t.transform_points([1.0, 0.0]), 12).tolist()
        [0.0, 1.0]
        """
        pts = np.asarray(points, dtype=float)
        single = pts.ndim == 1
        pts2 = np.atleast_2d(pts)
        if pts2.ndim != 2 or pts2.shape[1] != self.dimension:
            raise TransformError(
                f"points of shape {pts.shape} do not fit a {self.dimension}-D transform; give rows of "
                f"{self.dimension} coordinates in (x, y[, z]) order, in mm"
            )
        if self.is_linear:
            a, b = linear_parts(self)
            out = pts2 @ a.T + b
        else:
            out = np.array([self._t.TransformPoint(tuple(p)) for p in pts2], dtype=float)
            out = out.reshape(pts2.shape)
        return out[0] if single else out

    # ------------------------------------------------------------------ algebra
    def compose(self, *others: Transform) -> Transform:
        """Chain transforms: points go through ``self`` first, then each of ``others`` in order.

        For a chain of registrations ``register(block, histo) -> t1`` (block points to histology)
        and ``register(histo, msi) -> t2`` (histology points to MSI), ``t1.compose(t2)`` maps
        block-face points to MSI points, so ``resample(msi, block, t1.compose(t2))`` brings the
        MSI map into the block-face frame in one interpolation. ``Transform.compose(t1, t2)``
        reads the same.

        Examples
        --------
        >>> import SimpleITK as sitk
        >>> a = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))
        >>> b = Transform(sitk.Euler2DTransform((0.0, 0.0), np.pi / 2))
        >>> np.round(a.compose(b).transform_points([1.0, 0.0]), 12).tolist()  # rotate(translate(p))
        [0.0, 2.0]
        """
        sitk = _sitk()
        chain = [self, *others]
        for t in chain:
            if not isinstance(t, Transform):
                raise TransformError(f"compose takes Transform objects, got {type(t).__name__}")
            if t.dimension != self.dimension:
                raise TransformError(
                    f"cannot compose a {self.dimension}-D transform with a {t.dimension}-D one"
                )
        # SimpleITK applies the last transform of a CompositeTransform first.
        comp = sitk.CompositeTransform([_copy_sitk(t.sitk) for t in reversed(chain)])
        info = {
            "kind": "composition",
            "order": "points pass through the parts in the listed order",
            "parts": [jsonable(t.info, nonfinite="keep") for t in chain],
        }
        return Transform(comp, info)

    def inverse(self) -> Transform:
        """The inverse transform (moving frame to fixed frame), where one exists.

        Raises
        ------
        TransformError
            For transforms without a closed-form inverse (B-spline, displacement field).

        Examples
        --------
        >>> import SimpleITK as sitk
        >>> t = Transform(sitk.TranslationTransform(2, (1.0, 2.0)))
        >>> t.inverse().transform_points([1.0, 2.0]).tolist()
        [0.0, 0.0]
        """
        sitk = _sitk()
        if self.is_linear:
            a, b = linear_parts(self)
            try:
                ai = np.linalg.inv(a)
            except np.linalg.LinAlgError as exc:
                raise TransformError("the transform's matrix is singular; it has no inverse") from exc
            inv = sitk.AffineTransform(self.dimension)
            inv.SetMatrix(tuple(ai.reshape(-1)))
            inv.SetTranslation(tuple(-ai @ b))
        else:
            try:
                inv = self._t.GetInverse()
            except RuntimeError as exc:
                raise TransformError(
                    f"a {self.kind} has no closed-form inverse; register the other way round "
                    "(swap fixed and moving), or invert a displacement field of it"
                ) from exc
        return Transform(inv, {"kind": "inverse", "of": jsonable(self.info, nonfinite="keep")})

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the transform (ITK ``.tfm``/``.txt`` or ``.h5``) and a JSON sidecar ``<path>.json``.

        Both writes are atomic (temporary name in the same folder, then ``os.replace``).

        Returns
        -------
        pathlib.Path
            The transform file's path.

        Examples
        --------
        >>> import SimpleITK as sitk, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.tfm")
        >>> Transform(sitk.TranslationTransform(2, (1.0, 2.0)), {"note": "demo"}).save(p).name
        't.tfm'
        >>> Transform.load(p).info["note"]
        'demo'
        """
        sitk = _sitk()
        path = Path(path)
        suffix = "".join(path.suffixes[-1:]).lower()
        if suffix not in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
            raise TransformError(
                f"{path}: unknown transform file suffix {suffix!r}; use .tfm (text) or .h5 (HDF5)"
            )
        if not path.parent.is_dir():
            raise TransformError(f"{path}: folder {path.parent} does not exist; create it first")
        atomic_write(path, lambda tmp: sitk.WriteTransform(self._t, str(tmp)), suffix=path.suffix)
        side = {"format": "multiscale.registration.Transform/1", "direction": "fixed -> moving (points)"}
        side["kind"] = self.kind
        side["dimension"] = self.dimension
        side["info"] = jsonable(self.info, nonfinite="keep")
        write_text_atomic(Path(str(path) + _SIDE_SUFFIX), json.dumps(side, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Transform:
        """Read a transform file: ITK ``.tfm``/``.txt``/``.h5``/``.mat`` (ANTs writes these too),
        an elastix ``TransformParameters*.txt`` (Translation, Euler, Similarity, Affine, BSpline;
        ``InitialTransformParametersFileName`` chains composed as elastix does, the initial
        transform first: ``T(p) = T_this(T_initial(p))``), or a
        displacement-field image (``.nii[.gz]``, ``.mha``, ``.nrrd``: an ANTs ``Warp`` file).

        The JSON sidecar written by :meth:`save`, when present, restores ``info``.

        Examples
        --------
        >>> import SimpleITK as sitk, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.h5")
        >>> _ = Transform(sitk.Euler2DTransform((0.0, 0.0), 0.1)).save(p)
        >>> round(float(Transform.load(p).sitk.GetParameters()[0]), 6)
        0.1
        """
        sitk = _sitk()
        path = Path(path)
        if not path.is_file():
            raise TransformError(f"{path}: no such transform file")
        name = path.name.lower()
        info: dict[str, Any] = {}
        if any(name.endswith(s) for s in _FIELD_SUFFIXES):
            field = sitk.ReadImage(str(path), sitk.sitkVectorFloat64)
            if field.GetNumberOfComponentsPerPixel() != field.GetDimension():
                raise TransformError(
                    f"{path}: a displacement field needs {field.GetDimension()} components per voxel, "
                    f"found {field.GetNumberOfComponentsPerPixel()}"
                )
            t = sitk.DisplacementFieldTransform(field)
            info["source"] = {"path": str(path), "reader": "displacement field"}
        elif _is_elastix_file(path):
            t = _read_elastix(path)
            info["source"] = {"path": str(path), "reader": "elastix parameter file"}
        else:
            try:
                t = sitk.ReadTransform(str(path))
            except RuntimeError as exc:
                raise TransformError(
                    f"{path}: SimpleITK could not read this transform file ({str(exc).strip().splitlines()[-1]}); "
                    "give an ITK .tfm/.h5/.mat, an elastix TransformParameters file or a displacement field"
                ) from exc
            info["source"] = {"path": str(path), "reader": "SimpleITK.ReadTransform"}
        side = Path(str(path) + _SIDE_SUFFIX)
        if side.is_file():
            try:
                meta = json.loads(side.read_text())
            except json.JSONDecodeError as exc:
                raise TransformError(f"{side}: sidecar is not valid JSON ({exc}); delete or fix it") from exc
            info = {**meta.get("info", {}), **info}
        return cls(_flatten_single(t), info)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def identity(dimension: int) -> Transform:
    """The identity transform in 2 or 3 dimensions.

    Examples
    --------
    >>> identity(3).transform_points([1.0, 2.0, 3.0]).tolist()
    [1.0, 2.0, 3.0]
    """
    sitk = _sitk()
    if dimension not in (2, 3):
        raise TransformError(f"dimension must be 2 or 3, got {dimension}")
    return Transform(sitk.AffineTransform(dimension), {"kind": "identity"})


def compose(*transforms: Transform) -> Transform:
    """Chain transforms; points pass through them in the order given (see :meth:`Transform.compose`).

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> a = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))
    >>> compose(a, a).transform_points([0.0, 0.0]).tolist()
    [2.0, 0.0]
    """
    if not transforms:
        raise TransformError("compose needs at least one transform")
    return transforms[0].compose(*transforms[1:])


def linear_parts(transform: Transform | Any) -> tuple[np.ndarray, np.ndarray]:
    """Matrix ``A`` and offset ``b`` of a linear transform, ``y = A x + b`` (ITK xyz order).

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> a, b = linear_parts(sitk.TranslationTransform(2, (1.0, 2.0)))
    >>> a.tolist(), b.tolist()
    ([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    """
    t = transform.sitk if isinstance(transform, Transform) else transform
    if not t.IsLinear():
        raise TransformError(f"a {t.GetName()} is not linear")
    n = t.GetDimension()
    origin = np.zeros(n)
    b = np.asarray(t.TransformPoint(tuple(origin)), dtype=float)
    a = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        a[:, j] = np.asarray(t.TransformPoint(tuple(e)), dtype=float) - b
    return a, b


def compose_chain(transforms: Sequence[Transform]) -> Transform | None:
    """One transform from reference points to an image's frame, for a chain ``[t(a->b), t(b->ref)]``.

    A registration chain lists its edges from the image towards the reference: ``t(a->b)`` is
    ``register(b, a)`` (points of ``b`` to ``a``), ``t(b->ref)`` is ``register(ref, b)``. Points of
    the reference go through the last edge's transform first (ref -> b), then the first (b -> a),
    so ``resample(a, ref, compose_chain(chain))`` brings ``a`` into the reference frame in one
    interpolation.

    Returns
    -------
    Transform or None
        ``None`` for an empty chain, the transform itself for a chain of one (not a copy).

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> t_ab = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))      # b points -> a
    >>> t_bref = Transform(sitk.Euler2DTransform((0.0, 0.0), np.pi / 2))  # ref points -> b
    >>> np.round(compose_chain([t_ab, t_bref]).transform_points([1.0, 0.0]), 12).tolist()
    [1.0, 1.0]
    >>> compose_chain([]) is None
    True
    """
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]
    rev = list(reversed(transforms))
    return rev[0].compose(*rev[1:])


def linear_summary(transform: Transform | Any) -> dict[str, str] | None:
    """Rotation angle (deg), scales, translation (mm) and matrix of a linear transform, as text.

    The rotation is that of the polar decomposition of the matrix (the nearest rotation), the
    scales its singular values; numbers are ITK ``(x, y[, z])`` order. Non-linear transforms
    (and anything :func:`linear_parts` cannot read) give ``None``.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> linear_summary(Transform(sitk.Euler2DTransform((0.0, 0.0), np.pi / 6, (1.0, 2.0))))["rotation (deg)"]
    '30.000'
    >>> linear_summary(Transform(sitk.BSplineTransform(2))) is None
    True
    """
    try:
        a, b = linear_parts(transform)
    except Exception:  # noqa: BLE001 - non-linear or unknown transforms are not summarised
        return None
    u, sv, vt = np.linalg.svd(a)
    r = u @ vt
    if r.shape == (2, 2):
        angle = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    else:
        angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
    return {"rotation (deg)": f"{angle:.3f}", "scales": ", ".join(f"{v:.4f}" for v in sv),
            "translation (mm, x y z)": ", ".join(f"{v:.4f}" for v in b),
            "matrix (x y z)": "; ".join(", ".join(f"{v:.4f}" for v in row) for row in a)}


def _copy_sitk(t: Any) -> Any:
    """Deep copy of a SimpleITK transform keeping its concrete class."""
    sitk = _sitk()
    out = sitk.Transform(t)
    try:
        out = out.Downcast()
    except (AttributeError, RuntimeError):
        pass
    out.MakeUnique()
    return out


def _flatten_single(t: Any) -> Any:
    """Unwrap a composite that holds one transform (as ``ReadTransform`` returns for .h5)."""
    sitk = _sitk()
    try:
        t = t.Downcast()
    except (AttributeError, RuntimeError):
        pass
    if isinstance(t, sitk.CompositeTransform) and t.GetNumberOfTransforms() == 1:
        inner = t.GetNthTransform(0)
        try:
            return inner.Downcast()
        except (AttributeError, RuntimeError):
            return inner
    return t


# ---------------------------------------------------------------------------------------------
# elastix parameter files
# ---------------------------------------------------------------------------------------------

_ELX_LINE = re.compile(r"^\s*\((\w+)\s+(.*)\)\s*$")


def _is_elastix_file(path: Path) -> bool:
    if path.suffix.lower() != ".txt":
        return False
    try:
        head = path.read_text(errors="replace")[:4000]
    except OSError:
        return False
    return "(Transform " in head and "(TransformParameters" in head


def _parse_elastix(path: Path) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("//", 1)[0]
        m = _ELX_LINE.match(line)
        if not m:
            continue
        key, raw = m.groups()
        values: list[Any] = []
        for tok in re.findall(r'"[^"]*"|\S+', raw):
            if tok.startswith('"'):
                values.append(tok.strip('"'))
            else:
                try:
                    values.append(float(tok))
                except ValueError:
                    values.append(tok)
        params[key] = values
    return params


def _read_elastix(path: Path) -> Any:
    """Build a SimpleITK transform from an elastix TransformParameters file (fixed -> moving)."""
    sitk = _sitk()
    p = _parse_elastix(path)

    def need(key: str) -> list[Any]:
        if key not in p:
            raise TransformError(f"{path}: elastix field ({key} ...) is missing")
        return p[key]

    kind = str(need("Transform")[0])
    dim = int(need("FixedImageDimension")[0])
    if dim not in (2, 3):
        raise TransformError(f"{path}: FixedImageDimension {dim} is not 2 or 3")
    params = np.asarray(need("TransformParameters"), dtype=float)
    center = np.asarray(p.get("CenterOfRotationPoint", [0.0] * dim), dtype=float)
    if kind == "TranslationTransform":
        t = sitk.TranslationTransform(dim, tuple(params[:dim]))
    elif kind == "EulerTransform":
        if dim == 2:
            t = sitk.Euler2DTransform(tuple(center), float(params[0]), tuple(params[1:3]))
        else:
            t = sitk.Euler3DTransform()
            t.SetCenter(tuple(center))
            zyx = str(p.get("ComputeZYX", ["false"])[0]).lower() == "true"
            t.SetComputeZYX(zyx)
            t.SetRotation(*[float(v) for v in params[:3]])
            t.SetTranslation(tuple(params[3:6]))
    elif kind == "SimilarityTransform":
        if dim == 2:
            t = sitk.Similarity2DTransform(float(params[0]), float(params[1]), tuple(params[2:4]), tuple(center))
        else:
            t = sitk.Similarity3DTransform()
            t.SetCenter(tuple(center))
            t.SetParameters(tuple(params[:7]))
    elif kind == "AffineTransform":
        a = params[: dim * dim].reshape(dim, dim)
        t = sitk.AffineTransform(dim)
        t.SetCenter(tuple(center))
        t.SetMatrix(tuple(a.reshape(-1)))
        t.SetTranslation(tuple(params[dim * dim : dim * dim + dim]))
    elif kind in ("BSplineTransform", "RecursiveBSplineTransform"):
        t = _elastix_bspline(path, p, dim, params)
    else:
        raise TransformError(
            f"{path}: (Transform {kind!r}) is not supported here (Translation, Euler, Similarity, Affine, "
            "BSpline are); apply it with transformix, or export it as an ITK transform"
        )
    initial = p.get("InitialTransformParametersFileName", ["NoInitialTransform"])[0]
    if initial not in ("NoInitialTransform", "", None):
        ipath = Path(str(initial))
        if not ipath.is_absolute():
            ipath = path.parent / ipath
        if not ipath.is_file():
            raise TransformError(
                f"{path}: InitialTransformParametersFileName {initial!r} not found; keep the chain's files together"
            )
        first = _read_elastix(ipath)
        # elastix: T(x) = T_this(T_initial(x)) when HowToCombineTransforms is Compose
        how = str(p.get("HowToCombineTransforms", ["Compose"])[0])
        if how != "Compose":
            raise TransformError(f"{path}: HowToCombineTransforms {how!r} is not supported (only Compose)")
        t = sitk.CompositeTransform([t, first])
    return t


def _elastix_bspline(path: Path, p: dict[str, list[Any]], dim: int, params: np.ndarray) -> Any:
    """elastix's B-spline as ``sitk.BSplineTransform``: the same control-point grid and coefficients.

    elastix's ``GridSize``/``GridIndex``/``GridSpacing``/``GridOrigin``/``GridDirection`` describe the
    coefficient grid (ITK's fixed parameters of a ``BSplineTransform``; the direction written column
    by column, as elastix writes every direction), and ``TransformParameters`` holds the
    coefficients dimension-major (every x, then every y[, then every z]), ITK's parameter order. Both
    map fixed points to moving points: ``T(p) = p + sum_k c_k B(p - g_k)``.
    """
    sitk = _sitk()

    def field(key: str, n: int, default: list[float] | None = None) -> np.ndarray:
        vals = p.get(key, default)
        if vals is None:
            raise TransformError(f"{path}: elastix B-spline field ({key} ...) is missing")
        try:
            arr = np.asarray(vals, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TransformError(f"{path}: ({key} ...) must hold {n} numbers, got {vals}") from exc
        if arr.size != n:
            raise TransformError(f"{path}: ({key} ...) must hold {n} numbers for a {dim}-D B-spline, got {arr.size}")
        return arr

    size = field("GridSize", dim).astype(int)
    index = field("GridIndex", dim, [0.0] * dim)
    spacing = field("GridSpacing", dim)
    origin = field("GridOrigin", dim)
    direction = field("GridDirection", dim * dim, list(np.eye(dim).reshape(-1))).reshape(dim, dim).T
    order = int(p.get("BSplineTransformSplineOrder", [3])[0])
    if np.any(index != 0):
        raise TransformError(f"{path}: (GridIndex {' '.join(f'{v:g}' for v in index)}) is not supported (only 0)")
    if order not in (1, 2, 3):
        raise TransformError(f"{path}: (BSplineTransformSplineOrder {order}) is not supported (1, 2 or 3)")
    if str(p.get("UseCyclicTransform", ["false"])[0]).lower() == "true":
        raise TransformError(f"{path}: (UseCyclicTransform \"true\") is not supported")
    if np.any(size < order + 1) or np.any(spacing <= 0):
        raise TransformError(f"{path}: (GridSize ...) / (GridSpacing ...) do not describe a {dim}-D grid")
    n = dim * int(np.prod(size))
    if params.size != n:
        raise TransformError(
            f"{path}: (TransformParameters ...) holds {params.size} values; a {'x'.join(map(str, size))} grid "
            f"in {dim}-D needs {n}"
        )
    t = sitk.BSplineTransform(dim, order)
    t.SetFixedParameters(tuple(float(v) for v in np.concatenate([size, origin, spacing, direction.reshape(-1)])))
    t.SetParameters(tuple(float(v) for v in params))
    return t


def points_array(points: Any, dimension: int, what: str = "points") -> np.ndarray:
    """Validate a ``(n, dimension)`` point array in mm (private helper shared across modules)."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != dimension:
        raise TransformError(
            f"{what} must be an (n, {dimension}) array of (x, y[, z]) rows in mm, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise TransformError(f"{what} contain NaN or infinity")
    return arr

