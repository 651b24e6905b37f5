"""elastix B-spline parameter files: read into a Transform with the same control points and coefficients.

The reference is a known ``sitk.BSplineTransform``; its elastix twin is written the way elastix writes
one (coefficient-grid ``GridSize``/``GridSpacing``/``GridOrigin``, ``GridDirection`` column by column,
coefficients dimension-major), read back, and compared point by point.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.registration import Transform, TransformError


def _known_bspline(dim: int, seed: int, direction: np.ndarray | None = None) -> sitk.BSplineTransform:
    img = sitk.Image([40, 32, 24][:dim], sitk.sitkFloat32)
    img.SetSpacing([0.5, 0.7, 1.1][:dim])
    img.SetOrigin([-3.0, 2.0, 1.5][:dim])
    if direction is not None:
        img.SetDirection(tuple(direction.reshape(-1)))
    t = sitk.BSplineTransformInitializer(img, [5, 4, 3][:dim], 3)
    rng = np.random.default_rng(seed)
    t.SetParameters(tuple(rng.normal(0.0, 0.4, len(t.GetParameters()))))
    return t


def _elastix_text(t: sitk.BSplineTransform, initial: str = "NoInitialTransform", **override: str) -> str:
    coef = t.GetCoefficientImages()[0]
    dim = t.GetDimension()
    d = np.asarray(coef.GetDirection(), float).reshape(dim, dim)
    fields = {
        "Transform": '"BSplineTransform"',
        "NumberOfParameters": str(len(t.GetParameters())),
        "TransformParameters": " ".join(f"{v:.17g}" for v in t.GetParameters()),
        "InitialTransformParametersFileName": f'"{initial}"',
        "HowToCombineTransforms": '"Compose"',
        "FixedImageDimension": str(dim),
        "MovingImageDimension": str(dim),
        "GridSize": " ".join(str(v) for v in coef.GetSize()),
        "GridIndex": " ".join("0" for _ in range(dim)),
        "GridSpacing": " ".join(f"{v:.17g}" for v in coef.GetSpacing()),
        "GridOrigin": " ".join(f"{v:.17g}" for v in coef.GetOrigin()),
        "GridDirection": " ".join(f"{v:.17g}" for v in d.T.reshape(-1)),  # column by column, as elastix writes
        "BSplineTransformSplineOrder": "3",
        "UseCyclicTransform": '"false"',
    }
    fields.update(override)
    return "".join(f"({k} {v})\n" for k, v in fields.items())


def _inside(t: sitk.BSplineTransform, n: int, seed: int) -> np.ndarray:
    coef = t.GetCoefficientImages()[0]
    dim = t.GetDimension()
    size = np.asarray(coef.GetSize(), float)
    # points inside the transform domain (one control point in from each side of the coefficient grid)
    idx = np.random.default_rng(seed).uniform(1.0, size - 2.0, (n, dim))
    return np.array([coef.TransformContinuousIndexToPhysicalPoint(tuple(i)) for i in idx])


@pytest.mark.parametrize("dim", [2, 3])
def test_elastix_bspline_matches_the_known_transform(tmp_path, dim):
    t = _known_bspline(dim, seed=dim)
    path = tmp_path / "TransformParameters.0.txt"
    path.write_text(_elastix_text(t))
    back = Transform.load(path)
    assert back.kind == "BSplineTransform" and not back.is_linear
    pts = _inside(t, 50, seed=1)
    expected = np.array([t.TransformPoint(tuple(p)) for p in pts])
    assert np.abs(expected - pts).max() > 0.1  # the warp is not negligible
    np.testing.assert_allclose(back.transform_points(pts), expected, atol=1e-10)


def test_elastix_bspline_with_a_rotated_grid(tmp_path):
    a = np.deg2rad(25.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = _known_bspline(2, seed=5, direction=rot)
    path = tmp_path / "TransformParameters.0.txt"
    path.write_text(_elastix_text(t))
    pts = _inside(t, 40, seed=2)
    expected = np.array([t.TransformPoint(tuple(p)) for p in pts])
    np.testing.assert_allclose(Transform.load(path).transform_points(pts), expected, atol=1e-10)


def test_elastix_chain_affine_then_bspline(tmp_path):
    # elastix (HowToCombineTransforms "Compose"): the initial transform acts first, T(p) = T_bspline(T_affine(p))
    (tmp_path / "TransformParameters.0.txt").write_text(
        '(Transform "AffineTransform")\n(NumberOfParameters 6)\n(TransformParameters 1.02 0.05 -0.03 0.97 0.4 -0.2)\n'
        '(InitialTransformParametersFileName "NoInitialTransform")\n(HowToCombineTransforms "Compose")\n'
        "(FixedImageDimension 2)\n(MovingImageDimension 2)\n(CenterOfRotationPoint 5.0 10.0)\n"
    )
    t = _known_bspline(2, seed=9)
    (tmp_path / "TransformParameters.1.txt").write_text(_elastix_text(t, initial="TransformParameters.0.txt"))
    chain = Transform.load(tmp_path / "TransformParameters.1.txt")
    a = np.array([[1.02, 0.05], [-0.03, 0.97]])
    pts = _inside(t, 30, seed=3) * 0.9 + np.array([0.5, 1.0])
    after_affine = (pts - [5.0, 10.0]) @ a.T + [5.0, 10.0] + [0.4, -0.2]
    expected = np.array([t.TransformPoint(tuple(p)) for p in after_affine])
    np.testing.assert_allclose(chain.transform_points(pts), expected, atol=1e-10)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"GridIndex": "1 0"}, "GridIndex"),
        ({"UseCyclicTransform": '"true"'}, "UseCyclicTransform"),
        ({"BSplineTransformSplineOrder": "5"}, "BSplineTransformSplineOrder"),
        ({"GridSize": "5"}, "GridSize"),
        ({"TransformParameters": "0 0 0"}, "TransformParameters"),
        ({"HowToCombineTransforms": '"Add"', "InitialTransformParametersFileName": '"TransformParameters.x.txt"'},
         "HowToCombineTransforms|InitialTransformParametersFileName"),
    ],
)
def test_elastix_bspline_unsupported_fields_name_the_file_and_field(tmp_path, override, field):
    t = _known_bspline(2, seed=1)
    path = tmp_path / "TransformParameters.0.txt"
    path.write_text(_elastix_text(t, **override))
    with pytest.raises(TransformError, match=rf"TransformParameters\.0\.txt.*({field})"):
        Transform.load(path)
