"""A small designed cohort for the example: treated vs control mice with a planted effect on PET uptake and rim/core.

Each subject is one small PET volume (SUVbw, 24^3 voxels of 0.4 mm) with its tumour mask on the
same grid: no registration, so a subject runs in well under a second. The tumour's uptake falls
from the rim to the core, ``SUV(d) = scale x (core + (rim - core) x exp(-d / 0.8 mm))`` with ``d`` the
depth below the tumour surface; the treated group has a higher ``scale`` (x ``UPTAKE_EFFECT``) and a
steeper rim (``rim`` x ``RIM_EFFECT``), and every animal its own log-normal scale (8 %) and rim excess (10 %), so the
effect is seen through animal-to-animal spread. A design table (``design.csv``) gives the group,
dose and weight of each animal and the outcomes: tumour growth (%), progression-free days and
whether the tumour progressed (higher uptake: less growth, longer PFS).

``write_cohort(folder, seed)`` writes ``<folder>/cohort/<id>/pet.nii.gz``, ``.../tumour.nii.gz``,
``<folder>/cohort/design.csv`` and ``<folder>/cohort/cohort.yaml`` (a study of these subjects, paths
relative to it) and returns the planted truth.

Examples
--------
>>> import tempfile, pathlib
>>> truth = write_cohort(pathlib.Path(tempfile.mkdtemp()), seed=0, per_group=2)   # doctest: +SKIP
>>> truth["uptake_ratio_treated_over_control"]                                     # doctest: +SKIP
1.6
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from example_datasets._writers import write_volume

__all__ = ["write_cohort", "cohort_study_text", "UPTAKE_EFFECT", "RIM_EFFECT"]

N, SPACING, RADIUS_MM = 24, 0.4, 3.6
#: what :func:`write_cohort` writes with its default three mice per group (paths relative to ``folder``)
FILES: tuple[str, ...] = ("cohort/design.csv", "cohort/cohort.yaml") + tuple(
    f"cohort/{g}{k:02d}/{name}" for g in "ct" for k in (1, 2, 3) for name in ("pet.nii.gz", "tumour.nii.gz"))
#: treated / control ratio of the uptake scale, and of the rim excess over the core
UPTAKE_EFFECT, RIM_EFFECT = 1.6, 2.0
CORE, RIM, DECAY_MM = 1.0, 1.5, 0.8
ANIMAL_SD = 0.08     # log-normal animal-to-animal spread of the uptake scale
RIM_SD = 0.10        # log-normal animal-to-animal spread of the rim excess
NOISE_SD = 0.05      # voxel noise, relative to the scale


def _geometry() -> tuple[np.ndarray, np.ndarray]:
    c = (N - 1) / 2
    zz, yy, xx = (np.mgrid[:N, :N, :N] - c) * SPACING
    mask = np.sqrt(zz**2 + yy**2 + xx**2) <= RADIUS_MM
    depth = ndimage.distance_transform_edt(mask, sampling=SPACING)
    return mask, depth


def _profile(depth: np.ndarray, rim: float) -> np.ndarray:
    return CORE + (rim - CORE) * np.exp(-depth / DECAY_MM)


def _rim_core(values: np.ndarray, depth: np.ndarray) -> float:
    """Outer half of the tumour's voxels (by depth) over the inner half: the radial family's default split."""
    order = np.argsort(depth, kind="stable")
    half = int(round(0.5 * depth.size))
    return float(values[order[:half]].mean() / values[order[half:]].mean())


def cohort_study_text(design: str = "design.csv") -> str:
    """The study file of the cohort (paths relative to the cohort folder)."""
    return f"""\
# A designed cohort (example_datasets/_cohort.py): treated vs control, planted effect on uptake and rim/core.
name: example cohort
output: results
reference: pet
covariates: {{file: {design}, id: subject}}
outcomes: [growth_pct, pfs_days, progressed]
report:
  by: group
  survival: {{duration: pfs_days, event: progressed, covariates: [group]}}
defaults:
  images:
    pet: {{path: "{{subject}}/pet.nii.gz", modality: PT, aspect: nanoparticle, agent: 64Cu-liposome, units: SUVbw}}
  masks:
    tumour: {{path: "{{subject}}/tumour.nii.gz", on: pet}}
subjects:
{{subjects}}
analyses:
  - {{type: uptake, name: pet_uptake, maps: [pet], masks: [tumour], params: {{peak_volume_ml: 0.005}}}}
  - {{type: radial, name: pet_radial, maps: [pet], masks: [tumour], params: {{shells: 4, n_boot: 50}}}}
"""


def write_cohort(folder: Path, seed: int, per_group: int = 3) -> dict[str, Any]:
    """Write ``per_group`` control and ``per_group`` treated mice into ``folder/cohort``; return the planted truth."""
    root = Path(folder) / "cohort"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1919]))
    mask, depth = _geometry()
    origin = (-(N - 1) / 2 * SPACING,) * 3
    rows, subjects, truth_subjects = [], [], {}
    expected = {}
    for group, scale_g, rim_g in (("control", 1.0, RIM), ("treated", UPTAKE_EFFECT, CORE + (RIM - CORE) * RIM_EFFECT)):
        clean = scale_g * _profile(depth[mask], rim_g)
        expected[group] = {"suv_mean": float(clean.mean()), "rim_core_ratio": _rim_core(clean, depth[mask])}
        for k in range(per_group):
            sid = f"{group[0]}{k + 1:02d}"
            scale = scale_g * float(np.exp(rng.normal(0, ANIMAL_SD)))
            rim = CORE + (rim_g - CORE) * float(np.exp(rng.normal(0, RIM_SD)))
            pet = np.where(mask, scale * _profile(depth, rim), 0.15 * scale)
            pet = pet + rng.normal(0, NOISE_SD * scale, pet.shape)
            sub = root / sid
            sub.mkdir(exist_ok=True)
            write_volume(sub / "pet.nii.gz", pet.astype(np.float32), (SPACING,) * 3, origin)
            write_volume(sub / "tumour.nii.gz", mask.astype(np.uint8), (SPACING,) * 3, origin)
            uptake = float(pet[mask].mean())
            growth = 120.0 - 40.0 * uptake + rng.normal(0, 8.0)
            pfs = float(np.round(rng.exponential(30.0 * np.exp(0.9 * (uptake - 1.5))) + 5))
            progressed = bool(pfs < 60)
            rows.append({"subject": sid, "group": group, "dose_mg_kg": 5 if group == "treated" else 0,
                         "weight_g": round(float(rng.normal(21.0, 1.2)), 1), "growth_pct": round(growth, 1),
                         "pfs_days": pfs if progressed else 60.0, "progressed": progressed})
            subjects.append(sid)
            truth_subjects[sid] = {"group": group, "uptake_scale": scale, "rim": rim}
    with open(root / "design.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    text = cohort_study_text().replace("{subjects}", "\n".join(f"  - id: {s}" for s in subjects))
    (root / "cohort.yaml").write_text(text)
    return {
        "subjects": truth_subjects,
        "groups": {"control": [s for s in subjects if s.startswith("c")], "treated": [s for s in subjects if s.startswith("t")]},
        "uptake_ratio_treated_over_control": UPTAKE_EFFECT,
        "rim_excess_ratio_treated_over_control": RIM_EFFECT,
        "expected_noise_free": expected,
        "expected_difference": {m: expected["treated"][m] - expected["control"][m] for m in ("suv_mean", "rim_core_ratio")},
        "study": "cohort/cohort.yaml",
    }
