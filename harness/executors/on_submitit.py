"""`hydra.launcher.executor=submitit`: each stack a submitit job (SLURM, or a local process).

Options (`hydra.launcher.submitit.*`):
    cluster          null: SLURM where `sbatch` is found, else local processes; `slurm`; `local`
    folder           the jobs' pickles and logs (null: <sweep dir>/.submitit/<job id>)
    partition, timeout_min, cpus_per_task, gpus_per_node, mem_gb   the job's resources
                     (SLURM's; a local job keeps timeout_min, gpus_per_node, cpus_per_task)
    additional       more of submitit's parameters, by their names
                     (`{slurm_account: X, slurm_qos: Y, slurm_setup: [...]}`)
    workers          jobs out at once (null: this machine's CPUs for local jobs, 16 on SLURM)

A job runs `harness.executors.train_stack` in a fresh Python on the node (it imports lossbench
there: the same checkout or install at the same path, as submitit expects), with
`cpus_per_task` torch threads; its results come back through the job folder's pickle. A job
that ends without a result (killed, preempted, timed out, its node lost) is `Lost`: the driver
submits it again (remote.py); a job whose training raised fails its stack's jobs.
"""
from __future__ import annotations

import os
import time
from typing import Any

from harness.errors import ConfigError
from harness.executors import train_stack
from harness.executors.remote import Lost, Remote

DEFAULTS: dict[str, Any] = dict(cluster=None, folder=None, partition=None, timeout_min=60, cpus_per_task=1,
                                gpus_per_node=0, mem_gb=None, additional=None, workers=None)


class SubmititExecutor(Remote):
    name = "submitit"
    poll_s = 0.2

    def __init__(self, options: dict[str, Any], sweep_dir: str, max_retries: int):
        super().__init__(max_retries)
        try:
            import submitit
        except ImportError:
            raise ConfigError("hydra.launcher.executor", "submitit",
                              "an installed submitit: pip install 'lossbench[slurm]'") from None
        o = {**DEFAULTS, **(options or {})}
        unknown = sorted(set(o) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"hydra.launcher.submitit.{unknown[0]}", o[unknown[0]], "one of " + ", ".join(DEFAULTS))
        if o["cluster"] not in (None, "local", "slurm"):
            raise ConfigError("hydra.launcher.submitit.cluster", o["cluster"], "null (SLURM if present, else local), slurm or local")
        for key in ("timeout_min", "cpus_per_task"):
            if not isinstance(o[key], int) or o[key] < 1:
                raise ConfigError(f"hydra.launcher.submitit.{key}", o[key], "an integer >= 1")
        if o["workers"] is not None and (not isinstance(o["workers"], int) or o["workers"] < 1):
            raise ConfigError("hydra.launcher.submitit.workers", o["workers"], "null or an integer >= 1")
        folder = o["folder"] or os.path.join(sweep_dir, ".submitit")
        try:
            self.ex = submitit.AutoExecutor(folder=os.path.join(folder, "%j"), cluster=o["cluster"])
        except Exception as e:  # noqa: BLE001 - no SLURM here, or a folder it cannot make
            raise ConfigError("hydra.launcher.submitit.cluster", o["cluster"], f"a cluster submitit finds here ({e})") from None
        params = dict(name="lossbench", timeout_min=o["timeout_min"], cpus_per_task=o["cpus_per_task"],
                      gpus_per_node=o["gpus_per_node"])
        if o["mem_gb"] is not None:
            params["mem_gb"] = o["mem_gb"]
        if o["partition"]:
            params["slurm_partition"] = o["partition"]
        params.update(dict(o["additional"] or {}))
        try:
            self.ex.update_parameters(**params)
        except Exception as e:  # noqa: BLE001 - submitit names the parameters it knows
            raise ConfigError("hydra.launcher.submitit.additional", o["additional"], str(e).splitlines()[0]) from None
        self.local = self.ex.cluster == "local"
        self.threads = o["cpus_per_task"]
        self._workers = o["workers"] or ((os.cpu_count() or 1) if self.local else 16)

    def workers(self) -> int:
        return self._workers

    def in_flight(self) -> int:
        # a job out is a process (or a SLURM job) training: no more than the workers asked for
        return self._workers

    def submit(self, specs: list, hook: str | None):
        job = self.ex.submit(train_stack, specs, hook, self.threads)
        if self.local:
            # submitit waits up to 15 s for a slow shared file system to show a result; a local
            # job's folder is on this machine, so a job without one has none
            job._results_timeout_s = 1
        return job

    def ready(self, handles: list, timeout: float) -> list:
        done = [j for j in handles if j.done()]
        if not done:
            time.sleep(timeout)
            done = [j for j in handles if j.done()]
        return done

    def fetch(self, handle) -> tuple[list, float]:
        from submitit.core.utils import UncompletedJobError

        try:
            return handle.result()
        except UncompletedJobError as e:   # no result: the job's process or node is gone
            raise Lost(str(e)) from None

    def cancel(self, handles: list) -> None:
        for job in handles:
            try:
                if self.local:
                    _kill_local(int(job.job_id))
                else:
                    job.cancel(check=False)   # scancel
            except Exception:  # noqa: BLE001 - already finished
                pass


def _kill_local(controller: int) -> None:
    """Ends a local job: its training processes (the children of submitit's controller, whose
    pid is the job id) are killed, and the controller then ends by itself. submitit's own
    cancel interrupts the controller, which prints a KeyboardInterrupt traceback into the
    sweep's stderr; a controller that has no child yet is killed itself."""
    import signal

    children = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == controller:
                        children.append(int(pid))
            except (OSError, IndexError, ValueError):
                continue
    for pid in children or [controller]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
