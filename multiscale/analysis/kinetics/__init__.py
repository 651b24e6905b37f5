"""Time: dynamic and quantitative imaging (DCE kinetic models, curves, relaxometry, extravasation).

Modules
-------
aif
    Population arterial input functions (Parker 2006, Georgiou 2019, a bi-exponential rodent form).
models
    Tofts, extended Tofts, Patlak, 2CXM, 2CUM as exact exponential convolutions, vectorised over voxels.
fit
    :func:`fit_dce`: voxel-wise fits (dictionary start + batched Levenberg-Marquardt) chunked on dask.
signal
    Signal to concentration: SPGR with VFA T1 and relaxivity; CT enhancement with a phantom calibration or
    one computed from NIST mass attenuation at an effective energy.
dce, curves, relaxometry, extravasation, change
    The study families: kinetic maps (with optional planted truth beside them), time-activity curves (AUC,
    Cmax/Tmax, half-lives, decay correction to injection, %ID and %ID/g), ADC/IVIM/R2*, intravital
    extravasation, and change from baseline of two sessions (dR2* -> iron -> payload).

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
