"""Assemble ``benchmarks/RESULTS.md`` from the per-topic files in ``benchmarks/results/``.

Each benchmark script writes its own ``results/<topic>.md`` (date, command, figures, ratio against the anchor
measured in the same run); this script puts them under one summary, atomically.

Usage: ``python benchmarks/assemble_results.py``
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["msi", "texture", "texture_maps", "registration", "heterogeneity", "io", "study_scale", "example_datasets"]

SUMMARY = """# Benchmark results

Every figure below is a ratio against an anchor measured in the same run on the project's machine kind (2 cores,
24 GB). The §1 and §4 rows are from runs on a quiet machine (2026-11-25 11:40-12:42); older runs in the sections
below were shared with other jobs (wall times inflated; ratios and CPU times hold up better).
Targets are those of `../shared/BENCHMARKS.md`. Per-topic details follow; each section names its command.

| workload (BENCHMARKS.md) | target | measured | met |
| --- | --- | --- | --- |
| §1 imzML, 100 ions, file A | >= 50x pyimzML | 97x (B: 126x); earlier shared-machine runs 104-138x | yes |
| §1 imzML, 1,000 ions / 100 ions | < 2x | A 1.26x, B 1.45x (medians of repeated calls); first call in a fresh process 2.04x / 2.10x, the excess being this VM's first touch of the 320 / 180 MB result (0.67 s fresh vs 0.03 s reused, same run) | yes |
| §1 imzML, reopening | < 0.1 s | 0.006 s (A), 0.002 s (B) | yes |
| §1 imzML, agreement with pyimzML | 1e-6 relative | 8.7e-8 | yes |
| §2 texture, whole ROI, all families | >= 3x pyradiomics | 4.0-4.9x wall, 4.4-5.0x CPU | yes |
| §2 texture, voxel maps, every family | >= 100x pyradiomics GLCM map | 166x-1131x | yes |
| §2 IBSI digital phantom | all 482 values | 482/482 (test suite) | yes |
| §3 registration, MSI-like cross-resolution | error <= best anchor, time <= elastix | 0.62x elastix's error (0.134 vs 0.216 µm; was 0.115 µm / 0.53x before the 2-D search), 0.21-0.32x elastix's time (2026-12-04, two runs) | yes |
| §3 registration, 2-D deformable | same | 0.48-0.61x SimpleITK's error (0.145-0.155 vs 0.24-0.32 µm), 0.72-0.75x elastix's time (2026-12-04, two runs) | yes |
| §3 registration, 3-D deformable | same | 0.50x elastix's error (0.349 vs 0.704 mm); time 0.53x elastix's (11.8 vs 22.1 s, 2026-12-04 22:20, after the cheaper chance test; 0.74-1.09x before it) | yes |
| §3 2-D cross-stain sections, 90/180/270° and mirrored (synthetic from a real IHC image; not a BENCHMARKS.md workload) | error <= best anchor | median rTRE 0.078 % of the diagonal (0.0905 % after the tissue-image fix, which also takes the grey-glass stress case from 16.3 % to 0.345 %) (anchors 20 %: both fail every turned or mirrored pair); on the near-identity control pair 1.11-1.13x elastix's error (0.51 vs 0.46 px); time 2.3-5.7x elastix's; real ANHIR pairs (0.19 % target) not reachable from this machine | turned pairs yes; control pair and time no |
| §4 study scale, linearity in N | T(N) / (N T(1)) near 1 | 0.94-1.07 (N = 2, 4, 8; final code, two runs) | yes |
| §4 study scale, 2 workers | speed-up >= 1.6x | final code, two runs (best of 2 per configuration): N = 2 1.61x / 1.67x, N = 4 1.67x / 1.66x, N = 8 1.72x / 1.97x (the latter inflated by a slow 1-worker run); before this session's pipeline changes 1.43-1.59x | yes |
| §4 memory per worker | independent of N | 874-1054 MB for N = 1..8 (full-size subjects; 552-622 MB small) | yes |

"""


def main() -> Path:
    parts = [SUMMARY]
    files = {p.stem: p for p in sorted((HERE / "results").glob("*.md"))}
    for name in ORDER + sorted(set(files) - set(ORDER)):
        if name in files:
            text = files[name].read_text().strip()
            # demote headings by one level so the file has one title
            text = "\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines())
            parts.append(text + "\n")
    out = HERE / "RESULTS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    print(main())
