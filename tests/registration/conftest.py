"""Synthetic pairs with known transforms for the registration tests (small sizes, made in code)."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.registration import _synthetic as S


def _embed(q):
    return np.c_[q, np.zeros(len(q))]


@pytest.fixture(scope="session")
def pair_2d():
    """128x128 at 50 um, a known affine (12 deg, scale 1.04/0.97, shear) and a non-monotonic remap."""
    ph = S.Phantom(2, 6.4, seed=1)
    sp = 0.05
    org = (-3.2 + sp / 2,) * 2
    fwd, inv = S.affine_true(2, 12.0, (0.15, -0.2), (0.0, 0.0), scale=(1.04, 0.97), shear=0.03)
    fixed = S.sample_image(ph, (128, 128), (sp, sp), org, modality="HISTO")
    moving = S.sample_image(ph, (128, 128), (sp, sp), org, inverse=inv, remap=S.remap_multimodal, modality="FLUO",
                            units="a.u.")
    pts = S.grid_points((12, 12), (0.4, 0.4), (-2.2, -2.2))
    return {"fixed": fixed, "moving": moving, "truth": fwd, "points": pts, "spacing": sp}


@pytest.fixture(scope="session")
def pair_3d():
    """40^3 at 0.4 mm, a known rigid transform (6/-4/9 deg, 0.5/-0.3/0.4 mm) and a remap."""
    ph = S.Phantom(3, 16.0, seed=3)
    sp = 0.4
    org = (-8 + sp / 2,) * 3
    fwd, inv = S.affine_true(3, (6.0, -4.0, 9.0), (0.5, -0.3, 0.4), (0.0, 0.0, 0.0))
    fixed = S.sample_image(ph, (40, 40, 40), (sp,) * 3, org, modality="MR")
    moving = S.sample_image(ph, (40, 40, 40), (sp,) * 3, org, inverse=inv, remap=S.remap_multimodal, modality="PT")
    pts = S.grid_points((6, 6, 6), (1.6, 1.6, 1.6), (-4.0, -4.0, -4.0))
    return {"fixed": fixed, "moving": moving, "truth": fwd, "points": pts, "spacing": sp, "phantom": ph}
