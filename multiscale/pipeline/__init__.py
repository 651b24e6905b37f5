"""The study pipeline: study file, per-subject task graphs on dask, results and report.

>>> from multiscale.pipeline import load_study, run_study              # doctest: +SKIP
>>> study = load_study("example_datasets/study.yaml")                  # doctest: +SKIP
>>> run = run_study(study, output="demo_output")                       # doctest: +SKIP
>>> run.completed, run.failed, run.report                              # doctest: +SKIP

The pipeline wires; it computes no number. Modules: :mod:`.spec` (what a study says, parsed),
:mod:`.study` (the YAML schema, errors with line numbers, params bound to each analysis family),
:mod:`.graph` (registration graph and chains), :mod:`.steps` (each step a few lines over one library
call), :mod:`.wiring` (one dask graph per subject), :mod:`.outputs` (a subject's output folder),
:mod:`.runner` (running a study on a client or in process, resume), :mod:`.results` (the tidy
table on disk), :mod:`.report` (HTML) and :mod:`.provenance`. It loops over
:data:`multiscale.io.FORMATS` and :data:`multiscale.analysis.FAMILIES` and never names one.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Study",
    "StudyError",
    "StudyRun",
    "load_study",
    "run_study",
    "collect_results",
    "subject_graph",
    "results_frame",
    "read_results",
]

_LAZY = {
    "Study": "multiscale.pipeline.spec",
    "StudyError": "multiscale.errors",
    "load_study": "multiscale.pipeline.study",
    "StudyRun": "multiscale.pipeline.runner",
    "run_study": "multiscale.pipeline.runner",
    "collect_results": "multiscale.pipeline.runner",
    "subject_graph": "multiscale.pipeline.wiring",
    "results_frame": "multiscale.pipeline.results",
    "read_results": "multiscale.pipeline.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multiscale.pipeline' has no attribute {name!r}")
