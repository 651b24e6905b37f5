"""A designed cohort through the real pipeline: the report's statistics, methods, figures and folder mode.

The cohort is the example's (``example_datasets/_cohort.py``): treated vs control mice with a planted
effect on PET uptake and on the rim/core ratio.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from example_datasets._cohort import write_cohort
from multiscale.cli import main
from multiscale.pipeline import report
from multiscale.pipeline.runner import run_study
from multiscale.pipeline.study import load_study


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    truth = write_cohort(root, seed=0, per_group=3)
    truth["study"] = str(root / truth["study"])          # the truth names it relative to the folder
    out = root / "out"
    run = run_study(truth["study"], output=out, progress=None)
    assert run.completed == truth["groups"]["control"] + truth["groups"]["treated"], run.failed
    return truth, out


def _row(table: pd.DataFrame, metric: str) -> pd.Series:
    return table[table.metric == metric].iloc[0]


def test_the_planted_effect_is_recovered_with_its_ci_and_p_value(cohort):
    from multiscale.pipeline.stats_command import study_design
    from multiscale.stats import compare_groups

    truth, out = cohort
    design = study_design(out)
    assert sorted(design.index) == sorted(truth["subjects"]) and set(design.group) == {"control", "treated"}
    res = compare_groups(out, by="group", design=design, metrics=["suv_mean", "rim_core.rim_core_ratio"])
    for metric, planted in (("suv_mean", truth["expected_difference"]["suv_mean"]),
                            ("rim_core.rim_core_ratio", truth["expected_difference"]["rim_core_ratio"])):
        r = _row(res, metric)
        assert r.comparison == "treated - control" and r.computable
        assert r.difference_ci_low > 0 and r.p_value < 0.05, r          # the effect is seen (3 mice per group)
        # the noise-free design value lies in (or next to) the CI: animals vary by 10 %
        assert r.difference_ci_low - 0.25 * abs(planted) < planted < r.difference_ci_high + 0.25 * abs(planted), r


def test_report_shows_design_statistics_methods_and_print_figures(cohort):
    truth, out = cohort
    html = (out / "report.html").read_text()
    assert "<section id='design'>" in html and "<section id='statistics'>" in html and "id='methods'" in html
    stats = html[html.index("<section id='statistics'>"):html.index("id='methods'")]
    assert "rim_core.rim_core_ratio" in stats and "treated - control" in stats
    assert "g [95% CI]" in stats and "p adjusted" in stats and "Welch t" in stats
    assert "Log-rank test between control, treated" in stats and "hazard ratio [95% CI]" in stats
    # the CSV of the full statistics table is downloadable (SVGs: in folder reports, or with downloads: true)
    assert 'download="stats_groups_group.csv"' in stats
    methods = html[html.index("id='methods'"):]
    methods = methods[:methods.index("</section>")]
    assert "statsmodels 0." in methods and "lifelines 0." in methods and "scipy 1." in methods
    assert "rim_volume_fraction" in methods and "peak_volume_ml" in methods       # every parameter
    assert "group: control (n = 3), treated (n = 3)" in methods
    # the statistics figures are 300-dpi PNGs shown at their drawn size
    sizes = [int(w) for w in re.findall(r'<img src="data:image/png;base64,[^"]*" alt="[^"]*Hedges[^"]*" width="(\d+)"',
                                        html)]
    assert sizes and sizes[0] < 1200


def test_stats_command_prints_the_comparison_and_refuses_a_bad_design(cohort, capsys, tmp_path):
    truth, out = cohort
    assert main(["stats", str(out), "--by", "group", "--metrics", "rim_core.rim_core_ratio"]) == 0
    printed = capsys.readouterr().out
    assert "pet_radial: rim_core.rim_core_ratio (pet / tumour)" in printed and "treated - control" in printed
    assert main(["stats", str(out), "--duration", "pfs_days", "--event", "progressed", "--covariates", "group",
                 "--save", str(tmp_path / "t")]) == 0
    cox = pd.read_csv(tmp_path / "t_cox.csv")
    assert cox.covariate.tolist() == ["group[treated]"] and np.isfinite(cox.hazard_ratio).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,group\nc01,control\n")
    assert main(["stats", str(out), "--by", "group", "--design", str(bad)]) == 2
    assert "no row for subject(s)" in capsys.readouterr().err


def test_folder_report_references_files_and_user_templates_restyle_it(cohort, tmp_path):
    truth, out = cohort
    study = load_study(truth["study"])
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "style.css").write_text("body{color:#123456} /* my lab's style */")
    folder_study = dataclasses.replace(study, report={**study.report, "mode": "folder",
                                                      "templates": str(tmp_path / "tpl")})
    table = pd.read_parquet(out / "results.parquet")
    statuses = json.loads((out / "provenance.json").read_text())["statuses"]
    html = report.study_report_html(folder_study, table, statuses, out, table_summary={"rows": len(table)})
    assert "my lab&#39;s style" in html or "my lab's style" in html
    assert "data:image/png" not in html and "data:image/svg" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert any(s.startswith("report_files/stats_effect_sizes") for s in srcs)
    assert 'href="report_files/stats_effect_sizes.svg" download=' in html
    assert any(s.startswith("subjects/c01/figures/") for s in srcs)
    for s in srcs:
        assert (out / s).is_file(), s
    assert len(html) < 200_000                     # small: every figure is a file beside the report
    inline = (out / "report.html").stat().st_size
    assert inline > 2 * len(html)


def test_survival_split_at_a_metric_median(cohort):
    from multiscale.pipeline import cohort as cohort_stats

    truth, out = cohort
    study = load_study(truth["study"])
    study = dataclasses.replace(study, report={**study.report, "survival": {
        "duration": "pfs_days", "event": "progressed", "metric": "rim_core.rim_core_ratio"}})
    res = cohort_stats.cohort_statistics(study, pd.read_parquet(out / "results.parquet"))
    assert not res["notes"], res["notes"]
    assert [g[:2] for g in res["logrank"]["groups"]] == ["<=", "> "] and res["logrank"]["n"] == 6
    assert set(res["kaplan_meier"].group) == set(res["logrank"]["groups"])
