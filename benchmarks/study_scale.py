"""Study scale (BENCHMARKS.md section 4): the example study replicated to N subjects.

Measures wall time against N (one worker) and against the number of workers (fixed N), and the
peak resident memory of each worker, on a fresh ``LocalCluster`` (worker processes, one thread
each: the one ``multiscale run`` starts, ``multiscale.cli.local_cluster``) per configuration. The
anchor is one subject on one worker, measured in the same run:

* linearity: ``T(N) / (N * T(1))`` (target 1.0: linear in N);
* speed-up: ``T(N, 1 worker) / T(N, k workers)`` against the target ``0.8 k``;
* memory: peak RSS per worker for each N (target: independent of N);
* worker CPU seconds per subject, which other jobs on a shared machine disturb less than wall time.

Usage::

    python benchmarks/study_scale.py [--size small|full] [--n 1 2 4] [--workers 1 2] [--out FILE]

Data are generated under ``benchmarks/data/`` (git-ignored). Results are printed and written to
``benchmarks/results/study_scale.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "study_scale"


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def replicated_study(data: Path, n: int, folder: Path) -> Path:
    """A copy of the example study file with ``n`` subjects that all read the same generated data."""
    from multiscale.cli import example_study_path

    text = example_study_path().read_text().replace("generated/", f"{data}/")
    subjects = "\n".join(f"  - id: mouse{i + 1:02d}" for i in range(n))
    head, _, tail = text.partition("subjects:\n  - id: mouse01\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"study_n{n}.yaml"
    path.write_text(head + "subjects:\n" + subjects + "\n" + tail)
    return path


def _warm_up(study: str, output: str) -> None:
    """Run a one-subject study inside this (worker) process, to pay imports and compilation once."""
    import os

    from multiscale.pipeline.study import load_study
    from multiscale.pipeline.wiring import run_subject

    st = load_study(study)
    run_subject(st, st.subjects[0], Path(output) / str(os.getpid()))


def run_config(study: Path, output: Path, workers: int, warmup: Path,
               repeats: int = 1) -> tuple[float, float, list[float], int, float, float]:
    """Best wall time (s) and its worker CPU time (s) and cohort-output time (s), peak RSS per worker (MB),
    failed subjects and the slowest repeat's wall time, on a fresh LocalCluster.

    Every worker first runs the one-subject ``warmup`` study (not timed): the first subject a
    process sees pays for imports and first-call compilation (about 20 s here), which would
    otherwise be counted once per worker and hide the per-subject cost. With ``repeats`` > 1 the
    study is run that many times on the same cluster and the fastest run is kept (noise on a
    shared VM only ever adds time); the slowest is reported beside it.
    """
    from distributed import Client

    from multiscale.cli import local_cluster
    from multiscale.pipeline.runner import run_study

    runs = []
    with local_cluster(workers) as cluster, Client(cluster) as client:  # the cluster `multiscale run` starts
        client.run(lambda: __import__("multiscale.pipeline.wiring"))  # imports are not part of the work
        client.run(_warm_up, str(warmup), str(output.parent / "warmup"))  # in every worker process
        for _ in range(max(1, repeats)):
            shutil.rmtree(output, ignore_errors=True)
            cpu0 = sum(client.run(time.process_time).values())
            t0 = time.perf_counter()
            run = run_study(study, output=output, client=client, progress=None)
            wall = time.perf_counter() - t0
            cpu = sum(client.run(time.process_time).values()) - cpu0
            runs.append((wall, cpu, run))
        rss = sorted(client.run(_peak_rss_mb).values())
    wall, cpu, run = min(runs, key=lambda r: r[0])
    for sid, err in run.failed.items():
        print(f"  {sid} failed: {err.splitlines()[-1]}", flush=True)
    return wall, cpu, rss, len(run.failed), run.finish_seconds, max(r[0] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("small", "full"), default="small")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(HERE / "results" / "study_scale.md"))
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration on one cluster; the fastest is kept")
    args = ap.parse_args(argv)

    from multiscale.cli import ensure_example_data

    data = ensure_example_data(args.size, 0, DATA / f"example_{args.size}", progress=print)
    work = DATA / "runs"
    ns = sorted(set(args.n) | {1})
    lines = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"## Study scale ({time.strftime('%Y-%m-%d %H:%M')}, example size {args.size})")
    say()
    say(f"Command: `python benchmarks/study_scale.py --size {args.size} --n {' '.join(map(str, args.n))} "
        f"--workers {' '.join(map(str, args.workers))} --repeats {args.repeats}`; host {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.1f} (other jobs share the machine).")
    say()
    say("| subjects N | workers | wall (s) | slowest repeat (s) | of which cohort outputs (s) | T(N) / (N T(1)) | worker CPU (s) "
        "| CPU / subject (s) | speed-up vs 1 worker | target | peak RSS per worker (MB) | failed |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    t1 = None
    one_worker: dict[int, float] = {}
    for n in ns:
        study = replicated_study(data, n, work)
        for k in sorted(set(args.workers) | {1}):
            if n == 1 and k > 1:
                continue
            wall, cpu, rss, failed, finish, slowest = run_config(study, work / f"out_n{n}_w{k}", k,
                                                                 replicated_study(data, 1, work), args.repeats)
            if n == 1 and k == 1:
                t1 = wall
            if k == 1:
                one_worker[n] = wall
            lin = f"{wall / (n * t1):.2f}" if k == 1 and t1 else "-"
            speed = f"{one_worker[n] / wall:.2f}x" if k > 1 and n in one_worker else "-"
            target = f">= {0.8 * k:.1f}x" if k > 1 else "linear (1.0)"
            say(f"| {n} | {k} | {wall:.1f} | {slowest:.1f} | {finish:.1f} | {lin} | {cpu:.1f} | {cpu / n:.2f} | {speed} | {target} | "
                f"{', '.join(f'{r:.0f}' for r in rss)} | {failed} |")
    say()
    say(f"Anchor: one subject on one worker, T(1) = {t1:.1f} s (measured in this run, after one untimed "
        f"warm-up subject per worker). Wall times are the fastest of {args.repeats} run(s) per configuration, "
        "for the anchor and the 2-worker runs alike.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else "# Study scale benchmark results\n\n"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(previous.rstrip() + "\n\n" + "\n".join(lines) + "\n")
    os.replace(tmp, out)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
