"""`hydra/launcher=batched` (the default for -m): trains a sweep's jobs as stacks.

Jobs are grouped by what must match to share one batched program (harness/spec.py:
stack_key) and split to fit `memory_budget_mb` (harness/stacking.py); each stack trains with
the same engine a single run uses, so the records match the basic launcher's. Each stack's runs
are written to MLflow (one transaction) as soon as it has trained, so a failure later in the
sweep loses nothing already done. One JobReturn per job, in job order, its return value the
run's final metrics with its status and MLflow run id.

Why writes are not overlapped with training in a thread: the training loop issues many small
torch ops from Python, each releasing and re-taking the GIL; a Python-busy writer thread then
holds the GIL for a whole switch interval per op, and training slowed 30-70x when we tried it
(the "convoy effect"). A writer process would compete for the same two cores. The bulk writer
makes tracking cheap enough (~5 ms a run) that serial is the fast choice here.

Where stacks train (`executor`, harness/executors): here (`local`, the default), as Ray remote
tasks (`ray`, options under `ray`), or as submitit jobs on SLURM or local processes
(`submitit`, options under `submitit`); the results come back here to be written. The executor
connects when the launcher is set up, before the sweep validates or writes anything, so a bad
option or an unreachable cluster is one line and exit status 2.

Hydra's per-job machinery (a working directory, .hydra/*.yaml and a log file per job, the
on_job_start/on_job_end callbacks) is not run: each job's record is its MLflow run, whose
config.yaml artifact holds the resolved config.
"""
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher

from harness.executors.on_ray import DEFAULTS as RAY_DEFAULTS
from harness.executors.on_submitit import DEFAULTS as SUBMITIT_DEFAULTS

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.lossbench.batched_launcher.BatchedLauncher"
    # memory for one stack; null: a quarter of RAM (at most 2 GiB) on CPU, half the free memory on CUDA
    memory_budget_mb: Optional[int] = None
    # null: a progress bar when stderr is a terminal and CI is unset; true/false to force
    progress: Optional[bool] = None
    # where stacks train: local (here) | ray | submitit (harness/executors)
    executor: str = "local"
    # a stack whose remote worker died is sent again this many times, then its jobs fail
    max_retries: int = 2
    # hydra.launcher.ray.*: address, num_cpus, num_gpus, cpus_per_stack, gpus_per_stack, runtime_env, in_flight
    ray: Dict[str, Any] = field(default_factory=lambda: dict(RAY_DEFAULTS))
    # hydra.launcher.submitit.*: cluster, folder, partition, timeout_min, cpus_per_task, gpus_per_node, mem_gb, additional, workers
    submitit: Dict[str, Any] = field(default_factory=lambda: dict(SUBMITIT_DEFAULTS))


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="lossbench")


class BatchedLauncher(Launcher):
    def __init__(self, memory_budget_mb: Optional[int] = None, progress: Optional[bool] = None, executor: str = "local",
                 max_retries: int = 2, ray: Any = None, submitit: Any = None) -> None:
        from omegaconf import OmegaConf

        self.memory_budget_mb, self.progress = memory_budget_mb, progress
        self.executor_name, self.max_retries = str(executor), max_retries
        plain = lambda d: OmegaConf.to_container(d, resolve=True) if OmegaConf.is_config(d) else dict(d or {})
        self.options = {"ray": plain(ray), "submitit": plain(submitit)}
        self.config = self.hydra_context = self.task_function = None
        self.context = None   # the sweep's (harness/sweep.py), from the sweeper; else one of its own
        self.executor = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from harness import executors
        from harness.errors import ConfigError

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        try:
            self.executor = executors.make(self.executor_name, self.options.get(self.executor_name, {}),
                                           str(config.hydra.sweep.dir), self.max_retries)
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)

    def bind(self, context) -> None:
        """The lossbench sweeper hands over its SweepContext: parent run, tracker, validated specs."""
        self.context = context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from harness import timing
        from harness.stacking import plan
        from harness.sweep import SweepContext, run_stacks

        specs = self._specs(job_overrides)
        with timing.phase("plan"):
            stacks = plan(specs, self.memory_budget_mb)
        log.info(f"{len(specs)} jobs in {len(stacks)} stacks, trained by the {self.executor_name} executor")
        _hint_if_busy()
        ctx = self.context or SweepContext.for_job(specs[0])
        sweep_dir = str(self.config.hydra.sweep.dir)
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        bar = _progress(len(specs), self.progress)
        written, error = run_stacks(specs, ctx, stacks, on_stack=bar.update, executor=self.executor)
        bar.close()
        per_job = getattr(error, "errors", {})   # StacksFailed: each failed job's own stack's error
        returns: List[JobReturn] = []
        for i, job in enumerate(job_overrides):
            ret = JobReturn(overrides=list(job), working_dir=sweep_dir, task_name=_task_name(self.config),
                            status=JobStatus.COMPLETED if i in written else JobStatus.FAILED)
            if i in written:
                ret.return_value = written[i].value()
            else:   # not run, or its stack failed: the sweep marks it failed, the runs written stay
                ret._return_value = per_job.get(i) or error or RuntimeError("not run: an earlier stack failed")
            returns.append(ret)
        if isinstance(error, KeyboardInterrupt):
            raise error
        return returns

    def _specs(self, job_overrides):
        """The jobs' RunSpecs: validated by the lossbench sweeper (its context), or built here."""
        from harness import timing
        from harness.compose import FastComposer
        from harness.errors import ConfigError
        from harness.spec import build_spec

        with timing.phase("compose"):
            known = self.context.specs if self.context is not None else {}
            if all(tuple(j) in known for j in job_overrides):
                return [known[tuple(j)] for j in job_overrides]
            composer = FastComposer(self.hydra_context.config_loader, self.config)
            try:
                return [build_spec(composer.task_config(j), tuple(j)) for j in job_overrides]
            except ConfigError as e:
                print(e.line(), file=sys.stderr)
                sys.exit(2)


class _progress:
    """runs done / total, runs/s, ETA, diverged: tqdm on a terminal, quiet in CI and in logs."""

    def __init__(self, total: int, enabled: Optional[bool]):
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.bar, self.diverged = None, 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", desc="sweep", dynamic_ncols=True, file=sys.stderr)

    def update(self, results):
        from harness.schema import DIVERGED

        self.diverged += sum(r.status == DIVERGED for r in results)
        if self.bar is not None:
            self.bar.set_postfix(diverged=self.diverged, refresh=False)
            self.bar.update(len(results))

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _hint_if_busy() -> None:
    """PyTorch's CPU threads spin-wait; beside other busy processes that costs 3-10x (README,
    "CPU threads on a shared machine"). Say so once when the machine is already loaded."""
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1) and "OMP_WAIT_POLICY" not in os.environ \
            and "OMP_NUM_THREADS" not in os.environ
    except OSError:
        return
    if busy:
        print("note: this machine is busy (load >= cores); CPU training may run several times faster with "
              "OMP_WAIT_POLICY=PASSIVE or OMP_NUM_THREADS=1 set before the command", file=sys.stderr)


def _task_name(config) -> str:
    try:
        return str(config.hydra.job.name)
    except Exception:
        return "harness"
