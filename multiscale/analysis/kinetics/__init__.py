"""Time: dynamic and quantitative imaging (DCE kinetic models, curves, relaxometry, extravasation).

Modules
-------
aif
    Population arterial input functions (Parker 2006, Georgiou 2019, a bi-exponential rodent form).
models
    Tofts, extended Tofts, Patlak, 2CXM, 2CUM as exact exponential convolutions, vectorised over voxels.
fit
    :func:`fit_dce`: voxel-wise fits (dictionary start + batched Levenberg-Marquardt) chunked on dask.

Examples
--------
>>> from multiscale.analysis.kinetics import fit_dce, population_aif
>>> callable(fit_dce) and callable(population_aif)
True
"""

from __future__ import annotations

from .aif import population_aif
from .fit import fit_dce

__all__ = ["fit_dce", "population_aif"]
