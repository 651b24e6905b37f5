"""Non-negative least squares for many pixels at once: ``min ||A x - b||`` with ``x >= 0`` for every column of ``B``.

:func:`scipy.optimize.nnls` solves one pixel per call; a multi-wavelength image has millions. Two exact-or-converged
vectorised solvers over all pixels of a block:

* **enumeration of active sets** (``n_endmembers <= ENUMERATE_MAX``): the NNLS optimum is the unconstrained
  least-squares solution on its support (Karush-Kuhn-Tucker), so among the ``2**K`` supports the feasible one
  (all coefficients >= 0) with the smallest residual *is* the optimum. Pixels whose unconstrained solution is
  already non-negative are done after one solve; only the others try the smaller supports. Each support costs
  one small solve with the normal matrix ``A_S^T A_S`` shared by all pixels; the residual comes from
  ``||b||^2 - g_S . x_S`` with ``g = A^T b`` computed once. Exact to rounding (cross-checked against scipy in
  the tests).
* **accelerated projected gradient** (FISTA on the normal equations) for more endmembers, iterated until the
  largest change of any coefficient is below ``tol`` times the largest coefficient.

Both take ``B`` as ``(n_wavelengths, n_pixels)`` and return ``X`` ``(n_endmembers, n_pixels)`` and the squared
residual norm per pixel.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["nnls_columns", "ENUMERATE_MAX"]

#: up to this many endmembers the active sets are enumerated (2**K small solves); above, projected gradient
ENUMERATE_MAX = 8


def _enumerate(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    K = A.shape[1]
    M = A.T @ A
    G = A.T @ B                                    # (K, N)
    bb = np.einsum("ij,ij->j", B, B)               # (N,)
    scale = np.abs(G).max(initial=0.0)
    # the unconstrained solution, where it is non-negative, is the optimum (most pixels of a real image)
    x_full = np.linalg.pinv(M) @ G
    tol = 1e-12 * (np.abs(x_full).max(axis=0, initial=0.0) + 1e-300)
    done = np.all(x_full >= -tol, axis=0)
    X = np.where(done[None, :], np.maximum(x_full, 0.0), 0.0)
    R = np.where(done, bb - np.einsum("ij,ij->j", G, x_full), 0.0)
    rest = np.flatnonzero(~done)
    if rest.size:
        Gr, bbr = G[:, rest], bb[rest]
        best_r = bbr.copy()                        # the empty support: x = 0
        best_x = np.zeros((K, rest.size))
        for size in range(1, K):                   # the full support was infeasible for these pixels
            for S in itertools.combinations(range(K), size):
                idx = list(S)
                xs = np.linalg.pinv(M[np.ix_(idx, idx)]) @ Gr[idx]   # least squares on the support
                r = bbr - np.einsum("ij,ij->j", Gr[idx], xs)
                tol = 1e-12 * (np.abs(xs).max(axis=0, initial=0.0) + 1e-300)
                ok = np.all(xs >= -tol, axis=0) & (r < best_r - 1e-12 * (bbr + scale))
                if not ok.any():
                    continue
                best_r = np.where(ok, r, best_r)
                best_x[:, ok] = 0.0
                best_x[np.ix_(idx, np.flatnonzero(ok))] = np.maximum(xs[:, ok], 0.0)
        X[:, rest], R[rest] = best_x, best_r
    return X, np.maximum(R, 0.0)


def _projected_gradient(A: np.ndarray, B: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    M = A.T @ A
    G = A.T @ B
    step = 1.0 / max(float(np.linalg.eigvalsh(M).max()), 1e-300)
    x = np.maximum(np.linalg.lstsq(A, B, rcond=None)[0], 0.0)
    y, t = x.copy(), 1.0
    for _ in range(max_iter):
        x_new = np.maximum(y - step * (M @ y - G), 0.0)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = x_new + ((t - 1.0) / t_new) * (x_new - x)
        change = np.abs(x_new - x).max(initial=0.0)
        x, t = x_new, t_new
        if change <= tol * max(np.abs(x).max(initial=0.0), 1e-300):
            break
    R = A @ x - B
    return x, np.einsum("ij,ij->j", R, R)


def nnls_columns(A: np.ndarray, B: np.ndarray, *, method: str = "auto", tol: float = 1e-10,
                 max_iter: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``min ||A x_j - b_j||_2`` subject to ``x_j >= 0`` for every column ``b_j`` of ``B``.

    Parameters
    ----------
    A : array, shape (L, K)
        Endmember spectra as columns (L wavelengths, K endmembers).
    B : array, shape (L, N)
        One measured spectrum per column (N pixels). Non-finite columns give NaN.
    method : {"auto", "enumerate", "gradient"}
        ``auto`` enumerates the active sets up to :data:`ENUMERATE_MAX` endmembers (exact), else uses an
        accelerated projected gradient.
    tol, max_iter
        Stopping rule of the projected gradient (relative change of the coefficients).

    Returns
    -------
    X : array, shape (K, N)
    rss : array, shape (N,)
        Squared residual norm ``||A x - b||^2`` of each pixel.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> X, rss = nnls_columns(A, np.array([[2.0, -1.0], [1.0, 1.0], [3.0, 0.0]]))
    >>> X.round(6).tolist()   # the second pixel wants a negative first coefficient: clamped at 0
    [[2.0, 0.0], [1.0, 0.5]]
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"A must be (L, K) and B (L, N) with the same L; got {A.shape} and {B.shape}")
    K, N = A.shape[1], B.shape[1]
    if method == "auto":
        method = "enumerate" if K <= ENUMERATE_MAX else "gradient"
    if method not in ("enumerate", "gradient"):
        raise ValueError(f"method={method!r}; use 'auto', 'enumerate' or 'gradient'")
    finite = np.isfinite(B).all(axis=0)
    every = bool(finite.all())
    X = np.full((K, N), np.nan)
    rss = np.full(N, np.nan)
    if not finite.any():
        return X, rss
    Bf = B if every else B[:, finite]
    if method == "enumerate":
        x, r = _enumerate(A, Bf)
    else:
        x, r = _projected_gradient(A, Bf, tol, max_iter)
    if every:
        return x, r
    X[:, finite], rss[finite] = x, r
    return X, rss
