"""Variance components in the report (``report: {repeated: ...}``) and the clustered cohort heatmap."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from multiscale.pipeline import cohort, report
from multiscale.pipeline.spec import Design
from multiscale.stats import variance_components


def _sections(seed: int = 0) -> tuple[pd.DataFrame, Design]:
    """12 animals x 2 tumours x 3 sections (each section a subject); SDs 2 (animal), 1 (tumour), 0.5 (section)."""
    rng = np.random.default_rng(seed)
    rows, values = [], {}
    for a in range(12):
        ua = rng.normal(0, 2.0)
        for t in range(2):
            ut = rng.normal(0, 1.0)
            for k in range(3):
                sid = f"a{a:02d}t{t}s{k}"
                values[sid] = {"animal": f"a{a:02d}", "tumour": f"t{t}", "group": "treated" if a % 2 else "control"}
                for metric, v in (("suv_mean", 10 + ua + ut + rng.normal(0, 0.5)), ("volume_ml", 0.5)):
                    rows.append({"subject": sid, "analysis": "uptake", "map": "pet", "region": "tumour",
                                 "metric": metric, "value": v, "units": "SUVbw" if metric == "suv_mean" else "mL",
                                 "bin": np.nan, "detail": "", "flags": ""})
    return pd.DataFrame(rows), Design(values=values, covariates=("animal", "tumour", "group"), outcomes=())


def _study(tmp_path, **options):
    table, design = _sections()
    return SimpleNamespace(name="sections", path=tmp_path / "study.yaml", report=options, design=design,
                           subjects=(), analyses=()), table


def test_the_report_splits_the_variance_between_animals_tumours_and_sections(tmp_path):
    study, table = _study(tmp_path, repeated=["animal", "tumour"])
    res = cohort.cohort_statistics(study, table)
    var = res["variance"]
    suv = var[var.metric == "suv_mean"].set_index("component")
    # the same numbers as the public API on the same rows
    rows = table[table.metric == "suv_mean"].join(study.design.frame(), on="subject")
    api = variance_components(rows, value="value", levels=["animal", "tumour"]).set_index("component")
    assert list(suv.index) == ["between animal", "between tumour within animal", "residual (within tumour)"]
    np.testing.assert_allclose(suv.variance.to_numpy(float), api.variance.to_numpy(float), rtol=1e-9)
    assert suv.fraction.sum() == pytest.approx(1.0)
    # planted 4 : 1 : 0.25: the animal holds most of the variance, the sections the least
    assert suv.loc["between animal", "fraction"] > 0.5 > suv.loc["residual (within tumour)", "fraction"]
    assert 0.1 < suv.loc["residual (within tumour)", "variance"] < 0.6
    # a metric equal in every section is reported as not computable, not crashed
    assert var[var.metric == "volume_ml"].note.iloc[0] == "not computable: every row has the same value"
    html = report.study_report_html(study, table, [], tmp_path)
    stats = html[html.index("<section id='statistics'>"):html.index("id='methods'")]
    assert "<h3>Variance components</h3>" in stats and "between tumour within animal" in stats
    assert re.search(r"\d+ %\)", stats) and 'download="stats_variance_components.csv"' in stats
    assert "Not computable: every row has the same value (uptake: volume_ml" in stats
    assert "variance was split into nested components by REML" in html


def test_a_single_repeated_unit_uses_animal_and_residual(tmp_path):
    study, table = _study(tmp_path, repeated="animal")
    var = cohort.cohort_statistics(study, table)["variance"]
    assert list(var[var.metric == "suv_mean"].component) == ["between animal", "residual (within animal)"]


def _wide_table(n_metrics: int = 90, n_subjects: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, n_subjects))      # three families of metrics: the clustering finds them
    return pd.DataFrame([{"subject": f"m{i}", "region": "tumour", "map": "pet", "analysis": "uptake",
                          "metric": f"metric_{j:03d}", "bin": np.nan, "units": "SUVbw",
                          "value": float(base[j % 3, i] + 0.05 * rng.normal())}
                         for i in range(n_subjects) for j in range(n_metrics)])


def test_the_clustered_heatmap_shows_every_metric_grouped_without_overlapping_labels(tmp_path):
    table = _wide_table()
    specs = report.cohort_figure_specs(table, heatmap="clustered")
    (caption, kind, data), = [s for s in specs if s[1] == "clustered"]
    assert "all 90 rows ordered by hierarchical clustering" in caption
    fig = report.cohort_figure(kind, data)
    try:
        ax = next(a for a in fig.axes if a.get_yticklabels() and a.get_yticklabels()[0].get_text())
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len(labels) == 90
        # the clustering groups the three planted families: each is one contiguous run of rows
        family = [int(lb.split("metric_")[1][:3]) % 3 for lb in labels]
        assert sum(a != b for a, b in zip(family, family[1:])) == 2
        # no two row labels overlap: their rendered extents are disjoint, and the font is smaller than the row pitch
        renderer = fig.canvas.get_renderer()
        boxes = sorted((t.get_window_extent(renderer) for t in ax.get_yticklabels()), key=lambda b: b.y0)
        assert all(lo.y1 <= hi.y0 for lo, hi in zip(boxes, boxes[1:]))
        row_px = ax.get_window_extent(renderer).height / 90
        assert ax.get_yticklabels()[0].get_fontsize() * fig.dpi / 72 < row_px
        assert any(a.collections for a in fig.axes if a is not ax)     # the dendrogram
    finally:
        report._plt().close(fig)


def test_report_option_heatmap_clustered_replaces_the_pages(tmp_path):
    table = _wide_table(n_metrics=70)
    paged = SimpleNamespace(name="s", path=tmp_path / "s.yaml", report={}, design=None, subjects=(), analyses=())
    html = report.study_report_html(paged, table, [], tmp_path)
    assert html.count("rows ordered by hierarchical clustering") == 0 and "the first 60 of 70 rows" in html
    clustered = SimpleNamespace(**{**vars(paged), "report": {"heatmap": "clustered"}})
    drawn = [(c, report.cohort_figure_png(k, d)) for c, k, d in report.cohort_figure_specs(table)]  # as the runner
    html = report.study_report_html(clustered, table, [], tmp_path, cohort_figures=drawn)
    assert "all 70 rows ordered by hierarchical clustering" in html and "the first 60 of 70 rows" not in html
    with pytest.raises(ValueError, match="use 'paged' or 'clustered'"):
        report.cohort_figure_specs(table, heatmap="sorted")


def test_the_study_file_validates_repeated_levels_and_the_heatmap_option(tmp_path):
    from multiscale.errors import StudyError
    from multiscale.pipeline.study import load_study

    (tmp_path / "mri.nii.gz").write_bytes(b"")
    subjects = "".join(f"  - id: s{k}\n    covariates: {{animal: a{k // 2}, tumour: t{k % 2}, group: g{k % 2}}}\n"
                       for k in range(4))

    def study(report: str):
        path = tmp_path / "study.yaml"
        path.write_text("name: nested\noutput: out\nreference: mri\ndefaults:\n  images:\n"
                        f"    mri: {{path: mri.nii.gz, modality: MR}}\nreport: {report}\nsubjects:\n{subjects}")
        return load_study(path, check_files=False)

    s = study("{repeated: [animal, tumour], heatmap: clustered}")
    assert s.report["repeated"] == ["animal", "tumour"] and s.name == "nested"
    with pytest.raises(StudyError, match=r"study.yaml:\d+: report.repeated: 'tumor' is not a column.*'tumour'"):
        study("{repeated: [animal, tumor]}")
    with pytest.raises(StudyError, match=r"report.heatmap"):
        study("{heatmap: sorted}")
