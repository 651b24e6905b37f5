"""Outcome statistics against values published from R: Cox (Rossi), correlation (mtcars), log-rank (aml)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.errors import StatsError
from multiscale.stats import correlate, cox, kaplan_meier, logrank

lifelines = pytest.importorskip("lifelines")

# R's `mtcars` (datasets package; Motor Trend 1974): miles per gallon and weight (1000 lbs) of 32 cars
MPG = [21.0, 21.0, 22.8, 21.4, 18.7, 18.1, 14.3, 24.4, 22.8, 19.2, 17.8, 16.4, 17.3, 15.2, 10.4, 10.4, 14.7, 32.4,
       30.4, 33.9, 21.5, 15.5, 15.2, 13.3, 19.2, 27.3, 26.0, 30.4, 15.8, 19.7, 15.0, 21.4]
WT = [2.620, 2.875, 2.320, 3.215, 3.440, 3.460, 3.570, 3.190, 3.150, 3.440, 3.440, 4.070, 3.730, 3.780, 5.250, 5.424,
      5.345, 2.200, 1.615, 1.835, 2.465, 3.520, 3.435, 3.840, 3.845, 1.935, 2.140, 1.513, 3.170, 2.770, 3.570, 2.780]


def test_cox_matches_r_coxph_on_rossi():
    # Fox & Weisberg, "Cox Proportional-Hazards Regression for Survival Data in R" (appendix to An R Companion to
    # Applied Regression): coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = Rossi)
    published = {"fin": (-0.37942, 0.19138), "age": (-0.05744, 0.02200), "race": (0.31390, 0.30799),
                 "wexp": (-0.14980, 0.21222), "mar": (-0.43370, 0.38187), "paro": (-0.08487, 0.19576),
                 "prio": (0.09150, 0.02865)}
    rossi = lifelines.datasets.load_rossi()
    t = cox(rossi, duration="week", event="arrest", covariates=list(published)).set_index("covariate")
    for name, (coef, se) in published.items():
        assert t.loc[name, "coef"] == pytest.approx(coef, abs=5e-5), name
        assert t.loc[name, "se"] == pytest.approx(se, abs=5e-5), name
    # exp(coef) and its CI: R prints fin 0.684 (0.470, 0.996)
    assert (t.loc["fin", "hazard_ratio"], t.loc["fin", "hr_ci_low"], t.loc["fin", "hr_ci_high"]) == pytest.approx(
        (0.684, 0.470, 0.996), abs=1e-3)
    assert t.n.iloc[0] == 432 and t.events.iloc[0] == 114


def test_cox_on_tidy_results_with_design_and_a_categorical_covariate():
    rng = np.random.default_rng(3)
    n = 40
    uptake = rng.normal(2, 0.5, n)
    time = rng.exponential(100 / np.exp(0.8 * (uptake - 2)), n)
    rows = pd.DataFrame({"subject": [f"p{i}" for i in range(n)], "analysis": "u", "map": "pet", "region": "tumour",
                         "metric": "suv_mean", "value": uptake, "units": "SUVbw"})
    design = pd.DataFrame({"subject": rows.subject, "pfs": time, "progressed": ["true"] * (n - 5) + ["false"] * 5,
                           "arm": ["A", "B"] * (n // 2)})
    t = cox(rows, duration="pfs", event="progressed", covariates=["suv_mean", "arm"], design=design)
    assert t.covariate.tolist() == ["suv_mean", "arm[B]"] and t.events.iloc[0] == n - 5
    assert t.coef_ci_low.iloc[0] < t.coef.iloc[0] < t.coef_ci_high.iloc[0]


def test_pearson_matches_r_cor_test_on_mtcars():
    # R: cor.test(mtcars$mpg, mtcars$wt): t = -9.559, df = 30, p-value = 1.294e-10,
    # 95 percent CI -0.9338264 -0.7440872, cor -0.8676594
    wide = pd.DataFrame({"subject": range(32), "wt": WT, "mpg": MPG})
    r = correlate(wide, outcome="mpg", metrics=["wt"]).iloc[0]
    assert r.r == pytest.approx(-0.8676594, abs=1e-7)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.9338264, -0.7440872), abs=1e-7)
    assert r.p_value == pytest.approx(1.294e-10, rel=1e-3)
    s = correlate(wide, outcome="mpg", metrics=["wt"], method="spearman").iloc[0]
    # R: cor.test(mtcars$mpg, mtcars$wt, method = "spearman", exact = FALSE): rho -0.886422
    assert s.r == pytest.approx(-0.886422, abs=1e-6) and s.ci_low < s.r < s.ci_high


def test_correlation_bad_and_small_inputs():
    wide = pd.DataFrame({"subject": list("abc"), "x": [1.0, 2.0, 3.0], "response": ["good", "bad", "good"]})
    with pytest.raises(StatsError, match=r"outcome 'response' is not a number for subject\(s\) \['a', 'b', 'c'\]"):
        correlate(wide, outcome="response")
    small = correlate(pd.DataFrame({"subject": list("ab"), "x": [1.0, 2.0], "y": [1.0, 3.0]}), outcome="y").iloc[0]
    assert not small.computable and "2 subject(s)" in small.note


# R's `aml` data (survival package; Miller 1981): weeks to relapse, maintained vs not maintained chemotherapy
AML = {"Maintained": [(9, 1), (13, 1), (13, 0), (18, 1), (23, 1), (28, 0), (31, 1), (34, 1), (45, 0), (48, 1),
                      (161, 0)],
       "Nonmaintained": [(5, 1), (5, 1), (8, 1), (8, 1), (12, 1), (16, 0), (23, 1), (27, 1), (30, 1), (33, 1),
                         (43, 1), (45, 1)]}


def _aml() -> pd.DataFrame:
    return pd.DataFrame([{"subject": f"{g[0]}{i}", "x": g, "time": t, "status": e}
                         for g, v in AML.items() for i, (t, e) in enumerate(v)])


def test_logrank_matches_r_survdiff_on_aml():
    # R: survdiff(Surv(time, status) ~ x, data = aml): Chisq = 3.4 on 1 degrees of freedom, p = 0.0653
    res = logrank(_aml(), duration="time", event="status", by="x")
    assert res["statistic"] == pytest.approx(3.4, abs=0.05) and res["p_value"] == pytest.approx(0.0653, abs=5e-4)
    assert res["df"] == 1 and res["events"] == 18


def test_kaplan_meier_product_limit_by_hand():
    t = pd.DataFrame({"subject": list("abcd"), "time": [1.0, 2.0, 3.0, 4.0], "event": [1, 0, 1, 1]})
    km = kaplan_meier(t, duration="time", event="event")
    s = km.set_index("time").survival
    assert s.loc[1.0] == pytest.approx(0.75) and s.loc[3.0] == pytest.approx(0.375) and s.loc[4.0] == 0
    split = kaplan_meier(_aml().assign(score=np.arange(23.0)), duration="time", event="status", metric="score")
    assert sorted(split.group.unique()) == ["<= 11", "> 11"]


def test_survival_bad_inputs():
    t = pd.DataFrame({"subject": list("ab"), "time": [1.0, -2.0], "event": [1, 1]})
    with pytest.raises(StatsError, match="negative"):
        logrank(t, duration="time", event="event")
    with pytest.raises(StatsError, match="must be 0/1"):
        logrank(t.assign(time=[1.0, 2.0], event=[1, 2]), duration="time", event="event")
