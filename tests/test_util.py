"""Small shared helpers of ``multiscale._util``."""

from __future__ import annotations

import numpy as np


def test_large_buffer_is_a_writeable_aligned_array_released_with_it():
    import gc
    import weakref

    from multiscale._util import large_buffer

    small = large_buffer(10, np.float64)
    assert small.shape == (10,) and small.dtype == np.float64
    big = large_buffer(3 << 20, np.float32)  # 12 MB: the huge-page path
    assert big.shape == (3 << 20,) and big.dtype == np.float32 and big.flags.writeable and big.flags.c_contiguous
    assert big.__array_interface__["data"][0] % (2 << 20) == 0  # aligned for 2 MB pages
    big[:] = 1.5
    assert float(big.sum(dtype=np.float64)) == 1.5 * (3 << 20)
    ref = weakref.ref(big.base)
    del big
    gc.collect()
    assert ref() is None  # the mapping goes with the array
