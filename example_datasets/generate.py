"""Generate the example study: a synthetic mouse tumour seen by MRI, PET, fluorescence and MSI.

The study is generated deterministically from a seed (same seed, same bytes) and written with its
ground truth (every transform, the designed radial profiles and correlations) as JSON. See
``example_datasets/README.md`` for what each file holds.

Usage::

    python -m example_datasets.generate [--out DIR] [--seed N] [--size small] [--overwrite]

Examples
--------
>>> from example_datasets.generate import generate
>>> study = generate("/tmp/study", seed=0, size="small")   # doctest: +SKIP
>>> sorted(p.name for p in study.iterdir())[:3]            # doctest: +SKIP
['fluorescence.ome.tif', 'ground_truth.json', 'manifest.json']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from example_datasets import _cells, _cohort, _dynamic, _spectral, _vessels
from example_datasets import _phantom as ph_mod
from example_datasets._geometry import (
    affine2d_inverse,
    apply_h,
    homogeneous,
    pearson,
    rotation_matrix,
    rotation_matrix2d,
)
from example_datasets._msi_ions import endogenous_ions
from example_datasets._writers import deterministic_uuid, write_imzml, write_ome_tiff, write_volume

__all__ = [
    "DEFAULT_OUT",
    "FILES",
    "GENERATOR_VERSION",
    "StudyExistsError",
    "generate",
    "study_is_complete",
    "main",
]

GENERATOR_VERSION = "8"  # bump whenever the output changes: older studies are then regenerated
DEFAULT_OUT = Path(__file__).resolve().parent / "generated"
MANIFEST = "manifest.json"
#: data files of a study, in the order they are written (plus ``ground_truth.json`` and the manifest)
DATA_FILES: tuple[str, ...] = (
    "mri.nii.gz",
    "tumour_mask.nii.gz",
    "vessel_mask.nii.gz",
    "pet.nii.gz",
    "fluorescence.ome.tif",
    "section_mask.ome.tif",
    "msi.imzML",
    "msi.ibd",
)
#: the study's other parts, each its own small frame: (ground-truth key, files, writer(folder, seed) -> truth).
#: The writers live beside this file (``_<topic>.py``), one per capability the demo shows.
EXTRAS: tuple[tuple[str, tuple[str, ...], Any], ...] = (
    ("dynamic", tuple(_dynamic.FILES), _dynamic.write_dynamic),
    ("spectral", tuple(_spectral.FILES), _spectral.write_spectral),
    ("cells", tuple(_cells.FILES), _cells.write_cells),
    ("vessels", tuple(_vessels.FILES), _vessels.write_vessels),
    # a designed cohort (3 control, 3 treated mice, PET only): its own study file, cohort/cohort.yaml
    ("cohort", tuple(_cohort.FILES), _cohort.write_cohort),
)
DATA_FILES = DATA_FILES + tuple(f for _, files, _ in EXTRAS for f in files)
FILES: tuple[str, ...] = DATA_FILES + ("ground_truth.json", MANIFEST)

Size = Literal["full", "small"]

# world placement (LPS mm). The fluorescence pixel (0, 0) sits at world (x, y) = (0, 0), so the
# section's pixel coordinates in mm are MRI world (x, y) coordinates without any offset.
TUMOUR_CENTRE_WORLD = (3.25, 3.0, 9.1)
MRI_CENTRE_FROM_BODY = np.array([0.12, -0.08, 0.05])
PET_CENTRE_OFFSET = np.array([0.35, -0.25, 0.4])

# ions: name -> (role, formula / adduct, monoisotopic m/z)
IONS: dict[str, dict[str, Any]] = {
    "doxorubicin": {"role": "drug", "ion": "[M+H]+", "formula": "C27H29NO11", "mz": 544.1813},
    "doxorubicinol": {"role": "drug metabolite", "ion": "[M+H]+", "formula": "C27H31NO11", "mz": 546.1970},
    "DSPC": {"role": "liposome lipid (PC 18:0/18:0)", "ion": "[M+H]+", "formula": "C44H88NO8P", "mz": 790.6320},
    "HSPC PC 16:0/18:0": {"role": "liposome lipid (HSPC component, also endogenous)", "ion": "[M+H]+",
                          "formula": "C42H84NO8P", "mz": 762.6007},
    "haem b": {"role": "haem (blood, high in vessels)", "ion": "[M]+", "formula": "C34H32FeN4O4", "mz": 616.1767},
}
MATRIX_PEAKS = {"CHCA [M+H]+": 190.0499, "CHCA [M+Na]+": 212.0318, "CHCA [M+K]+": 228.0058,
                "CHCA [2M+H]+": 379.0925}

# PET uptake design (SUVbw)
PET_RIM, PET_SLOPE, PET_FLOOR, PET_CORE = 4.0, 1.6, 0.8, 0.25
PET_BACKGROUND, PET_BLOOD, PET_TEXTURE = 0.35, 2.0, 0.05
PET_FWHM_MM = 1.5
PET_COUNTS_PER_SUV = 40.0
PET_RANDOMS_SUV = 0.02
# fluorescence design (arbitrary units before the camera)
DYE_RIM, DYE_RIM_DECAY_MM, DYE_PERIVASCULAR, DYE_PERI_DECAY_MM, DYE_AUTOFLUOR = 0.8, 0.35, 0.5, 0.04, 0.04
VESSEL_STAIN, VESSEL_AUTOFLUOR = 0.9, 0.06
CAMERA_OFFSET, CAMERA_GAIN, CAMERA_READ_NOISE = 100.0, 2500.0, 3.0


@dataclass(frozen=True)
class _Grids:
    mri_shape: tuple[int, int, int]  # z, y, x
    mri_spacing: float  # mm, isotropic
    pet_shape: tuple[int, int, int]
    pet_spacing: float
    fluo_shape: tuple[int, int]  # y, x
    fluo_px: float  # mm
    msi_shape: tuple[int, int]  # y, x
    msi_px: float  # mm


SIZES: dict[str, _Grids] = {
    "full": _Grids((96, 120, 136), 0.1, (16, 20, 22), 0.8, (1200, 1300), 0.005, (76, 84), 0.075),
    "small": _Grids((40, 48, 56), 0.25, (16, 20, 22), 0.8, (240, 260), 0.025, (38, 42), 0.15),
}


class StudyExistsError(FileExistsError):
    """Raised when ``out_dir`` holds something other than the requested study."""


# ---------------------------------------------------------------------------------------------
# manifest and checksums
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    """The file's SHA-256; for a folder (an OME-Zarr), over its files' relative paths and contents in order."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(q for q in path.rglob("*") if q.is_file())
    for q in files:
        if q != path:
            h.update(q.relative_to(path).as_posix().encode() + b"\0")
        with open(q, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    return path.stat().st_size if path.is_file() else sum(q.stat().st_size for q in path.rglob("*") if q.is_file())


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def study_is_complete(out_dir: str | Path, seed: int | None = None, size: Size | None = None) -> bool:
    """True when ``out_dir`` holds a complete study (every file present with its manifest checksum),
    and, when given, generated with this ``seed`` and ``size`` by this generator version.

    Examples
    --------
    >>> study_is_complete("/nonexistent")
    False
    """
    out_dir = Path(out_dir)
    man = _read_manifest(out_dir)
    if man is None or man.get("generator_version") != GENERATOR_VERSION:
        return False
    if seed is not None and man.get("seed") != seed:
        return False
    if size is not None and man.get("size") != size:
        return False
    files = man.get("files", {})
    if set(files) != set(DATA_FILES) | {"ground_truth.json"}:
        return False
    for name, entry in files.items():
        p = out_dir / name
        if not p.exists() or _size(p) != entry.get("bytes") or _sha256(p) != entry.get("sha256"):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------


def _axes(origin_xyz: np.ndarray, spacing: float, shape_zyx: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    nz, ny, nx = shape_zyx
    return tuple(origin_xyz[i] + spacing * np.arange(n) for i, n in enumerate((nx, ny, nz)))


def _points(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
    Z, Y, X = np.meshgrid(zs, ys, xs, indexing="ij")
    return np.stack([X, Y, Z], axis=-1)


def _depth(mask: np.ndarray, spacing: float) -> np.ndarray:
    """Distance (mm) from each voxel centre inside ``mask`` to the mask's surface (voxel faces)."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    d = ndimage.distance_transform_edt(mask, sampling=spacing) - spacing / 2.0
    return np.where(mask, np.maximum(d, 0.0), 0.0).astype(np.float32)


def _bin_profile(values: np.ndarray, depth: np.ndarray, mask: np.ndarray, width: float) -> dict[str, Any]:
    d = depth[mask]
    v = values[mask].astype(np.float64)
    edges = np.arange(0.0, float(d.max()) + width, width)
    idx = np.clip(np.digitize(d, edges) - 1, 0, edges.size - 2)
    counts = np.bincount(idx, minlength=edges.size - 1)
    sums = np.bincount(idx, weights=v, minlength=edges.size - 1)
    keep = counts > 0
    return {
        "depth_bin_edges_mm": [round(float(e), 6) for e in edges],
        "mean": [float(s / c) if c else None for s, c in zip(sums, counts)],
        "n": [int(c) for c in counts],
        "_centres": (0.5 * (edges[:-1] + edges[1:]))[keep],
        "_means": (sums[keep] / counts[keep]),
    }


def _fit_slope(profile: dict[str, Any], d_max: float) -> float:
    c, m = profile.pop("_centres"), profile.pop("_means")
    sel = c <= d_max
    return float(np.polyfit(c[sel], m[sel], 1)[0])


def _build(tmp: Path, seed: int, size: Size) -> dict[str, Any]:
    g = SIZES[size]
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 4242]).spawn(6)]
    rng_tf, rng_pet, rng_mri, rng_fluo, rng_msi, rng_bg = streams
    ph = ph_mod.make_phantom(seed, TUMOUR_CENTRE_WORLD)
    z0 = ph.section_z0

    # ---------------------------------------------------------------- known transforms
    axis = np.array([0.4, -0.3, 0.85]) + rng_tf.uniform(-0.15, 0.15, 3)
    rotation_axis = axis / np.linalg.norm(axis)
    angle_deg = float(rng_tf.uniform(10.0, 15.0))
    R = rotation_matrix(rotation_axis, np.deg2rad(angle_deg))
    tdir = rng_tf.normal(size=3)
    t_pet = tdir / np.linalg.norm(tdir) * rng_tf.uniform(1.2, 1.8)

    msi_theta = np.deg2rad(rng_tf.uniform(5.0, 10.0) * rng_tf.choice([-1.0, 1.0]))
    msi_scale = np.array([rng_tf.uniform(1.02, 1.05), rng_tf.uniform(0.96, 0.99)])
    msi_shear = float(rng_tf.uniform(0.02, 0.04))
    sdir = rng_tf.uniform(0, 2 * np.pi)
    msi_shift = 0.2 * np.array([np.cos(sdir), np.sin(sdir)])

    # ---------------------------------------------------------------- MRI grid and anatomy
    sp = g.mri_spacing
    mri_n_xyz = np.array(g.mri_shape[::-1])
    mri_centre = ph.body_centre + MRI_CENTRE_FROM_BODY
    mri_origin = np.round((mri_centre - (mri_n_xyz - 1) / 2 * sp) * 256) / 256  # exact in float32
    xs, ys, zs = _axes(mri_origin, sp, g.mri_shape)
    reg = ph.regions(_points(xs, ys, zs))
    body, tumour, core = reg["body"], reg["tumour"], reg["core"]
    viable = tumour & ~core
    tex = ph.texture_on_grid(xs, ys, zs)
    vsd = ph_mod.vessel_surface_distance((xs, ys, zs), ph.vessels, reach=sp)
    vfrac = (np.clip(0.5 - vsd / sp, 0.0, 1.0) * (body & ~core)).astype(np.float32)
    vessel_mask = (vsd < 0) & body & ~core
    depth3 = _depth(tumour, sp)
    body_depth = _depth(body, sp)

    # T2-like MRI
    mri = np.zeros(g.mri_shape, np.float32)
    mri[body] = (0.32 * (1 + 0.06 * tex))[body]
    fat = body & (body_depth < ph_mod.SKIN_MM + ph_mod.FAT_MM) & (body_depth >= ph_mod.SKIN_MM)
    mri[fat] = 0.78
    mri[body & (body_depth < ph_mod.SKIN_MM)] = 0.45
    mri[viable] = (0.58 * (1 + 0.07 * tex))[viable]
    mri[core] = (0.92 * (1 + 0.03 * tex))[core]
    mri = mri * (1 - vfrac) + 1.1 * vfrac
    bias = (1 + 0.06 * (xs - mri_centre[0]) / 5)[None, None, :] * (1 - 0.04 * (ys - mri_centre[1]) / 5)[None, :, None]
    mri = ndimage.gaussian_filter(mri * bias, 0.5)
    n1 = rng_mri.normal(0, 0.02, mri.shape)
    n2 = rng_mri.normal(0, 0.02, mri.shape)
    mri = np.sqrt((mri + n1) ** 2 + n2**2)
    mri_i16 = np.round(mri * 1000).astype(np.int16)
    del n1, n2, mri

    write_volume(tmp / "mri.nii.gz", mri_i16, (sp,) * 3, mri_origin)
    write_volume(tmp / "tumour_mask.nii.gz", tumour.astype(np.uint8), (sp,) * 3, mri_origin)
    write_volume(tmp / "vessel_mask.nii.gz", vessel_mask.astype(np.uint8), (sp,) * 3, mri_origin)

    # ---------------------------------------------------------------- PET
    act = np.where(body, PET_BACKGROUND * (1 + 2 * PET_TEXTURE * tex), 0.0).astype(np.float32)
    ramp = np.maximum(PET_FLOOR, PET_RIM - PET_SLOPE * depth3) * (1 + PET_TEXTURE * tex)
    act[viable] = ramp[viable]
    act[core] = PET_CORE
    act = act * (1 - vfrac) + PET_BLOOD * vfrac
    pet_profile_design = _bin_profile(act, depth3, tumour, 0.25)
    pet_slope_design_fit = _fit_slope(pet_profile_design, 1.0)
    pet_profile_viable = _bin_profile(act, depth3, viable & (vfrac == 0), 0.25)
    pet_slope_viable_fit = _fit_slope(pet_profile_viable, (PET_RIM - PET_FLOOR) / PET_SLOPE)
    f = max(1, int(round(0.2 / sp)))
    if any(n % f for n in g.mri_shape):
        f = 1
    act_ds = act.reshape(g.mri_shape[0] // f, f, g.mri_shape[1] // f, f, g.mri_shape[2] // f, f).mean(axis=(1, 3, 5))
    sp_ds = sp * f
    origin_ds = mri_origin + (f - 1) / 2 * sp
    blurred = ndimage.gaussian_filter(act_ds, PET_FWHM_MM / (2 * np.sqrt(2 * np.log(2))) / sp_ds, mode="constant")
    centre = mri_centre.copy()  # rotation centre of the rigid transform: the MRI field-of-view centre
    T_pet = homogeneous(R, t_pet + centre - R @ centre)  # MRI world -> PET world (fixed -> moving)
    pet_n_xyz = np.array(g.pet_shape[::-1])
    pet_centre = apply_h(T_pet, mri_centre) + PET_CENTRE_OFFSET
    pet_origin = np.round((pet_centre - (pet_n_xyz - 1) / 2 * g.pet_spacing) * 256) / 256
    pxs, pys, pzs = _axes(pet_origin, g.pet_spacing, g.pet_shape)
    Q = _points(pxs, pys, pzs).reshape(-1, 3)
    src = apply_h(np.linalg.inv(T_pet), Q)  # PET voxel centre -> the MRI-frame point it shows
    idx = ((src - origin_ds) / sp_ds)[:, ::-1].T
    pet_clean = ndimage.map_coordinates(blurred, idx, order=1, cval=0.0).reshape(g.pet_shape).astype(np.float32)
    pet = (rng_pet.poisson((pet_clean + PET_RANDOMS_SUV) * PET_COUNTS_PER_SUV) / PET_COUNTS_PER_SUV).astype(np.float32)
    write_volume(tmp / "pet.nii.gz", pet, (g.pet_spacing,) * 3, pet_origin)
    # the blurred, noiseless PET profile vs depth, depth looked up at the MRI-frame point
    didx = np.round((src - mri_origin) / sp).astype(int)[:, ::-1]
    inside = np.all((didx >= 0) & (didx < np.array(g.mri_shape)), axis=1)
    pet_depth = np.zeros(len(src), np.float32)
    pet_tum = np.zeros(len(src), bool)
    pet_depth[inside] = depth3[tuple(didx[inside].T)]
    pet_tum[inside] = tumour[tuple(didx[inside].T)]
    pet_profile_blur = _bin_profile(pet_clean.reshape(-1), pet_depth, pet_tum, 0.8)
    pet_slope_blur_fit = _fit_slope(pet_profile_blur, 1.6)
    uptake = {
        "tumour_mean_suv_design": float(act[tumour].mean()),
        "tumour_max_suv_design": float(act[tumour].max()),
        "viable_tumour_mean_suv_design": float(act[viable].mean()),
        "necrotic_core_mean_suv_design": float(act[core].mean()) if core.any() else None,
        "tumour_mean_suv_pet_grid_noiseless": float(pet_clean.reshape(-1)[pet_tum].mean()),
        "tumour_mean_suv_pet_grid_written": float(pet.reshape(-1)[pet_tum].mean()),
        "note": "design: the noiseless, unblurred uptake on the MRI grid; pet_grid: PET voxels whose MRI-frame "
                "point (through the true transform) lies in the tumour mask, before and after noise",
    }
    del act, act_ds, blurred, tex, vsd, vfrac, depth3, body_depth, ramp

    # ---------------------------------------------------------------- the section canvas (z = z0)
    px = g.fluo_px
    m = int(np.ceil(0.8 / px))
    fny, fnx = g.fluo_shape
    cxs = (np.arange(fnx + 2 * m) - m) * px
    cys = (np.arange(fny + 2 * m) - m) * px
    reg = ph.regions(_points(cxs, cys, np.array([z0]))[0])
    tissue_c, core_c = reg["tissue"], reg["core"]
    tumour_c = reg["tumour"] & tissue_c
    viable_c = tumour_c & ~core_c
    del reg
    vsd_c = ph_mod.vessel_surface_distance((cxs, cys, np.array([z0])), ph.vessels, reach=0.3)[0]
    vfrac_c = (np.clip(0.5 - vsd_c / px, 0.0, 1.0) * tissue_c).astype(np.float32)
    peri_c = (np.exp(-np.maximum(vsd_c, 0.0) / DYE_PERI_DECAY_MM) * tissue_c).astype(np.float32)
    depth2 = _depth(tumour_c, px)
    rim_c = (viable_c * np.exp(-depth2 / DYE_RIM_DECAY_MM)).astype(np.float32)
    lipo_c = DYE_RIM * rim_c + DYE_PERIVASCULAR * peri_c  # nanoparticle (liposome) density
    dye_c = DYE_AUTOFLUOR * tissue_c + lipo_c
    ves_c = VESSEL_AUTOFLUOR * tissue_c + VESSEL_STAIN * vfrac_c
    optical = 0.8  # px, the microscope's blur
    crop = (slice(m, m + fny), slice(m, m + fnx))
    dye_f = ndimage.gaussian_filter(dye_c, optical)[crop]
    ves_f = ndimage.gaussian_filter(ves_c, optical)[crop]
    fluo_clean = np.stack([ves_f, dye_f])
    counts = rng_fluo.poisson(CAMERA_GAIN * fluo_clean) + CAMERA_OFFSET + rng_fluo.normal(0, CAMERA_READ_NOISE, fluo_clean.shape)
    fluo = np.clip(np.round(counts), 0, 65535).astype(np.uint16)
    section_mask = tumour_c[crop].astype(np.uint8)
    fuuid = deterministic_uuid("fluorescence", seed, size, GENERATOR_VERSION)
    write_ome_tiff(tmp / "fluorescence.ome.tif", fluo, px * 1000, ["vessels", "nanoparticle dye"], fuuid,
                   position_mm=(0.0, 0.0, z0), emission_nm=(520.0, 665.0))
    write_ome_tiff(tmp / "section_mask.ome.tif", section_mask[None], px * 1000, ["tumour"],
                   deterministic_uuid("section_mask", seed, size, GENERATOR_VERSION), position_mm=(0.0, 0.0, z0))
    dye_profile = _bin_profile(dye_f, depth2[crop], section_mask.astype(bool), max(0.05, 2 * px))
    dye_slope_fit = _fit_slope(dye_profile, 0.5)

    # fluorescence correlations on the noiseless maps, over the tissue
    tis_f = tissue_c[crop]
    r_dye_vessels = pearson(dye_f[tis_f], ves_f[tis_f])
    thr_ves = VESSEL_AUTOFLUOR + VESSEL_STAIN / 2
    thr_dye = DYE_AUTOFLUOR + 0.1
    m1 = float(dye_f[tis_f & (ves_f > thr_ves)].sum() / dye_f[tis_f].sum())
    m2 = float(ves_f[tis_f & (dye_f > thr_dye)].sum() / ves_f[tis_f].sum())

    # ---------------------------------------------------------------- MSI
    mny, mnx = g.msi_shape
    mp = g.msi_px
    A = rotation_matrix2d(msi_theta) @ np.array([[msi_scale[0], msi_shear], [0.0, msi_scale[1]]])
    q_c = np.array([(mnx - 1) * mp / 2, (mny - 1) * mp / 2])
    s_c = np.array(TUMOUR_CENTRE_WORLD[:2])
    b = s_c + msi_shift - A @ q_c
    M_msi = homogeneous(A, b)  # MSI point -> section (fluorescence) point
    T_msi = affine2d_inverse(M_msi)  # fluorescence point -> MSI point (fixed -> moving)
    qx, qy = np.meshgrid(np.arange(mnx) * mp, np.arange(mny) * mp)
    S = apply_h(M_msi, np.stack([qx.ravel(), qy.ravel()], axis=1))
    # the laser spot: a Gaussian of sigma = half an MSI pixel. The canvas is first block-averaged by f
    # (a box of f fluorescence pixels adds (f^2 - 1) / 12 px^2 of variance), then blurred by the rest.
    spot = 0.5 * mp / px  # canvas pixels
    fb = max(1, int(spot // 1.5))
    rest = float(np.sqrt(max(spot**2 - (fb * fb - 1) / 12.0, 0.0)) / fb)
    cidx = np.stack([(S[:, 1] / px + m - (fb - 1) / 2) / fb, (S[:, 0] / px + m - (fb - 1) / 2) / fb])

    def down(a: np.ndarray) -> np.ndarray:
        h, w = (a.shape[0] // fb) * fb, (a.shape[1] // fb) * fb
        return a[:h, :w].astype(np.float32).reshape(h // fb, fb, w // fb, fb).mean(axis=(1, 3))

    def at_msi(a_down: np.ndarray) -> np.ndarray:
        sm = ndimage.gaussian_filter(a_down, rest) if rest > 0 else a_down
        return ndimage.map_coordinates(sm, cidx, order=1, cval=0.0).reshape(mny, mnx)

    tissue_d = down(tissue_c)
    lipo_d = down(lipo_c)
    # released doxorubicin diffuses ~80 um from its carrier, within the tissue
    drug_d = ndimage.gaussian_filter(lipo_d, 0.08 / (px * fb)) * tissue_d
    tis_m = at_msi(tissue_d)
    via_m = at_msi(down(viable_c))
    lipo_m = at_msi(lipo_d)
    dye_m = at_msi(down(dye_c))
    ves_m = at_msi(down(ves_c))
    vfr_m = at_msi(down(vfrac_c))
    drug_m = at_msi(drug_d)
    core_m = at_msi(down(core_c))  # haemorrhage in the necrotic core
    # textures are smooth (wavelength >= 0.8 mm): evaluated at the spot centres
    S3 = np.concatenate([S, np.full((S.shape[0], 1), z0)], axis=1)
    tex_m = ph.texture(S3).reshape(mny, mnx)
    tex2_m = ph.texture(S3 + np.array([0.0, 0.0, 37.0])).reshape(mny, mnx)
    tex3_m = ph.texture(S3 + np.array([0.0, 0.0, -23.0])).reshape(mny, mnx)
    ion_maps = {
        "doxorubicin": 900.0 * drug_m * np.clip(1 + 0.4 * tex3_m, 0, None),
        "doxorubicinol": 250.0 * drug_m * (via_m + 0.3 * (tis_m - via_m)) * np.clip(1 + 0.3 * tex_m, 0, None),
        "DSPC": 1200.0 * lipo_m * np.clip(1 + 0.3 * tex2_m, 0, None) + 10.0 * tis_m,
        "HSPC PC 16:0/18:0": 500.0 * lipo_m + 350.0 * tis_m * np.clip(1 + 0.25 * tex_m, 0, None),
        "haem b": 1500.0 * vfr_m + 120.0 * tis_m + 150.0 * core_m * np.clip(1 + 0.6 * tex2_m, 0, None),
    }
    n_bg = 50
    bg_mz = np.sort(np.concatenate([rng_bg.uniform(250, 450, 12), rng_bg.uniform(450, 950, n_bg - 12)]))
    bg_amp = np.exp(rng_bg.uniform(np.log(30), np.log(800), n_bg))
    bg_tum = rng_bg.uniform(-0.6, 0.8, n_bg)
    bg_tex = rng_bg.uniform(-0.3, 0.3, n_bg)
    ion_names = list(ion_maps)
    fixed_mz = np.array([IONS[n]["mz"] for n in ion_names] + list(MATRIX_PEAKS.values()) + list(bg_mz))
    clean = np.concatenate([
        np.stack([ion_maps[n].ravel() for n in ion_names], axis=1),
        np.repeat((40.0 * (1 - 0.7 * np.clip(tis_m, 0, 1))).ravel()[:, None], len(MATRIX_PEAKS), axis=1),
        (tis_m.ravel()[:, None] * bg_amp * np.clip(1 + bg_tum * via_m.ravel()[:, None]
                                                  + bg_tex * tex_m.ravel()[:, None], 0, None)),
    ], axis=1)
    # endogenous ions with planted patterns (with the drug, hypoxia, vessels, tissue, or none)
    endo = endogenous_ions({"tissue": tis_m, "viable": via_m, "drug": drug_m, "vessels": vfr_m}, seed)
    fixed_mz = np.concatenate([fixed_mz, endo["mz"]])
    clean = np.concatenate([clean, endo["patterns"].reshape(len(endo["mz"]), -1).T], axis=1)
    npix = mny * mnx
    yield_ = np.exp(rng_msi.normal(0, 0.12, (npix, 1)))
    noisy = clean * yield_ * (1 + 0.1 * rng_msi.normal(size=clean.shape)) + rng_msi.normal(0, 3.0, clean.shape)
    detected = noisy > 8.0
    ppm_pixel = rng_msi.normal(0, 1.0, (npix, 1))
    mz_all = fixed_mz[None, :] * (1 + 1e-6 * (ppm_pixel + rng_msi.normal(0, 0.5, clean.shape)))
    n_chem = rng_msi.poisson(6, npix)
    chem_mz = rng_msi.uniform(150, 1000, int(n_chem.sum()))
    chem_int = 8.0 + rng_msi.exponential(10.0, int(n_chem.sum()))
    chem_off = np.concatenate([[0], np.cumsum(n_chem)])

    def spectra():
        for i in range(npix):
            keep = detected[i]
            mz = np.concatenate([mz_all[i, keep], chem_mz[chem_off[i]:chem_off[i + 1]]])
            it = np.concatenate([noisy[i, keep], chem_int[chem_off[i]:chem_off[i + 1]]])
            o = np.argsort(mz)
            yield mz[o], it[o].astype(np.float32), (int(i % mnx) + 1, int(i // mnx) + 1)

    write_imzml(tmp / "msi.imzML", spectra(), (mp * 1000, mp * 1000), (mny, mnx),
                deterministic_uuid("msi", seed, size, GENERATOR_VERSION))
    written = np.where(detected[:, : len(ion_names)], noisy[:, : len(ion_names)], 0.0)
    tis_sel = tis_m.ravel() > 0.5

    def r_msi(a: np.ndarray, b: np.ndarray) -> float:
        return pearson(np.ravel(a)[tis_sel], np.ravel(b)[tis_sel])

    corr_design = {
        "DSPC_vs_dye": r_msi(ion_maps["DSPC"], dye_m),
        "HSPC_PC_16:0/18:0_vs_dye": r_msi(ion_maps["HSPC PC 16:0/18:0"], dye_m),
        "doxorubicin_vs_dye": r_msi(ion_maps["doxorubicin"], dye_m),
        "doxorubicin_vs_DSPC": r_msi(ion_maps["doxorubicin"], ion_maps["DSPC"]),
        "doxorubicinol_vs_doxorubicin": r_msi(ion_maps["doxorubicinol"], ion_maps["doxorubicin"]),
        "haem_b_vs_vessels": r_msi(ion_maps["haem b"], ves_m),
    }
    col = {n: written[:, i] for i, n in enumerate(ion_names)}
    corr_written = {
        "DSPC_vs_dye": r_msi(col["DSPC"], dye_m),
        "HSPC_PC_16:0/18:0_vs_dye": r_msi(col["HSPC PC 16:0/18:0"], dye_m),
        "doxorubicin_vs_dye": r_msi(col["doxorubicin"], dye_m),
        "doxorubicin_vs_DSPC": r_msi(col["doxorubicin"], col["DSPC"]),
        "doxorubicinol_vs_doxorubicin": r_msi(col["doxorubicinol"], col["doxorubicin"]),
        "haem_b_vs_vessels": r_msi(col["haem b"], ves_m),
    }
    # what a perfect pipeline finds: MSI ion images resampled (linear) onto the fluorescence grid with the
    # true transform, against the fluorescence channels, over the section's tumour mask inside the MSI field
    jj, ii = np.meshgrid(np.arange(fnx) * px, np.arange(fny) * px)
    qf = apply_h(T_msi, np.stack([jj.ravel(), ii.ravel()], axis=1)) / mp  # MSI (column, row) index
    in_fov = (qf[:, 0] >= 0) & (qf[:, 0] <= mnx - 1) & (qf[:, 1] >= 0) & (qf[:, 1] <= mny - 1)
    sel_f = in_fov & section_mask.ravel().astype(bool)
    qsel = qf[sel_f][:, ::-1].T

    def on_fluo(img: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(np.asarray(img, np.float64).reshape(mny, mnx), qsel, order=1)

    dye_w = fluo[1].astype(np.float64).ravel()[sel_f] - CAMERA_OFFSET
    ves_w = fluo[0].astype(np.float64).ravel()[sel_f] - CAMERA_OFFSET
    dye_n, ves_n = dye_f.ravel()[sel_f], ves_f.ravel()[sel_f]
    corr_fluo_design = {
        "doxorubicin_vs_dye": pearson(on_fluo(ion_maps["doxorubicin"]), dye_n),
        "DSPC_vs_dye": pearson(on_fluo(ion_maps["DSPC"]), dye_n),
        "haem_b_vs_vessels": pearson(on_fluo(ion_maps["haem b"]), ves_n),
        "dye_vs_vessels": pearson(dye_n, ves_n),
    }
    corr_fluo_written = {
        "doxorubicin_vs_dye": pearson(on_fluo(col["doxorubicin"]), dye_w),
        "DSPC_vs_dye": pearson(on_fluo(col["DSPC"]), dye_w),
        "haem_b_vs_vessels": pearson(on_fluo(col["haem b"]), ves_w),
        "dye_vs_vessels": pearson(dye_w, ves_w),
    }
    del jj, ii, qf, in_fov

    tic = noisy.sum(axis=1, where=detected) + np.add.reduceat(chem_int, chem_off[:-1]) * (n_chem > 0)
    tic_on = float(np.median(tic[tis_m.ravel() > 0.9]))
    tic_off = float(np.median(tic[tis_m.ravel() < 0.02])) if np.any(tis_m.ravel() < 0.02) else None

    # ---------------------------------------------------------------- ground truth
    def rnd(a: Any) -> Any:
        return np.round(np.asarray(a, dtype=float), 10).tolist()

    gt: dict[str, Any] = {
        "description": "Synthetic mouse tumour example study; see example_datasets/README.md.",
        "seed": int(seed),
        "size": size,
        "generator_version": GENERATOR_VERSION,
        "conventions": {
            "world": "LPS millimetres, the MRI's world frame; points are (x, y, z)",
            "transforms": "ITK convention: a transform maps points of the FIXED frame to the MOVING frame; "
                          "to resample the moving image onto the fixed grid use the transform as is",
            "homogeneous": "4x4 (3-D) or 3x3 (2-D) row-major matrices acting on column vectors (x, y[, z], 1)",
        },
        "grids": {
            "mri": {"file": "mri.nii.gz", "shape_zyx": list(g.mri_shape), "spacing_xyz_mm": [sp] * 3,
                    "origin_xyz_mm": rnd(mri_origin), "direction": "identity",
                    "units": "arbitrary (T2-weighted, int16)", "also": ["tumour_mask.nii.gz", "vessel_mask.nii.gz"]},
            "pet": {"file": "pet.nii.gz", "shape_zyx": list(g.pet_shape), "spacing_xyz_mm": [g.pet_spacing] * 3,
                    "origin_xyz_mm": rnd(pet_origin), "direction": "identity", "units": "SUVbw (float32)",
                    "psf_fwhm_mm": PET_FWHM_MM, "noise": f"Poisson, {PET_COUNTS_PER_SUV:g} counts per SUV, "
                    f"plus a uniform randoms floor of {PET_RANDOMS_SUV} SUV"},
            "fluorescence": {"file": "fluorescence.ome.tif", "shape_cyx": [2, fny, fnx],
                             "pixel_size_mm": px, "origin_xy_mm": [0.0, 0.0],
                             "channels": ["vessels", "nanoparticle dye"], "dtype": "uint16",
                             "camera": {"offset": CAMERA_OFFSET, "gain_counts_per_unit": CAMERA_GAIN,
                                        "read_noise": CAMERA_READ_NOISE},
                             "also": ["section_mask.ome.tif"]},
            "msi": {"file": "msi.imzML", "shape_yx": [mny, mnx], "pixel_size_mm": mp,
                    "pixel_to_mm": "imzML pixel (X, Y) (1-based column, row) has its centre at MSI-frame point "
                                   "((X - 1) * pixel_size, (Y - 1) * pixel_size) mm",
                    "mode": "processed, centroid, positive", "mz_jitter_ppm": {"per_pixel_sd": 1.0, "per_peak_sd": 0.5},
                    "median_tic_on_tissue": tic_on, "median_tic_off_tissue": tic_off},
        },
        "transforms": {
            "pet_to_mri": {
                "fixed": "mri", "moving": "pet", "type": "rigid (ITK Euler3D / VersorRigid3D)",
                "matrix_4x4": rnd(T_pet),
                "rotation_matrix": rnd(R), "translation_mm": rnd(t_pet), "centre_mm": rnd(centre),
                "rotation_axis": rnd(rotation_axis), "rotation_angle_deg": angle_deg,
                "note": "p_pet = R (p_mri - centre) + centre + translation. The PET shows the phantom at "
                        "p_pet = T(p_mri): resample the PET onto the MRI grid with this transform.",
            },
            "msi_to_fluorescence": {
                "fixed": "fluorescence", "moving": "msi", "type": "affine 2-D (ITK AffineTransform, centre 0)",
                "matrix_3x3": rnd(T_msi), "matrix": rnd(T_msi[:2, :2]), "translation_mm": rnd(T_msi[:2, 2]),
                "inverse_matrix_3x3": rnd(M_msi),
                "design": {"msi_to_section_rotation_deg": float(np.rad2deg(msi_theta)),
                           "msi_to_section_scale_xy": rnd(msi_scale), "msi_to_section_shear": msi_shear,
                           "msi_to_section_shift_mm": rnd(msi_shift),
                           "msi_to_section": "s = Rot(theta) [[sx, shear], [0, sy]] (q - q_c) + s_c + shift, with "
                                             "q_c the MSI grid centre and s_c the tumour centre (x, y)",
                           "q_c_mm": rnd(q_c), "s_c_mm": rnd(s_c)},
                "note": "p_msi = T(p_fluorescence); MSI value at q is the section at T^-1(q) "
                        "(inverse_matrix_3x3), averaged over a Gaussian spot of sigma = pixel/2.",
            },
            "section_in_mri": {
                "z0_mm": float(z0), "plane": "MRI world plane z = z0",
                "in_plane_matrix_3x3": np.eye(3).tolist(),
                # the pose as a transform (ITK convention, fixed = section, moving = MRI): section point
                # (x, y, 0) -> MRI point (x, y, z0), what multiscale.registration.register_slice_to_volume recovers
                "matrix_4x4": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, float(z0)],
                               [0.0, 0.0, 0.0, 1.0]],
                "note": "fluorescence pixel (row i, column j) has its centre at MRI world "
                        "(x = j * pixel_size, y = i * pixel_size, z = z0): its (y, x) mm coordinates are MRI "
                        "world (y, x) coordinates. The OME Plane PositionX/Y/Z (mm) state the same.",
            },
        },
        "phantom": {
            "body_centre_mm": rnd(ph.body_centre), "body_semi_axes_mm": rnd(ph_mod.BODY_SEMI_AXES),
            "tumour_centre_mm": rnd(ph.tumour_centre), "tumour_semi_axes_mm": rnd(ph_mod.TUMOUR_SEMI_AXES),
            "tumour_volume_mm3": float(tumour.sum() * sp**3),
            "necrotic_core_centre_mm": rnd(ph.core_centre), "necrotic_core_semi_axes_mm": rnd(ph_mod.CORE_SEMI_AXES),
            "necrotic_core_volume_mm3": float(core.sum() * sp**3),
            "vessels_in_section": _vessels.section_vessel_truth(ph, z0, (0.0, (fnx - 1) * px), (0.0, (fny - 1) * px)),
            "vessel_segments": len(ph.vessels), "vessel_radius_mm": [float(ph.vessels.radius.min()),
                                                                   float(ph.vessels.radius.max())],
            "section_tissue_fraction": float(tis_f.mean()),
        },
        "pet_uptake": uptake,
        "radial_profiles": {
            "depth": "distance (mm) from a voxel/pixel centre inside the tumour to the tumour surface: "
                     "Euclidean distance transform of the mask minus half a voxel",
            "pet_uptake": {
                "model": "viable tumour: SUV(d) = max(floor, rim - slope * d) * (1 + texture_amplitude * texture); "
                         "necrotic core: core; body background and blood as given (blood by vessel volume fraction)",
                "rim_suv": PET_RIM, "slope_suv_per_mm": -PET_SLOPE, "floor_suv": PET_FLOOR, "core_suv": PET_CORE,
                "background_suv": PET_BACKGROUND, "blood_suv": PET_BLOOD, "texture_amplitude": PET_TEXTURE,
                "design_bins_mri_grid": pet_profile_design,
                "design_slope_fit_0_1mm_suv_per_mm": pet_slope_design_fit,
                "design_bins_viable_no_vessels_mri_grid": pet_profile_viable,
                "design_slope_fit_viable_ramp_suv_per_mm": pet_slope_viable_fit,
                "pet_grid_noiseless_bins": pet_profile_blur,
                "pet_grid_noiseless_slope_fit_0_1.6mm_suv_per_mm": pet_slope_blur_fit,
                "note": "design_bins: means over the MRI tumour mask of the noiseless, unblurred uptake "
                        "(necrotic core included; _viable_no_vessels: core and vessel voxels excluded, fitted "
                        "over the ramp 0 <= d <= (rim - floor) / slope); "
                        "pet_grid_noiseless_bins: means of the blurred noiseless PET over PET voxels whose "
                        "MRI-frame point is in the tumour (what a perfect registration would recover before noise).",
            },
            "dye": {
                "model": "dye(d, s) = autofluor + rim * exp(-d / rim_decay) [viable tumour] "
                         "+ perivascular * exp(-max(s, 0) / perivascular_decay), s = distance to the nearest "
                         "vessel surface; in the section plane, d from the section's tumour outline (2-D)",
                "autofluor": DYE_AUTOFLUOR, "rim": DYE_RIM, "rim_decay_mm": DYE_RIM_DECAY_MM,
                "perivascular": DYE_PERIVASCULAR, "perivascular_decay_mm": DYE_PERI_DECAY_MM,
                "rim_slope_at_surface_per_mm": -DYE_RIM / DYE_RIM_DECAY_MM,
                "units": "noiseless fluorescence units; camera counts = offset + gain * units",
                "design_bins_fluorescence_grid": dye_profile,
                "design_slope_fit_0_0.5mm_per_mm": dye_slope_fit,
            },
        },
        "correlations": {
            "method": "Pearson over tissue pixels; 'design' on the noiseless maps, 'as_written' with the "
                      "written (noisy, thresholded) MSI intensities against the noiseless fluorescence sampled "
                      "at the MSI pixels",
            "fluorescence_dye_vs_vessels_design": r_dye_vessels,
            "msi_design": corr_design,
            "msi_as_written": corr_written,
            "fluorescence_grid_section_mask": {
                "method": "MSI ion images resampled (linear interpolation) onto the fluorescence grid with the "
                          "true msi_to_fluorescence, Pearson against the fluorescence channel over the section's "
                          "tumour mask (inside the MSI field): what a pipeline with perfect registration finds. "
                          "'design': noiseless MSI and fluorescence; 'as_written': the written MSI intensities "
                          "and the written fluorescence minus the camera offset",
                "design": corr_fluo_design,
                "as_written": corr_fluo_written,
            },
        },
        "manders": {
            "method": "on the noiseless fluorescence over the tissue: M1 = sum(dye where vessels > T_vessels) / "
                      "sum(dye); M2 = sum(vessels where dye > T_dye) / sum(vessels); thresholds in noiseless "
                      "units (counts = offset + gain * units)",
            "T_vessels": thr_ves, "T_dye": thr_dye, "M1_dye_in_vessels": m1, "M2_vessels_in_dye": m2,
        },
        "ions": {n: dict(v) for n, v in IONS.items()},
        "matrix_peaks": MATRIX_PEAKS,
        "background_peaks_mz": rnd(bg_mz),
    }
    gt["msi_endogenous_ions"] = endo["truth"]
    return gt


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def generate(
    out_dir: str | Path = DEFAULT_OUT,
    seed: int = 0,
    size: Size = "full",
    overwrite: bool = False,
) -> Path:
    """Generate the example study into ``out_dir`` and return its path.

    The study is built in a temporary folder beside ``out_dir`` and renamed into place, so
    ``out_dir`` never holds a half-written study. When ``out_dir`` already holds a complete study
    of the same ``seed`` and ``size`` (its manifest checksums match), nothing is done.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write; default ``example_datasets/generated`` in the repository.
    seed : int
        Seed of every random choice; the same seed gives byte-identical files.
    size : {"full", "small"}
        ``"full"`` (0.1 mm MRI, 5 µm fluorescence, 75 µm MSI; 17 MB, about 5 s of CPU) or ``"small"`` (for
        tests: 0.25 mm MRI, 25 µm fluorescence, 150 µm MSI; under 3 s).
    overwrite : bool
        Replace an existing, different study (or any other content) in ``out_dir``.

    Returns
    -------
    Path
        ``out_dir``, holding the files listed in :data:`FILES`.

    Raises
    ------
    StudyExistsError
        ``out_dir`` holds something else and ``overwrite`` is False.
    ValueError
        Unknown ``size`` or a negative ``seed``.

    Examples
    --------
    >>> study = generate("/tmp/example-study", seed=0, size="small")  # doctest: +SKIP
    >>> (study / "ground_truth.json").is_file()                        # doctest: +SKIP
    True
    """
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {sorted(SIZES)}; use size='full' or size='small'")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    seed = int(seed)
    out_dir = Path(out_dir).resolve()
    if study_is_complete(out_dir, seed, size):
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise StudyExistsError(f"{out_dir}: exists and is not a folder; remove it or choose another out_dir")
    if out_dir.exists() and not overwrite:
        if any(out_dir.iterdir()):
            man = _read_manifest(out_dir)
            what = (f"a study with seed={man.get('seed')}, size={man.get('size')!r}, "
                    f"generator_version={man.get('generator_version')!r}" if man else "files that are not a study")
            if man and study_is_complete(out_dir):
                pass
            elif man:
                what += " whose files do not match its manifest (incomplete or edited)"
            raise StudyExistsError(
                f"{out_dir}: holds {what}, not seed={seed}, size={size!r}; "
                "pass overwrite=True (--overwrite) to replace it, or choose another out_dir"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the study is an ordinary folder
    try:
        gt = _build(tmp, seed, size)
        for key, _files, write in EXTRAS:
            gt[key] = write(tmp, seed)
        files = {name: {"sha256": _sha256(tmp / name), "bytes": _size(tmp / name)} for name in DATA_FILES}
        gt["files"] = files
        (tmp / "ground_truth.json").write_text(json.dumps(gt, indent=1, allow_nan=False) + "\n")
        files = dict(files)
        files["ground_truth.json"] = {"sha256": _sha256(tmp / "ground_truth.json"),
                                      "bytes": (tmp / "ground_truth.json").stat().st_size}
        manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
                    "grids": asdict(SIZES[size]), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        _move_into_place(tmp, out_dir, seed, size)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path, seed: int, size: Size) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing ``out_dir`` is renamed away first, then removed."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "study")
    try:
        os.replace(tmp, out_dir)
    except OSError:
        # another process finished the same study first: keep theirs if it is the one we wanted
        if not study_is_complete(out_dir, seed, size):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m example_datasets.generate [--out DIR] [--seed N] [--size small]``."""
    ap = argparse.ArgumentParser(prog="python -m example_datasets.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ap.add_argument("--size", choices=sorted(SIZES), default="full", help="full (default) or small (for tests)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing, different study")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out = generate(args.out, seed=args.seed, size=args.size, overwrite=args.overwrite)
    except (StudyExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"example study (seed={args.seed}, size={args.size}) in {out}: "
          f"{total / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
