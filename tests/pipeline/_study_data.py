"""Tiny studies written in code: an MRI-like volume with a spherical tumour, and a PET on its own grid.

PET world = MRI world + ``shift`` (a pure translation, ITK convention fixed=MRI -> moving=PET), so
the true ``pet_to_mri`` transform is a translation by ``shift`` (x, y, z) mm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

N, SP = 20, 0.5          # MRI: 20^3 voxels of 0.5 mm
M, PSP = 10, 1.0         # PET: 10^3 voxels of 1 mm
RADIUS = 3.0             # tumour radius, mm
SHIFTS = {"s1": (0.5, -0.3, 0.2), "s2": (-0.4, 0.2, 0.0), "s3": (0.0, 0.4, -0.3)}


def _write(arr: np.ndarray, spacing: float, origin_xyz, path: Path) -> None:
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing((spacing,) * 3)
    im.SetOrigin(tuple(float(v) for v in origin_xyz))
    sitk.WriteImage(im, str(path))


def make_subject(folder: Path, seed: int, shift=(0.5, -0.3, 0.2)) -> Path:
    """Write ``mri.nii.gz``, ``tumour.nii.gz``, ``pet.nii.gz`` and ``truth.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centre = (N - 1) / 2 * SP
    zz, yy, xx = np.mgrid[:N, :N, :N] * SP - centre
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    tumour = r <= RADIUS
    mri = (100 + 60 * tumour + 40 * (np.abs(xx - 1.0) < 0.6) + rng.normal(0, 2, r.shape)).astype(np.float32)
    _write(mri, SP, (0, 0, 0), folder / "mri.nii.gz")
    _write(tumour.astype(np.uint8), SP, (0, 0, 0), folder / "tumour.nii.gz")
    origin = centre - (M - 1) / 2 * PSP
    pz, py, px = np.mgrid[:M, :M, :M] * PSP + origin
    sx, sy, sz = shift
    # the phantom seen in PET world: the MRI-world point p sits at p + shift
    qx, qy, qz = px - sx - centre, py - sy - centre, pz - sz - centre
    rr = np.sqrt(qx**2 + qy**2 + qz**2)
    pet = np.where(rr <= RADIUS, np.maximum(1.0, 4.0 - 1.2 * (RADIUS - rr)), 0.3) + 0.8 * (np.abs(qx - 1.0) < 0.8)
    _write(pet.astype(np.float32), PSP, (origin,) * 3, folder / "pet.nii.gz")
    h = np.eye(4)
    h[:3, 3] = shift
    (folder / "truth.json").write_text(json.dumps({"transforms": {"pet_to_mri": {"matrix_4x4": h.tolist()}}}))
    return folder


STUDY = """\
name: toy
output: out
reference: mri
defaults:
  images:
    mri: {{path: "data/{{subject}}/mri.nii.gz", modality: MR, aspect: anatomy}}
    pet: {{path: "data/{{subject}}/pet.nii.gz", modality: PT, aspect: nanoparticle, units: SUVbw}}
  masks:
    tumour: {{path: "data/{{subject}}/tumour.nii.gz", on: mri}}
  registration:
    - {{moving: pet, fixed: mri, method: {method}, {extra}truth: {{file: "data/{{subject}}/truth.json", key: pet_to_mri}}}}
subjects:
{subjects}
analyses:
  - {{type: radial, name: pet_radial, maps: [pet], masks: [tumour], params: {{shells: 3, n_boot: 50}}}}
{analyses}"""


def make_study(root: Path, subjects=("s1", "s2", "s3"), method: str = "rigid", extra: str = "",
               analyses: str = "") -> Path:
    """A study file over freshly written subjects; returns its path."""
    for i, s in enumerate(subjects):
        make_subject(root / "data" / s, seed=i, shift=SHIFTS.get(s, (0.3, 0.3, 0.3)))
    text = STUDY.format(method=method, extra=extra, subjects="\n".join(f"  - id: {s}" for s in subjects),
                        analyses=analyses)
    path = root / "study.yaml"
    path.write_text(text)
    return path
