"""Transform: direction, composition order, inverse, files (ITK, sidecar, elastix, displacement fields)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.registration import Transform, TransformError, compose, identity, linear_parts


def _rot(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def test_transform_points_matches_simpleitk_and_formula():
    t = sitk.Euler2DTransform((1.0, 2.0), np.deg2rad(30.0), (0.5, -0.25))
    pts = np.random.default_rng(0).uniform(-5, 5, (20, 2))
    ours = Transform(t).transform_points(pts)
    ref = np.array([t.TransformPoint(tuple(p)) for p in pts])
    formula = (pts - [1.0, 2.0]) @ _rot(30.0).T + [1.0, 2.0] + [0.5, -0.25]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    np.testing.assert_allclose(ours, formula, atol=1e-12)
    # a single point keeps its shape; a non-linear transform goes point by point
    assert Transform(t).transform_points([0.0, 0.0]).shape == (2,)
    bsp = sitk.BSplineTransform(2, 3)
    assert not Transform(bsp).is_linear
    np.testing.assert_allclose(Transform(bsp).transform_points(pts), pts)


def test_compose_order_equals_sequential_application():
    a = Transform(sitk.TranslationTransform(2, (1.0, 0.0)))
    b = Transform(sitk.Euler2DTransform((0.0, 0.0), np.pi / 2))
    c = Transform(sitk.Similarity2DTransform(1.5, 0.1, (0.2, 0.3), (1.0, 1.0)))
    pts = np.random.default_rng(1).uniform(-3, 3, (10, 2))
    seq = c.transform_points(b.transform_points(a.transform_points(pts)))
    np.testing.assert_allclose(a.compose(b, c).transform_points(pts), seq, atol=1e-12)
    np.testing.assert_allclose(compose(a, b, c).transform_points(pts), seq, atol=1e-12)
    np.testing.assert_allclose(Transform.compose(a, b).transform_points(pts),
                               b.transform_points(a.transform_points(pts)), atol=1e-12)
    # the other order differs: the test can fail
    assert not np.allclose(b.compose(a).transform_points(pts), a.compose(b).transform_points(pts))
    with pytest.raises(TransformError, match="3-D"):
        a.compose(identity(3))


def test_inverse_round_trip_and_refusal():
    t = Transform(sitk.Similarity2DTransform(1.3, 0.4, (0.5, -1.0), (2.0, 1.0)))
    pts = np.random.default_rng(2).uniform(-4, 4, (10, 2))
    np.testing.assert_allclose(t.inverse().transform_points(t.transform_points(pts)), pts, atol=1e-12)
    bsp = sitk.BSplineTransform(2, 3)
    with pytest.raises(TransformError, match="no closed-form inverse"):
        Transform(bsp).inverse()


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_save_load_round_trip_with_sidecar(tmp_path, suffix):
    e = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, 6.0))
    bsp = sitk.BSplineTransformInitializer(sitk.Image([8, 8, 8], sitk.sitkFloat32), [3, 3, 3])
    params = np.random.default_rng(3).normal(0, 0.1, len(bsp.GetParameters()))
    bsp.SetParameters(tuple(params))
    t = Transform(e, {"metric_after": -1.25, "stages_kept": ["rigid"]}).compose(Transform(bsp))
    t.info.update({"note": "round trip", "array": np.arange(3)})
    path = t.save(tmp_path / f"t{suffix}")
    side = json.loads((tmp_path / f"t{suffix}.json").read_text())
    assert side["direction"].startswith("fixed -> moving") and side["info"]["note"] == "round trip"
    back = Transform.load(path)
    pts = np.random.default_rng(4).uniform(-2, 8, (15, 3))
    np.testing.assert_allclose(back.transform_points(pts), t.transform_points(pts), atol=1e-9)
    assert back.info["note"] == "round trip" and back.info["array"] == [0, 1, 2]
    assert not list(tmp_path.glob(".t*"))  # no temporary files left behind


def test_save_refuses_unknown_suffix_and_missing_folder(tmp_path):
    t = identity(2)
    with pytest.raises(TransformError, match="suffix"):
        t.save(tmp_path / "t.xyz")
    with pytest.raises(TransformError, match="does not exist"):
        t.save(tmp_path / "nope" / "t.tfm")
    with pytest.raises(TransformError, match="no such transform file"):
        Transform.load(tmp_path / "missing.tfm")
    bad = tmp_path / "bad.tfm"
    bad.write_text("not a transform\n")
    with pytest.raises(TransformError, match="bad.tfm: SimpleITK could not read"):
        Transform.load(bad)


def test_reads_ants_style_matrix_file(tmp_path):
    # ANTs writes its affine as an ITK MatrixOffsetTransformBase .mat file; SimpleITK reads it
    a = sitk.AffineTransform(3)
    a.SetMatrix((1.1, 0.05, 0.0, -0.02, 0.95, 0.01, 0.0, 0.03, 1.02))
    a.SetTranslation((1.0, -2.0, 0.5))
    a.SetCenter((10.0, 5.0, -3.0))
    path = tmp_path / "ants0GenericAffine.mat"
    sitk.WriteTransform(a, str(path))
    back = Transform.load(path)
    pts = np.random.default_rng(5).uniform(-10, 10, (6, 3))
    np.testing.assert_allclose(back.transform_points(pts), Transform(a).transform_points(pts), atol=1e-9)


def test_reads_elastix_parameter_files_with_initial_chain(tmp_path):
    # elastix's Euler2D: p -> R(theta) (p - c) + c + t, parameters (theta, tx, ty)
    (tmp_path / "TransformParameters.0.txt").write_text(
        '(Transform "EulerTransform")\n(NumberOfParameters 3)\n(TransformParameters 0.2 1.5 -0.5)\n'
        '(InitialTransformParametersFileName "NoInitialTransform")\n(HowToCombineTransforms "Compose")\n'
        "(FixedImageDimension 2)\n(MovingImageDimension 2)\n(CenterOfRotationPoint 3.0 4.0)\n"
    )
    (tmp_path / "TransformParameters.1.txt").write_text(
        '(Transform "AffineTransform")\n(NumberOfParameters 6)\n'
        "(TransformParameters 1.1 0.1 -0.05 0.9 0.3 0.2) // a11 a12 a21 a22 tx ty\n"
        f'(InitialTransformParametersFileName "{tmp_path / "TransformParameters.0.txt"}")\n'
        '(HowToCombineTransforms "Compose")\n(FixedImageDimension 2)\n(CenterOfRotationPoint 1.0 1.0)\n'
    )
    pts = np.random.default_rng(6).uniform(-5, 5, (8, 2))
    euler = Transform.load(tmp_path / "TransformParameters.0.txt")
    expected_euler = (pts - [3.0, 4.0]) @ _rot(np.rad2deg(0.2)).T + [3.0, 4.0] + [1.5, -0.5]
    np.testing.assert_allclose(euler.transform_points(pts), expected_euler, atol=1e-12)
    chain = Transform.load(tmp_path / "TransformParameters.1.txt")
    a = np.array([[1.1, 0.1], [-0.05, 0.9]])
    # elastix applies the initial transform first: T(p) = T1(T0(p))
    expected = (expected_euler - [1.0, 1.0]) @ a.T + [1.0, 1.0] + [0.3, 0.2]
    np.testing.assert_allclose(chain.transform_points(pts), expected, atol=1e-12)
    (tmp_path / "TransformParameters.2.txt").write_text(
        '(Transform "SplineKernelTransform")\n(TransformParameters 0 0)\n(FixedImageDimension 2)\n'
    )
    with pytest.raises(TransformError, match=r"TransformParameters.2.txt: \(Transform 'SplineKernelTransform'\) is not supported"):
        Transform.load(tmp_path / "TransformParameters.2.txt")


def test_reads_displacement_field(tmp_path):
    field = np.zeros((6, 7, 2))
    field[..., 0] = 0.5  # x displacement everywhere
    img = sitk.GetImageFromArray(field, isVector=True)
    img.SetSpacing((2.0, 2.0))
    path = tmp_path / "warp.nii.gz"
    sitk.WriteImage(img, str(path))
    t = Transform.load(path)
    np.testing.assert_allclose(t.transform_points([[4.0, 4.0]]), [[4.5, 4.0]], atol=1e-9)


def test_linear_parts_and_bad_points():
    a, b = linear_parts(sitk.Euler2DTransform((1.0, 1.0), np.pi / 2, (0.0, 0.0)))
    np.testing.assert_allclose(a, _rot(90.0), atol=1e-12)
    np.testing.assert_allclose(b, [2.0, 0.0], atol=1e-12)
    with pytest.raises(TransformError, match=r"\(x, y\[, z\]\)"):
        identity(2).transform_points([[1.0, 2.0, 3.0]])
    with pytest.raises(TransformError, match="SimpleITK transform"):
        Transform("not a transform")
