"""Ranking what co-localises with a reference: preprocessing cross-checked against scipy/numpy (the
metaspace-converter definition), planted co-localised ions on top with FDR control, datasets vs stacks,
bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from multiscale.analysis.msi import rank_colocalised
from multiscale.analysis.msi._kernels import median3x3
from multiscale.analysis.msi.colocalisation import (
    block_permutations,
    colocml_preprocess,
    rank_images,
    torus_shifts,
)
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

from ._synthetic import PX_MM, planted_stack, smooth_field, write_imzml


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _reference_preprocess(stack: np.ndarray, q: float = 0.5) -> np.ndarray:
    """metaspace-converter's coloc_ml_preprocessing: scipy median (1, 3, 3), then below the per-image percentile -> 0."""
    out = ndimage.median_filter(stack, size=(1, 3, 3)).reshape(stack.shape[0], -1)
    out[out < np.percentile(out, q * 100, axis=1)[:, None]] = 0
    return out.reshape(stack.shape)


def test_median_and_preprocessing_equal_scipy_and_numpy():
    rng = np.random.default_rng(0)
    a = rng.gamma(1.0, 5.0, (7, 13, 17)).astype(np.float32)
    a[:, :4] = 0  # ties and an all-zero band
    np.testing.assert_array_equal(median3x3(a), ndimage.median_filter(a, size=(1, 3, 3)))
    for q in (0.5, 0.3, 0.0):
        np.testing.assert_array_equal(colocml_preprocess(a, quantile=q), _reference_preprocess(a, q))
    # a domain: quantiles over the domain only, zero outside
    dom = np.zeros((13, 17), bool)
    dom[2:11, 3:15] = True
    masked = np.where(dom, a, 0)
    ref = ndimage.median_filter(masked, size=(1, 3, 3))
    vals = ref[:, dom]
    thr = np.percentile(vals, 50, axis=1)
    want = np.where(dom[None] & (ref >= thr[:, None, None]), ref, 0)
    np.testing.assert_array_equal(colocml_preprocess(a, dom), want)
    # other window sizes fall back to scipy
    np.testing.assert_array_equal(colocml_preprocess(a, median_size=5, quantile=0),
                                  ndimage.median_filter(a, size=(1, 5, 5)))


def test_preprocessing_equals_numpy_on_ties_zeros_and_thin_images():
    """The radix selection of the quantile and the clamp-free median rows, against scipy/numpy on shapes
    with one row or column, integer counts (ties), mostly-zero and zero-free images, several quantiles."""
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (31, 23)):
        for zeros in (0.0, 0.3, 0.6, 0.95):
            counts = rng.poisson(3.0, (4, *shape)).astype(np.float32)
            smooth = rng.lognormal(2.0, 2.0, (4, *shape)).astype(np.float32)
            for a in (counts, smooth):
                a = np.where(rng.random(a.shape) < zeros, np.float32(0), a)
                a[0, 0, 0] = -0.0 if a[0, 0, 0] == 0 else a[0, 0, 0]
                np.testing.assert_array_equal(median3x3(a), ndimage.median_filter(a, size=(1, 3, 3)))
                for q in (0.1, 0.5, 0.77, 0.9):
                    np.testing.assert_array_equal(colocml_preprocess(a, quantile=q), _reference_preprocess(a, q))
    # negative values take numpy's selection: still equal
    a = rng.normal(0.0, 1.0, (3, 11, 13)).astype(np.float32)
    np.testing.assert_array_equal(colocml_preprocess(a), _reference_preprocess(a))


def test_shuffles_are_permutations_that_keep_tiles_and_shifts():
    dom = np.ones((12, 12), bool)
    p = block_permutations(dom, 4, 5, seed=2)
    grid = np.arange(144).reshape(12, 12)
    for row in p:
        assert sorted(row.tolist()) == list(range(144))
        moved = row.reshape(12, 12)
        # each 4x4 tile comes from one 4x4 tile, offsets kept
        tile = moved[:4, :4]
        assert np.array_equal(tile - tile[0, 0], grid[:4, :4])
    t = torus_shifts(dom, 3, 10, seed=1)
    for row in t:
        img = row.reshape(12, 12)
        dy, dx = (0 - img[0, 0] // 12) % 12, (0 - img[0, 0] % 12) % 12
        assert np.array_equal(img, np.roll(grid, (dy, dx), axis=(0, 1)))
        assert min(dy, 12 - dy) >= 3 or min(dx, 12 - dx) >= 3


@pytest.mark.parametrize("shape", [(9, 13), (3, 7, 5)])
def test_torus_shifts_of_a_partial_domain_follow_the_wrapping_formula(shape):
    # each shift of each plane: domain pixel (z, y, x) takes grid pixel (z, (y - dy) mod ny, (x - dx) mod nx)
    rng = np.random.default_rng(3)
    dom = rng.random(shape) < 0.6
    t = torus_shifts(dom, 2, 12, seed=4)
    planes = dom.reshape(-1, *shape[-2:])
    nz, ny, nx = planes.shape
    z, y, x = np.unravel_index(np.flatnonzero(planes.ravel()), planes.shape)
    assert t.shape == (12, z.size)
    for row in t:
        sz, sy, sx = np.unravel_index(row, planes.shape)
        assert np.array_equal(sz, z)
        dy, dx = (y - sy) % ny, (x - sx) % nx
        assert np.all(dy == dy[0]) and np.all(dx == dx[0])  # one shift for the whole domain
        assert min(dy[0], ny - dy[0]) >= 2 or min(dx[0], nx - dx[0]) >= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_colocalised_ions_rank_on_top_with_fdr_control(seed):
    stack, reference, coloc = planted_stack(seed, shape=(56, 56), n_coloc=5, n_null=60)
    ranked = rank_images(stack, reference, n_permutations=100, seed=seed)
    assert list(ranked.columns[:5]) == ["mz", "feature", "similarity", "p_value", "q_value"]
    assert ranked["similarity"].is_monotonic_decreasing
    assert set(ranked["mz"].head(5)) == set(coloc)  # the planted ones, on top
    assert (ranked.set_index("mz").loc[coloc, "q_value"] < 0.05).all()
    false = ranked[(ranked["q_value"] < 0.05) & ~ranked["mz"].isin(coloc)]
    assert len(false) <= 2  # unrelated ions: at most a couple of the 60 (the FDR is 5 %)
    assert ranked.attrs["n_permutations"] == 100 and ranked.attrs["null"] == "torus"


def test_p_values_are_calibrated_on_independent_smooth_fields():
    """No ion is related to the reference: about 5 % of p-values below 0.05 and 1 % below 0.01 on smooth
    fields (sigma 4 px; measured 5.4 % and 0.6 %; the old default, excluding shifts shorter than twice the
    correlation length, gave 6.6-8.5 % and 3.1-4.4 % on such fields). On grids only a dozen correlation lengths
    wide even the per-ion permutation p-value scatters more (7 % below 0.05 at 48 x 48 px, sigma 4)."""
    p = []
    for seed in range(6):
        rng = np.random.default_rng(200 + seed)
        ref = smooth_field(rng, (96, 96), 4.0)
        ions = np.stack([smooth_field(rng, (96, 96), 4.0) for _ in range(80)])
        stack = spatial_image(ions, spacing=(PX_MM, PX_MM), dims=("c", "y", "x")).assign_coords(c=np.arange(80.0))
        ranked = rank_images(stack, spatial_image(ref, spacing=(PX_MM, PX_MM)), n_permutations=100, seed=seed)
        p.append(ranked["p_value"].to_numpy())
    p = np.concatenate(p)
    assert 0.03 <= (p < 0.05).mean() <= 0.07
    assert (p < 0.01).mean() <= 0.02


def test_tile_null_and_pearson_are_available_and_sane():
    stack, reference, coloc = planted_stack(4, shape=(48, 48), n_coloc=3, n_null=20)
    r = rank_images(stack, reference, null="tiles", metric="pearson", block=6)
    assert set(r["mz"].head(3)) == set(coloc)
    pre = colocml_preprocess(np.asarray(stack.values), quantile=0.5).reshape(stack.sizes["c"], -1)
    ref = colocml_preprocess(np.asarray(reference.values)[None])[0].ravel()
    want = [np.corrcoef(row, ref)[0, 1] for row in pre]
    got = r.set_index("mz").loc[stack.coords["c"].values, "similarity"].to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def _imzml(tmp_path, shape=(20, 22), seed=5):
    rng = np.random.default_rng(seed)
    ref = smooth_field(rng, shape)
    mz = np.array([420.1234, 544.1813, 600.5, 700.25, 760.5851, 812.7])
    imgs = np.stack([200 * ref, 100 * smooth_field(rng, shape), 150 * (0.7 * ref + 0.3 * smooth_field(rng, shape)),
                     90 * smooth_field(rng, shape), 50 * smooth_field(rng, shape), 70 * smooth_field(rng, shape)])
    imgs = np.clip(imgs * (1 + 0.2 * rng.normal(size=imgs.shape)), 0, None)
    path = write_imzml(tmp_path / "coloc.imzML", mz, imgs, noise_peaks=30, seed=seed)
    from multiscale.io import read_imzml

    return read_imzml(path), mz, ref


def test_dataset_ranking_equals_stack_ranking_and_is_batch_invariant(tmp_path):
    ds, mz, ref = _imzml(tmp_path)
    reference = ds.ion_image(mz[0], tol=5)
    a = rank_colocalised(ds, reference, features=mz[1:], tol=5)
    b = rank_colocalised(ds, reference, features=mz[1:], tol=5, batch_bytes=1)  # one feature per pass
    stack = ds.ion_images(mz[1:], tol=5)
    c = rank_colocalised(stack, reference)
    for col in ("mz", "similarity", "p_value", "q_value"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-6)
        np.testing.assert_allclose(a[col].to_numpy(float), c[col].to_numpy(float), rtol=1e-5)
    assert a["mz"].iloc[0] == pytest.approx(600.5)
    # default features: the dataset's own feature list (mean spectrum + peak picking)
    auto = rank_colocalised(ds, reference, n_permutations=20)
    assert np.min(np.abs(auto["mz"].iloc[0] - mz[[0, 2]])) < 0.01
    # a mask restricts the domain
    m = np.zeros(ds.shape, bool)
    m[2:18, 2:20] = True
    masked = rank_colocalised(ds, reference, features=mz[1:], mask=m, n_permutations=20)
    assert (masked["n_pixels"] == m.sum()).all()


def test_bad_inputs_are_refused_with_the_fix(tmp_path):
    ds, mz, ref = _imzml(tmp_path)
    other = spatial_image(np.ones((20, 22)), spacing=PX_MM * 2)
    with pytest.raises(AnalysisError, match="another grid.*resample"):
        rank_colocalised(ds, other, features=mz)
    with pytest.raises(AnalysisError, match="resampling belongs to registration"):
        rank_colocalised(ds, other, features=mz, transform=object())
    same = ds.ion_image(mz[0])
    assert len(rank_colocalised(ds, same, features=mz[:2], transform=object(), n_permutations=5)) == 2
    with pytest.raises(AnalysisError, match="zero peaks"):
        rank_colocalised(ds, same, features=[])
    with pytest.raises(AnalysisError, match="shape"):
        rank_colocalised(ds, np.ones((3, 3)), features=mz)
    with pytest.raises(AnalysisError, match="constant"):
        rank_colocalised(ds, same * 0, features=mz)
    with pytest.raises(AnalysisError, match="channels"):
        rank_colocalised(ds, ds.ion_images(mz[:2]), features=mz)


def test_row_sums_of_squares_match_exact_sums():
    import math

    from multiscale.analysis.msi._kernels import _sum_squares

    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 40_003):
        v = (rng.gamma(2.0, 50.0, n) * (rng.random(n) < 0.3)).astype(np.float32)
        v[: n // 5] = -0.0  # a negative zero is a zero
        exact = math.fsum(float(x) * float(x) for x in v)
        assert _sum_squares(v) == pytest.approx(exact, rel=1e-14, abs=0.0)


def test_order_statistic_pairs_equal_a_sort():
    from multiscale.analysis.msi._kernels import _kth_pair_nonnegative, _radix_kth

    rng = np.random.default_rng(11)
    hist = np.empty(16384, dtype=np.int32)
    cases = [
        rng.gamma(2.0, 50.0, 4001),                     # dense, clustered around the median
        np.round(rng.gamma(1.0, 3.0, 997)),             # many ties, zeros
        np.where(rng.random(500) < 0.7, 0.0, rng.random(500)),
        np.r_[np.full(10, 5.0), 1e-30, 3e38, np.inf],   # far apart: the pair spans buckets
        np.array([7.0]),
    ]
    for v in cases:
        v = v.astype(np.float32)
        v[: v.size // 7] *= -0.0 if v.size > 7 else 1.0  # some -0.0 (counts as 0)
        want = np.sort(v + np.float32(0.0))
        cand = np.empty(v.size, dtype=np.float32)
        for r in sorted({r for r in (0, 1, v.size // 2, v.size - 2, v.size - 1) if 0 <= r < v.size}):
            q0, q1 = _kth_pair_nonnegative(v, r, hist, cand)
            assert q0 == want[r] and q1 == want[min(r + 1, v.size - 1)], (v.size, r)
            assert _radix_kth((v + np.float32(0.0)).view(np.uint32), r, hist, np.uint32(0), 0) == want[r]


@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_scores_equal_the_matrix_product(threads, monkeypatch):
    # mostly-zero rows are scored over their non-zero pixels only: the same similarities and null as the dense
    # product (float32 sums within slabs of pixels, so equal to rounding), all-zero rows NaN, NaN propagated
    import multiscale.analysis.msi.colocalisation as coloc

    monkeypatch.setattr(coloc, "kernel_threads", lambda limit=4: threads)
    monkeypatch.setattr(coloc, "_SPARSE_BLOCK", 37)  # many slabs, one ending mid-row
    rng = np.random.default_rng(5)
    shape = (30, 41)
    ref = smooth_field(rng, shape, 3.0)
    dom = np.ones(shape, bool)
    dom[:3] = False
    _, _, _, scorer = coloc._reference_null(ref, dom, "torus", None, 25, 1, 3, 0.5, True, "cosine")
    m = int(dom.sum())
    n = 150
    f = (rng.gamma(2.0, 10.0, (n, m)) * (rng.random((n, m)) < rng.uniform(0.0, 0.3, (n, 1)))).astype(np.float32)
    f[3] = 0.0
    f[4, : m // 2] = -0.0
    f[5, 7] = np.nan
    f[6] = rng.gamma(2.0, 10.0, m)  # one dense row
    sumsq = np.einsum("ij,ij->i", f, f, dtype=np.float64)
    nnz = np.count_nonzero(f, axis=1)
    assert coloc._sparse_pays(f.shape, int(nnz.sum()), 100)  # with 100 shuffles this mix goes sparse
    raw_obs, raw_null = scorer._sparse(f)
    np.testing.assert_allclose(raw_obs, f.astype(np.float64) @ scorer.r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw_null, f.astype(np.float64) @ scorer.rp, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(coloc, "_sparse_pays", lambda *a: True)
    obs_s, null_s = scorer(f, sumsq, nnz)
    monkeypatch.setattr(coloc, "_sparse_pays", lambda *a: False)
    obs_d, null_d = scorer(f, sumsq, nnz)
    assert np.isnan(obs_s[3]) and np.isnan(null_s[3]).all() and np.isnan(obs_s[5])
    np.testing.assert_allclose(obs_s, obs_d, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(null_s, null_d, rtol=1e-5, atol=1e-7)


def test_sparse_scores_are_chosen_by_density():
    from multiscale.analysis.msi.colocalisation import _sparse_pays

    assert _sparse_pays((3334, 40_000), int(0.07 * 3334 * 40_000), 100)  # workload A after thresholding
    assert not _sparse_pays((3334, 40_000), int(0.5 * 3334 * 40_000), 100)  # half the pixels kept
    assert not _sparse_pays((10, 100), 50, 0)  # no shuffles: one product either way
    assert not _sparse_pays((0, 100), 0, 100)


def test_pooled_null_counts_from_sorted_halves_equal_one_sort():
    from multiscale.analysis.msi.colocalisation import _sorted_parts

    rng = np.random.default_rng(8)
    values = np.round(rng.normal(size=300_001), 2)  # ties
    z = np.concatenate([rng.normal(size=50), values[:5], [-np.inf, np.inf]])
    parts = _sorted_parts(values.copy())
    assert sum(p.size for p in parts) == values.size and all(np.all(np.diff(p) >= 0) for p in parts)
    below = sum(np.searchsorted(p, z, side="left") for p in parts)
    np.testing.assert_array_equal(below, np.searchsorted(np.sort(values), z, side="left"))


def test_reference_nulls_are_reused_within_a_byte_budget(monkeypatch):
    import multiscale.analysis.msi.colocalisation as coloc

    monkeypatch.setattr(coloc, "_NULL_CACHE", {})
    rng = np.random.default_rng(2)
    refs = [smooth_field(rng, (40, 50), 2.0) for _ in range(3)]
    dom = np.ones((40, 50), bool)
    args = ("torus", None, 30, 0, 3, 0.5, True, "cosine")
    one = coloc._reference_null(refs[0], dom, *args)
    assert coloc._reference_null(refs[0], dom, *args)[3] is one[3]  # same reference and settings: kept
    per = one[3].rp.nbytes  # 2,000 pixels x 30 shifts
    monkeypatch.setattr(coloc, "_NULL_CACHE_BYTES", 2 * per)
    coloc._reference_null(refs[1], dom, *args)
    coloc._reference_null(refs[2], dom, *args)  # a third would exceed the budget: the oldest goes
    assert len(coloc._NULL_CACHE) == 2
    assert coloc._reference_null(refs[0], dom, *args)[3] is not one[3]
    monkeypatch.setattr(coloc, "_NULL_CACHE_BYTES", per // 2)  # larger than the budget: not kept at all
    coloc._NULL_CACHE.clear()
    coloc._reference_null(refs[0], dom, *args)
    assert not coloc._NULL_CACHE


def test_preprocessed_rows_report_their_non_zero_counts():
    from multiscale.analysis.msi._kernels import colocml_rows

    rng = np.random.default_rng(4)
    imgs = rng.gamma(2.0, 10.0, (6, 9, 11)).astype(np.float32)
    imgs[1] *= rng.random((9, 11)) < 0.2  # mostly zero: the quantile is 0, nothing to threshold
    imgs[2] -= 15.0  # negative values: numpy's selection, then the mask
    imgs[3, :4] = -0.0
    imgs[4, 2, 3] = np.nan
    imgs[5] = 0.0
    dom = np.flatnonzero(rng.random(99) < 0.8)
    for median in (True, False):
        nnz = np.full(6, -1, np.int64)
        rows = colocml_rows(imgs, dom, 0.5, median=median, nnz=nnz)
        np.testing.assert_array_equal(nnz, np.count_nonzero(rows, axis=1))
