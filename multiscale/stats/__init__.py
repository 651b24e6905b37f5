"""Statistics on a study's results: group comparisons, mixed models, outcome and survival, lesion summaries.

A thin layer over scipy, statsmodels and lifelines that reads the tidy results table of a study run
(one row per subject x region x map x metric) joined to the study's design (covariates and
outcomes per subject) and returns tidy tables: one row per metric (or coefficient) with its effect
size, confidence interval and p-value. ``multiscale stats OUTPUT --by group`` prints the same.

>>> from multiscale.stats import compare_groups, cox                           # doctest: +SKIP
>>> compare_groups("demo_output", by="group", design="design.csv")             # doctest: +SKIP

Modules: :mod:`.design` (the design joined to the results), :mod:`.groups` (Welch, Mann-Whitney,
ANOVA/Kruskal with post-hoc tests, Hedges' g), :mod:`.multiple` (Holm/BH across metrics),
:mod:`.outcome` (correlation, Kaplan-Meier, log-rank, Cox), :mod:`.mixed` (MixedLM, variance
components), :mod:`.lesions` (lesion-level summaries), :mod:`.command` (the ``stats`` command).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "compare_groups": "groups", "welch_t": "groups", "hedges_g": "groups",
    "cox": "outcome", "correlate": "outcome", "kaplan_meier": "outcome", "logrank": "outcome",
    "mixed_model": "mixed", "variance_components": "mixed", "compare_groups_mixed": "mixed",
    "adjust_pvalues": "multiple",
    "lesion_summary": "lesions", "lesion_concordance": "lesions",
    "subject_table": "design", "measurements": "design", "as_design": "design", "check_design": "design",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"multiscale.stats.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'multiscale.stats' has no attribute {name!r}")
