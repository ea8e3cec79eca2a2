"""`python -m harness.bench`: the sweep benchmark of the README, end to end.

    python -m harness.bench                  # the 540-run grid (batched), the basic launcher on a
                                             # 30-run subset of it, and the grid x10 (5,400 runs)
    python -m harness.bench --scales 1,10,100 --device cuda   # on a GPU, up to 54,000 runs
    python -m harness.bench --scales 100 --basic 0             # 54,000 runs (curves as Parquet from x100 on)
    python -m harness.bench --basic 0 --executor ray --workers 2   # the stacks on a local Ray of 2 CPUs

The grid (synthetic linear regression, n_train=2000, n_test=1000, d=20, 300 full-batch GD steps):

    loss=mse,mae,huber optimizer.lr=0.001,0.01,0.1,1.0 regularization.kind=l2
    regularization.weight=0,0.001,0.01 outliers.ratio=0,0.05,0.1,0.2,0.3 seed=0,1,2

scaled x10 by seeds 0..29 and x100 by seeds 0..299. Every sweep is a separate `python -m harness
-m ...` process timed from start to exit (the last MLflow record), into one SQLite store whose
schema is created beforehand (a one-off ~2 s a user pays once). The per-phase seconds come from
the sweep's timing.json (compose, data, train, track, report; data loading happens inside compose,
during validation). Peak memory is each sweep process's largest resident set (os.wait4).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOSSES, LRS, WEIGHTS, RATIOS = "mse,mae,huber", "0.001,0.01,0.1,1.0", "0,0.001,0.01", "0,0.05,0.1,0.2,0.3"
SUBSET = ["loss=mse,mae,huber", "optimizer.lr=0.01,0.1", "regularization.kind=l2", "regularization.weight=0.001",
          f"outliers.ratio={RATIOS}", "seed=1"]  # 30 runs
COMMON = ["optimizer=gd", "train.steps=300", "dataset=linear"]


def grid(scale: int) -> list[str]:
    seeds = ",".join(str(s) for s in range(3 * scale))
    return [f"loss={LOSSES}", f"optimizer.lr={LRS}", "regularization.kind=l2", f"regularization.weight={WEIGHTS}",
            f"outliers.ratio={RATIOS}", f"seed={seeds}"]


def executor_overrides(executor: str, workers: int | None) -> list[str]:
    """The batched launcher's overrides that train its stacks on `executor` with `workers`
    (a local Ray of that many CPUs; that many submitit local jobs at once)."""
    out = [f"hydra.launcher.executor={executor}"]
    if executor == "ray" and workers:
        out.append(f"hydra.launcher.ray.num_cpus={workers}")
    if executor == "submitit":
        out.append("hydra.launcher.submitit.cluster=local")
        if workers:
            out.append(f"hydra.launcher.submitit.workers={workers}")
    return out


def sweep(args: list[str], uri: str, experiment: str, workdir: Path, launcher: str, device: str,
          curves: str = "metrics", extra: list[str] = ()) -> dict:
    sweep_dir = workdir / experiment
    cmd = [sys.executable, "-m", "harness", "-m", *args, *COMMON, f"device={device}", f"hydra/launcher={launcher}",
           f"tracking.curves={curves}", *extra,
           f"tracking.uri={uri}", f"tracking.experiment={experiment}", f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "CI": "1"}  # no progress bar in the timing
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this sweep's own peak memory, not the largest so far
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"error: sweep {experiment} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    timing = json.loads((sweep_dir / "timing.json").read_text())
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    return {"experiment": experiment, "launcher": launcher, "curves": curves, "runs": timing.pop("runs"), "wall_s": wall,
            "phases": timing, "peak_rss_mb": peak_mb}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default=None, help="grid multiples to run with the batched launcher (1 = 540 runs; "
                    "default 1,10 on CPU, 1,10,100 on a GPU)")
    ap.add_argument("--basic", type=int, default=1, help="also run the 30-run subset with Hydra's basic launcher (0: skip)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--curves", default=None, help="tracking.curves for the batched sweeps: metrics | parquet "
                    "(default: metrics up to x10, parquet from x100 on: 28 million metric rows are not a sweep's job)")
    ap.add_argument("--workdir", default=None, help="where the store and sweep folders go (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--executor", default="local", choices=("local", "ray", "submitit"),
                    help="where the batched sweeps train their stacks (hydra.launcher.executor)")
    ap.add_argument("--workers", type=int, default=None, help="ray: the local Ray's CPUs; submitit: local jobs at once")
    ap.add_argument("--uri", default=None, help="the tracking store (default: sqlite in the workdir), e.g. "
                    "postgresql://HOST/DB to measure the bulk writer on PostgreSQL")
    a = ap.parse_args(argv)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="lossbench-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    uri = a.uri or f"sqlite:///{workdir / 'bench.db'}"
    print(f"benchmark store: {uri}", flush=True)
    warm = sweep(["loss=mse", "seed=0", "train.steps=5"], uri, "warmup", workdir, "batched", a.device)
    del warm
    results = []
    if a.scales is None:
        a.scales = "1,10,100" if _on_gpu(a.device) else "1,10"
        if "100" not in a.scales:
            print("(the x100 grid, 54,000 runs, is opt-in on CPU: --scales 1,10,100, ~8 min on 2 cores)")
    scales = [int(s) for s in a.scales.split(",") if s]
    if a.basic:
        results.append(sweep(SUBSET, uri, "basic-subset", workdir, "basic", a.device))
        _show(results[-1])
    for scale in scales:
        curves = a.curves or ("parquet" if scale >= 100 else "metrics")
        extra = executor_overrides(a.executor, a.workers) if a.executor != "local" else []
        name = f"batched-x{scale}" + (f"-{a.executor}" if extra else "")
        results.append(sweep(grid(scale), uri, name, workdir, "batched", a.device, curves, extra))
        _show(results[-1])
    basic = next((r for r in results if r["launcher"] == "basic"), None)
    first = next((r for r in results if r["experiment"].startswith("batched-x1") and r["runs"] == 540), None)
    if basic and first:
        ratio = (basic["wall_s"] / basic["runs"]) / (first["wall_s"] / first["runs"])
        print(f"per-run speed-up of the batched launcher over the basic one: {ratio:.1f}x "
              f"({basic['wall_s'] / basic['runs'] * 1000:.0f} ms vs {first['wall_s'] / first['runs'] * 1000:.1f} ms a run)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


def _on_gpu(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def _show(r: dict) -> None:
    ph = r["phases"]
    parts = " ".join(f"{k}={ph[k]:.2f}s" for k in ("compose", "data", "train", "worker", "ship", "track", "report", "plan")
                     if k in ph)
    print(f"{r['experiment']:>14} ({r['launcher']:>7}, curves {r['curves']:>7}): {r['runs']:6d} runs in {r['wall_s']:7.2f} s whole process = "
          f"{r['runs'] / r['wall_s']:8.1f} runs/s | train {r['runs'] / max(ph.get('train', 1e-9), 1e-9):9.0f} runs/s | "
          f"{parts} | peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
