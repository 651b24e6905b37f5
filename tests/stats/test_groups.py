"""Group comparisons against values published from R, and the cases that cannot be computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.errors import StatsError
from multiscale.stats import adjust_pvalues, compare_groups, hedges_g

# R's `sleep` data (datasets package; Cushny & Peebles 1905): extra hours of sleep with drug 1 and drug 2
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
# R's `PlantGrowth` data (datasets package; Dobson 1983): dried plant weight, control and two treatments
PLANT = {"ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
         "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
         "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26]}


def _wide(groups: dict[str, list[float]], column: str = "extra") -> pd.DataFrame:
    rows = [{"subject": f"{g}-{i}", "group": g, column: v} for g, vals in groups.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_welch_t_matches_r_t_test_on_sleep():
    # R: t.test(extra ~ group, data = sleep)  (Welch by default), as printed in R's ?t.test example:
    # t = -1.8608, df = 17.776, p-value = 0.07939; 95 percent CI -3.3654832 0.2054832 (group 1 - group 2)
    r = compare_groups(_wide({"1": SLEEP_1, "2": SLEEP_2}), by="group").iloc[0]
    assert r.comparison == "2 - 1" and r.test == "Welch t" and r.computable
    assert r.statistic == pytest.approx(1.8608, abs=1e-4)      # our sign: group 2 - group 1
    assert r.df == pytest.approx(17.776, abs=1e-3)
    assert r.p_value == pytest.approx(0.07939, abs=1e-5)
    assert (r.difference_ci_low, r.difference_ci_high) == pytest.approx((-0.2054832, 3.3654832), abs=1e-6)
    assert (r.mean_a, r.mean_b) == pytest.approx((0.75, 2.33))


def test_mann_whitney_matches_r_wilcox_test_on_sleep():
    # R: wilcox.test(extra ~ group, data = sleep): W = 25.5, p-value = 0.06933 (normal approximation with
    # continuity correction, ties present); W is the rank sum statistic of group 1, ours is U of group 2
    r = compare_groups(_wide({"1": SLEEP_1, "2": SLEEP_2}), by="group", test="mannwhitney").iloc[0]
    assert r.statistic == pytest.approx(100 - 25.5)
    assert r.p_value == pytest.approx(0.06933, abs=1e-5)


def test_hedges_g_is_the_bias_corrected_pooled_sd_difference():
    a, b = np.array(SLEEP_1), np.array(SLEEP_2)
    sp = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    j = 1 - 3 / (4 * (len(a) + len(b)) - 9)                     # Hedges (1981) small-sample correction
    g, lo, hi = hedges_g(a, b)
    assert g == pytest.approx(j * (b.mean() - a.mean()) / sp, rel=1e-3)
    assert lo < g < hi


def test_anova_and_tukey_match_r_on_plant_growth():
    res = compare_groups(_wide(PLANT, "weight"), by="group")
    omni = res[res.comparison == "all groups"].iloc[0]
    # R: summary(aov(weight ~ group, data = PlantGrowth)): F value 4.846 on 2 and 27 df, Pr(>F) 0.0159
    assert omni.test == "ANOVA" and omni.statistic == pytest.approx(4.846, abs=1e-3)
    assert omni.p_value == pytest.approx(0.01591, abs=1e-5)
    # R: TukeyHSD(aov(weight ~ group, data = PlantGrowth))
    tk = res[res.test == "Tukey HSD"].set_index("comparison")
    ref = {"trt1 - ctrl": (-0.371, -1.0622161, 0.3202161, 0.3908711),
           "trt2 - ctrl": (0.494, -0.1972161, 1.1852161, 0.1979960),
           "trt2 - trt1": (0.865, 0.1737839, 1.5562161, 0.0120064)}
    for name, (diff, lo, hi, p) in ref.items():
        row = tk.loc[name]
        assert (row.difference, row.difference_ci_low, row.difference_ci_high) == pytest.approx((diff, lo, hi), abs=1e-3)
        assert row.p_value == pytest.approx(p, abs=1e-3)


def test_kruskal_matches_r_on_plant_growth():
    # R: kruskal.test(weight ~ group, data = PlantGrowth): Kruskal-Wallis chi-squared = 7.9882, df = 2, p = 0.01842
    res = compare_groups(_wide(PLANT, "weight"), by="group", test="mannwhitney")
    omni = res[res.comparison == "all groups"].iloc[0]
    assert omni.test == "Kruskal-Wallis"
    assert omni.statistic == pytest.approx(7.9882, abs=1e-4) and omni.p_value == pytest.approx(0.01842, abs=1e-5)
    assert (res.comparison != "all groups").sum() == 3 and res.p_adjusted.notna().all()


def test_a_group_with_one_subject_is_reported_not_computable():
    wide = _wide({"control": [1.0, 1.1, 0.9], "treated": [2.0]})
    r = compare_groups(wide, by="group").iloc[0]
    assert not r.computable and np.isnan(r.p_value) and np.isnan(r.p_adjusted)
    assert "group 'treated' has 1 subject" in r.note
    three = compare_groups(_wide({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0]}, "x"), by="group")
    assert not three.computable.iloc[0] and "['c']" in three.note.iloc[0]


def test_no_variance_is_not_computable():
    r = compare_groups(_wide({"a": [1.0, 1.0], "b": [1.0, 1.0]}), by="group").iloc[0]
    assert not r.computable and "same value" in r.note


def test_tidy_results_with_design_lesions_averaged_and_corrected_across_metrics():
    rows = []
    for i, (sid, group) in enumerate([("m1", "c"), ("m2", "c"), ("m3", "c"), ("m4", "t"), ("m5", "t"), ("m6", "t")]):
        up = 1.0 + i * 0.05 + (1.0 if group == "t" else 0.0)
        for lesion, off in ((1, -0.1), (2, 0.1)):   # two lesions per animal: averaged before the test
            rows.append({"subject": sid, "analysis": "u", "map": "pet", "region": f"lesions#{lesion}",
                         "metric": "suv_mean", "value": up + off, "units": "SUVbw", "bin": np.nan})
        rows.append({"subject": sid, "analysis": "r", "map": "pet", "region": "tumour", "metric": "rim_core_ratio",
                     "value": 1.5 + 0.1 * (i % 3), "units": "1", "bin": np.nan})
        rows.append({"subject": sid, "analysis": "r", "map": "pet", "region": "tumour", "metric": "shell_mean",
                     "value": 3.0, "units": "SUVbw", "bin": 0})                      # profile rows: left out
    design = pd.DataFrame({"subject": [f"m{i}" for i in range(1, 7)], "group": list("ccc") + list("ttt")})
    res = compare_groups(pd.DataFrame(rows), by="group", design=design, correction="bonferroni")
    assert res.label.tolist() == ["u: suv_mean (pet / lesions)", "r: rim_core_ratio (pet / tumour)"]
    up = res.iloc[0]
    assert up.difference == pytest.approx(1.15) and up.n_a == 3 and up.units == "SUVbw"
    assert res.p_adjusted.tolist() == pytest.approx(np.minimum(res.p_value * 2, 1).tolist())
    assert res.iloc[1].difference == pytest.approx(0.0, abs=1e-12)


def test_bad_requests_name_the_fix():
    wide = _wide({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(StatsError, match="no covariate 'arm'"):
        compare_groups(wide, by="arm")
    with pytest.raises(StatsError, match="one group"):
        compare_groups(wide.assign(group="a"), by="group")
    tidy = pd.DataFrame({"subject": ["m1", "m2"], "metric": "x", "value": [1.0, 2.0]})
    with pytest.raises(StatsError, match=r"no row for subject\(s\) \['m2'\]"):
        compare_groups(tidy, by="group", design={"m1": {"group": "a"}})
    with pytest.raises(StatsError, match=r"subject\(s\) \['m3'\] are not in the results"):
        compare_groups(tidy, by="group", design={"m1": {"group": "a"}, "m2": {"group": "b"}, "m3": {"group": "b"}})
    with pytest.raises(StatsError, match="metric 'y' is not in the results"):
        compare_groups(tidy, by="group", design={"m1": {"group": "a"}, "m2": {"group": "b"}}, metrics=["y"])


def test_adjust_pvalues_matches_r_p_adjust():
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    # R: p.adjust(c(.01,.02,.03,.04,.05), "holm") -> 0.05 0.08 0.09 0.09 0.09 ; "BH" -> 0.05 0.05 0.05 0.05 0.05
    assert adjust_pvalues(p, "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert adjust_pvalues(p, "BH") == pytest.approx([0.05] * 5)
    with pytest.raises(StatsError, match="unknown correction"):
        adjust_pvalues(p, "tukey")
