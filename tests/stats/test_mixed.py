"""Mixed models against R's lme4 (dietox), variance components against the ANOVA estimators, lesion summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multiscale.errors import StatsError
from multiscale.stats import lesion_concordance, lesion_summary, measurements, mixed_model, variance_components

statsmodels = pytest.importorskip("statsmodels")
DIETOX = Path(statsmodels.__file__).parent / "regression" / "tests" / "results" / "dietox.csv"


@pytest.mark.skipif(not DIETOX.is_file(), reason="statsmodels' copy of the dietox data is not installed")
def test_random_intercept_matches_lme4_on_dietox():
    # statsmodels' "Comparing R lmer to statsmodels MixedLM" example (R 3.5.1, lme4 1.1):
    # lmer(Weight ~ Time + (1 | Pig), data = dietox): (Intercept) 15.72352 (SE 0.78805), Time 6.94251 (SE 0.03339);
    # Pig variance 40.39, residual variance 11.37
    data = pd.read_csv(DIETOX)
    fit = mixed_model(data, formula="Weight ~ Time", groups="Pig").set_index("term")
    assert fit.loc["Intercept", "estimate"] == pytest.approx(15.72352, abs=1e-3)
    assert fit.loc["Intercept", "se"] == pytest.approx(0.78805, abs=1e-3)
    assert fit.loc["Time", "estimate"] == pytest.approx(6.94251, abs=1e-4)
    assert fit.loc["Time", "se"] == pytest.approx(0.03339, abs=1e-4)
    assert fit.loc["Pig variance", "estimate"] == pytest.approx(40.39, abs=0.01)
    assert fit.loc["residual variance", "estimate"] == pytest.approx(11.37, abs=0.01)
    assert fit.groups.iloc[0] == 72 and fit.n.iloc[0] == 861 and fit.converged.all()


def _anova_components(y: np.ndarray) -> tuple[float, float, float]:
    """Balanced two-level nested ANOVA (a animals x b tumours x n sections): method-of-moments components."""
    a, b, n = y.shape
    grand = y.mean()
    m_ab = y.mean(axis=2)
    m_a = y.mean(axis=(1, 2))
    ms_a = b * n * ((m_a - grand) ** 2).sum() / (a - 1)
    ms_b = n * ((m_ab - m_a[:, None]) ** 2).sum() / (a * (b - 1))
    ms_e = ((y - m_ab[..., None]) ** 2).sum() / (a * b * (n - 1))
    return (ms_a - ms_b) / (b * n), (ms_b - ms_e) / n, ms_e


def test_variance_components_equal_the_anova_estimators_on_a_balanced_design():
    rng = np.random.default_rng(7)
    a, b, n = 8, 3, 4
    y = (rng.normal(0, 2.0, a)[:, None, None] + rng.normal(0, 1.0, (a, b))[..., None]
         + rng.normal(0, 0.5, (a, b, n)))
    idx = np.indices(y.shape).reshape(3, -1)
    data = pd.DataFrame({"animal": idx[0], "tumour": idx[1], "section": idx[2], "y": y.ravel()})
    vc = variance_components(data, value="y", levels=["animal", "tumour"])
    assert vc.component.tolist() == ["between animal", "between tumour within animal", "residual (within tumour)"]
    ref = _anova_components(y)
    assert min(ref) > 0                       # REML equals the ANOVA estimators when they are all positive
    assert vc.variance.tolist() == pytest.approx(list(ref), rel=2e-3)
    assert vc.fraction.sum() == pytest.approx(1.0)
    assert vc.n_levels.tolist() == [8, 24, 96]
    with pytest.raises(StatsError, match=r"\['sample'\] are not in the table"):
        variance_components(data, value="y", levels=["animal", "sample"])


def _lesion_results() -> pd.DataFrame:
    rows = []
    spec = {"p1": [(3.0, 2.5, 1.0), (1.0, 0.8, 3.0)], "p2": [(4.0, 3.9, 2.0), (2.5, 0.7, 2.0), (0.5, 0.4, 1.0)]}
    for sid, lesions in spec.items():
        for k, (pet, her2, vol) in enumerate(lesions, start=1):
            for m, v in (("pet", pet), ("her2", her2)):
                rows.append({"subject": sid, "analysis": "u", "map": m, "region": f"lesions#{k}", "metric": "suv_mean",
                             "value": v, "units": "SUVbw"})
                rows.append({"subject": sid, "analysis": "u", "map": m, "region": f"lesions#{k}", "metric": "volume_ml",
                             "value": vol, "units": "mL"})
        for m in ("pet", "her2"):
            rows.append({"subject": sid, "analysis": "u", "map": m, "region": "blood", "metric": "suv_mean",
                         "value": 2.0, "units": "SUVbw"})
    return pd.DataFrame(rows)


def test_lesion_summary_fraction_of_lesions_and_of_burden():
    s = lesion_summary(_lesion_results(), metric="suv_mean", lesions="lesions", reference="blood", map="pet")
    s = s.set_index("subject")
    assert s.loc["p1", "n_lesions"] == 2 and s.loc["p1", "fraction_positive"] == 0.5
    assert s.loc["p1", "burden_fraction_positive"] == pytest.approx(1.0 / 4.0)
    assert s.loc["p2", "fraction_positive"] == pytest.approx(2 / 3)
    assert s.loc["p2", "burden_fraction_positive"] == pytest.approx(4.0 / 5.0)
    with pytest.raises(StatsError, match="either reference="):
        lesion_summary(_lesion_results(), metric="suv_mean", lesions="lesions")


def test_lesion_concordance_of_two_tracers():
    c = lesion_concordance(_lesion_results(), metric="suv_mean", map_a="pet", map_b="her2", lesions="lesions",
                           reference="blood")
    assert c["n_lesions"] == 5 and c["n_subjects"] == 2
    assert c["spearman"] == pytest.approx(0.9)              # ranks 4,2,5,3,1 vs 4,3,5,2,1: 1 - 6 x 2 / 120
    assert c["agreement"] == pytest.approx(4 / 5)            # lesion p2#2 positive in pet, not in her2


def test_lesion_rows_feed_a_mixed_model():
    rows = _lesion_results()
    long = measurements(rows, {"p1": {"group": "a"}, "p2": {"group": "b"}}, metrics="suv_mean")
    assert set(long.lesion) == {"", "1", "2", "3"} and "group" in long.columns


def test_group_effect_from_lesions_within_animals_equals_the_animal_means_analysis():
    """Balanced design (6 animals x 4 lesions): the REML group effect is the difference of the animal means and
    its standard error that of the pooled two-sample t on animal means (the classical split-plot identity)."""
    from multiscale.stats import compare_groups_mixed

    rng = np.random.default_rng(11)
    rows, design = [], {}
    for i in range(6):
        group = "treated" if i >= 3 else "control"
        design[f"m{i}"] = {"group": group}
        level = 2.0 + (0.8 if group == "treated" else 0.0) + rng.normal(0, 0.4)
        for k in range(1, 5):
            rows.append({"subject": f"m{i}", "analysis": "u", "map": "pet", "region": f"lesions#{k}",
                         "metric": "suv_mean", "value": level + rng.normal(0, 0.2), "units": "SUVbw"})
    res = compare_groups_mixed(pd.DataFrame(rows), by="group", design=design).iloc[0]
    means = pd.DataFrame(rows).groupby("subject").value.mean()
    a, b = means[[f"m{i}" for i in range(3)]], means[[f"m{i}" for i in range(3, 6)]]
    assert res.comparison == "treated - control" and res.n_units == 6 and res.n_rows == 24
    assert res.estimate == pytest.approx(b.mean() - a.mean(), abs=1e-6)
    se_t = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2 * (2 / 3))
    assert (res.ci_high - res.ci_low) / (2 * 1.959964) == pytest.approx(se_t, rel=1e-3)
    one = compare_groups_mixed(pd.DataFrame(rows).query("region == 'lesions#1'"), by="group", design=design)
    assert not one.computable.iloc[0] and "no repeated measures" in one.note.iloc[0]
