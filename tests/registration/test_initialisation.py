"""Issue 13: 2-D sections on real-looking backgrounds are found whatever their rotation or mirror,
the search is deterministic, and register never silently returns something worse than its start.

The sections (``_synthetic.section_pair``) are an asymmetric textured outline on white glass
(brightfield histology, tissue darker; the moving one another stain) or on black (fluorescence
against an MSI-like remap), 128 x 128 pixels of 40 um; the truth is a known rigid map (plus a
mirror for a section mounted face down), so the error is exact.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.errors import MultiscaleWarning
from multiscale.image import spatial_image
from multiscale.registration import RegistrationWarning, Transform, identity, methods, register
from multiscale.registration import _search as search_mod
from multiscale.registration import _synthetic as S
from multiscale.registration._multires import to_working

PX = 5.12 / 128


def _register_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = register(*args, **kwargs)
    return t, [w for w in caught if issubclass(w.category, RegistrationWarning)]


@pytest.mark.parametrize(
    ("angle", "flip"),
    [(90.0, False), (180.0, False), (270.0, False), (35.0, True)],
    ids=["rot90", "rot180", "rot270", "mirrored"],
)
def test_bright_background_section_found_at_any_rotation_or_mirror(angle, flip):
    fixed, moving, truth, pts = S.section_pair(angle, (0.2, -0.15), flip, background="bright")
    start = S.mean_error(identity(2), truth, pts)
    t, warned = _register_quietly(fixed, moving)  # defaults: transform="auto", Mattes MI
    # before issue 13 the unrefined search picked 90-270 degrees wrong here (errors of 25-35 px);
    # now 0.01-0.02 px is measured; the bound is a pixel, as the issue asks
    assert start > 10 * PX
    assert S.mean_error(t, truth, pts) < 1.0 * PX
    init = t.info["initialisation"]
    assert init["flipped"] is flip
    assert init["centres"] == "tissue centroids"
    assert t.info["tissue"]["fixed"]["bright"] and t.info["tissue"]["moving"]["bright"]
    assert not warned and t.info["warnings"] == []
    qc = t.info["quality_check"]
    assert qc["metric_after"] < qc["metric_initial"] and qc["supported"] and not qc["returned_initial"]
    q = t.transform_points([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    assert bool(np.linalg.det(np.c_[q[1] - q[0], q[2] - q[0]]) < 0) is flip  # a mirror reverses orientation


@pytest.mark.parametrize(("angle", "flip"), [(270.0, False), (120.0, True)], ids=["rot270", "mirrored"])
def test_dark_background_fluorescence_to_msi_like(angle, flip):
    fixed, moving, truth, pts = S.section_pair(angle, (-0.1, 0.25), flip, background="dark")
    t, warned = _register_quietly(fixed, moving, transform="affine")
    assert S.mean_error(t, truth, pts) < 1.0 * PX
    assert not t.info["tissue"]["fixed"]["bright"] and not t.info["tissue"]["moving"]["bright"]
    assert t.info["initialisation"]["flipped"] is flip
    assert not warned


def test_histology_against_fluorescence_with_correlation():
    # opposite polarities: with a correlation metric the bright-background image is inverted first
    fixed, _, truth, pts = S.section_pair(180.0, (0.1, 0.1), False, background="bright")
    _, moving, _, _ = S.section_pair(180.0, (0.1, 0.1), False, background="dark")
    t, _ = _register_quietly(fixed, moving, transform="rigid", metric="ncc")
    assert t.info["tissue"]["inverted"] == ["fixed"]
    assert S.mean_error(t, truth, pts) < 1.0 * PX


def test_search_is_deterministic_across_runs_and_threads():
    fixed, moving, truth, pts = S.section_pair(90.0, (0.2, -0.15), True, background="bright")
    a, _ = _register_quietly(fixed, moving, transform="rigid", seed=7, threads=1)
    b, _ = _register_quietly(fixed, moving, transform="rigid", seed=7, threads=1)
    c, _ = _register_quietly(fixed, moving, transform="rigid", seed=7, threads=2)
    # same seed, same threads: bit-identical
    assert a.sitk.GetParameters() == b.sitk.GetParameters()
    # the search runs on one thread with every pixel: bit-identical whatever ``threads`` is
    assert a.info["initialisation"]["candidates"] == c.info["initialisation"]["candidates"]
    assert a.info["initialisation"]["angle_deg"] == c.info["initialisation"]["angle_deg"]
    # the stages use the threads asked for; ITK's threaded sums differ in the last bits only
    np.testing.assert_allclose(a.transform_points(pts), c.transform_points(pts), atol=1e-9)
    assert S.mean_error(a, truth, pts) < 1.0 * PX


def test_impossible_pair_returns_the_initial_pose_with_a_warning():
    fixed, _, _, _ = S.section_pair(0.0, (0.0, 0.0), False, background="bright")
    noise = spatial_image(np.random.default_rng(0).random((128, 128)).astype(np.float32), spacing=(PX, PX),
                          origin=(-2.54, -2.54))
    with pytest.warns(RegistrationWarning, match="returning identity"):
        t = register(fixed, noise)
    np.testing.assert_allclose(t.transform_points([[0.3, -0.2]]), [[0.3, -0.2]], atol=1e-12)
    qc = t.info["quality_check"]
    assert qc["returned_initial"] and not qc["supported"] and qc["worse"]
    assert any("no structure matched" in w for w in t.info["warnings"])
    assert t.info["stages_kept"] == []
    assert issubclass(RegistrationWarning, MultiscaleWarning)
    # the caller may insist: the fitted result is kept, still with the warning
    with pytest.warns(RegistrationWarning, match="accept_worse=True"):
        kept = register(fixed, noise, transform="rigid", accept_worse=True)
    assert not kept.info["quality_check"]["returned_initial"]


def test_result_worse_than_given_initial_is_replaced_by_it(monkeypatch):
    fixed, moving, truth, pts = S.section_pair(20.0, (0.2, -0.15), False, background="bright")
    good = register(fixed, moving, transform="rigid", initial=None)
    bad = sitk.TranslationTransform(2, (0.8, 0.0))  # a stage that wanders off by 20 px

    def broken_stage(self, stage, current, outer):
        lin = current.sitk if isinstance(current, Transform) else current
        return sitk.CompositeTransform([sitk.Transform(lin), bad]), 1, "broken on purpose"

    monkeypatch.setattr(methods.Context, "run_stage", broken_stage)
    with pytest.warns(RegistrationWarning, match="worse than the initial transform"):
        t = register(fixed, moving, transform="rigid", initial=good)
    np.testing.assert_allclose(t.transform_points(pts), good.transform_points(pts), atol=1e-12)
    assert t.info["quality_check"]["returned_initial"]
    assert isinstance(t, Transform)


def test_large_poorly_supported_rotation_warns(monkeypatch):
    fixed, moving, _, _ = S.section_pair(120.0, (0.0, 0.0), False, background="bright")
    real = methods.search

    def ambiguous(*args, **kwargs):
        rec = real(*args, **kwargs)
        rec["margin"] = 0.01  # as if the runner-up (another rotation) scored within 1%
        return rec

    monkeypatch.setattr(methods, "search", ambiguous)
    with pytest.warns(RegistrationWarning, match="runner-up"):
        t = register(fixed, moving, transform="rigid")
    assert any("runner-up" in w for w in t.info["warnings"])
    assert not t.info["quality_check"]["returned_initial"]  # a warning, not a refusal


def test_tissue_detection_and_mirror_geometry():
    f_b, _, _, _ = S.section_pair(0.0, background="bright")
    f_d, _, _, _ = S.section_pair(0.0, background="dark")
    sb, sd = to_working(f_b, PX), to_working(f_d, PX)
    pb, pd = search_mod.tissue_polarity(sb), search_mod.tissue_polarity(sd)
    assert pb["bright"] and pb["background"] > 0.9
    assert not pd["bright"] and pd["background"] < 0.1
    tb = search_mod.tissue_image(sb, pb)
    arr = sitk.GetArrayViewFromImage(tb)
    assert arr[:4].max() < 0.1 and arr.max() > 0.8  # background 0, tissue up to 1
    c, frac = search_mod.tissue_centroid(tb)
    assert 0.1 < frac < 0.5 and np.all(np.abs(c) < 1.0)
    # a mirrored image (same pixels, mirrored geometry) is the image seen through the mirror
    centre = np.array([0.3, -0.1])
    mirrored = search_mod.mirror_image(sb, centre)
    via_transform = sitk.Resample(sb, sb, search_mod.mirror_transform(centre), sitk.sitkLinear, 0.0)
    via_geometry = sitk.Resample(mirrored, sb, sitk.Transform(), sitk.sitkLinear, 0.0)
    inner = (slice(10, -10), slice(10, -10))
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(via_geometry)[inner],
                               sitk.GetArrayViewFromImage(via_transform)[inner], atol=1e-5)


def test_tissue_paler_than_grey_glass_is_still_tissue():
    """Unstained stroma on grey glass is brighter than the glass: the tissue image must keep it (a one-sided,
    darker-than-glass test dropped it, and the search then ranked a wrong pose first on such slides)."""
    a = np.full((64, 64), 0.85, np.float32)      # grey glass
    a[6:58, 6:48] = 0.40                          # stained tissue, darker than the glass
    a[6:58, 48:58] = 0.97                         # pale stroma, brighter than the glass
    s = sitk.GetImageFromArray(a)
    pol = search_mod.tissue_polarity(s)
    assert pol["bright"] and abs(pol["background"] - 0.85) < 0.03
    t = sitk.GetArrayFromImage(search_mod.tissue_image(s, pol))  # a copy: a view would outlive its image
    assert t[:4].max() < 0.05                     # glass is background
    assert t[10:54, 10:44].min() > 0.5            # stained tissue is tissue
    assert t[10:54, 50:56].min() > 0.1            # and so is the pale stroma
