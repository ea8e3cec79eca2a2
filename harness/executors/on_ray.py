"""`hydra.launcher.executor=ray`: each stack a Ray remote task (harness.executors.train_stack).

Options (`hydra.launcher.ray.*`):
    address          null: a new Ray on this machine (`ray.init(address="local")`, gone when the
                     sweep ends); `auto`: the cluster `ray start` runs here (or RAY_ADDRESS);
                     `HOST:6379` or `ray://HOST:10001`: a cluster's head
    num_cpus, num_gpus   the resources of a new local Ray (null: all of this machine's);
                     refused with an address (a cluster's nodes say what they have)
    cpus_per_stack, gpus_per_stack   what one stack's task asks for (1 CPU, 0 GPUs): Ray runs
                     as many at once as fit, sets OMP_NUM_THREADS to the CPUs and
                     CUDA_VISIBLE_DEVICES to the GPUs it gives (so `device=auto` trains on a GPU
                     only where a task got one)
    runtime_env      passed to ray.init (e.g. {working_dir: ., pip: [...]}) for a cluster whose
                     nodes lack lossbench; workers import `harness` like the driver
    in_flight        stacks out at once (null: 2 x the stacks the cluster runs at once)

Ray's own task retries are off (max_retries=0): the driver retries a stack whose worker died
(remote.py), so a retry is logged and counted the same way on every executor.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from harness.errors import ConfigError
from harness.executors import train_stack
from harness.executors.remote import Lost, Remote, _short

DEFAULTS: dict[str, Any] = dict(address=None, num_cpus=None, num_gpus=None, cpus_per_stack=1.0, gpus_per_stack=0.0,
                                runtime_env=None, in_flight=None)


class RayExecutor(Remote):
    name = "ray"

    def __init__(self, options: dict[str, Any], max_retries: int):
        super().__init__(max_retries)
        try:
            import ray
        except ImportError:
            raise ConfigError("hydra.launcher.executor", "ray", "an installed ray: pip install 'lossbench[ray]'") from None
        o = {**DEFAULTS, **{k: v for k, v in (options or {}).items()}}
        unknown = sorted(set(o) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"hydra.launcher.ray.{unknown[0]}", o[unknown[0]], "one of " + ", ".join(DEFAULTS))
        for key in ("cpus_per_stack", "gpus_per_stack"):
            if not isinstance(o[key], (int, float)) or o[key] < 0 or (key == "cpus_per_stack" and o[key] <= 0):
                raise ConfigError(f"hydra.launcher.ray.{key}", o[key], "a number > 0" if key == "cpus_per_stack" else "a number >= 0")
        if o["in_flight"] is not None and (not isinstance(o["in_flight"], int) or o["in_flight"] < 1):
            raise ConfigError("hydra.launcher.ray.in_flight", o["in_flight"], "null or an integer >= 1")
        self.ray, self.options = ray, o
        if not ray.is_initialized():
            self._init(o)
        self.task = ray.remote(train_stack).options(num_cpus=o["cpus_per_stack"], num_gpus=o["gpus_per_stack"],
                                                    max_retries=0)

    def _init(self, o: dict[str, Any]) -> None:
        address = o["address"] or "local"
        kw: dict[str, Any] = dict(address=address, include_dashboard=False, logging_level=logging.WARNING)
        if o["runtime_env"]:
            kw["runtime_env"] = dict(o["runtime_env"])
        if address == "local":
            kw.update(num_cpus=o["num_cpus"], num_gpus=o["num_gpus"])
        else:
            for key in ("num_cpus", "num_gpus"):
                if o[key] is not None:
                    raise ConfigError(f"hydra.launcher.ray.{key}", o[key],
                                      f"null with hydra.launcher.ray.address={address} (the cluster's nodes say what they have)")
        # ray.init installs a SIGTERM handler that exits at once; the sweep's own (harness/interrupt.py)
        # must stay the one that decides, so whatever was installed before is put back
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGTERM) if main else None
        try:
            self.ray.init(**kw)
        except Exception as e:  # noqa: BLE001 - any failure to join or start is the address's problem
            raise ConfigError("hydra.launcher.ray.address", o["address"], f"a Ray cluster that can be joined or started ({_short(e)})") from None
        finally:
            if main and before is not None:
                signal.signal(signal.SIGTERM, before)

    def workers(self) -> int:
        res = self.ray.cluster_resources()
        if self.options["gpus_per_stack"]:
            return max(1, int(res.get("GPU", 0) // self.options["gpus_per_stack"]))
        return max(1, int(res.get("CPU", 1) // self.options["cpus_per_stack"]))

    def in_flight(self) -> int:
        return self.options["in_flight"] or 2 * self.workers()

    def submit(self, specs: list, hook: str | None):
        return self.task.remote(specs, hook)

    def ready(self, handles: list, timeout: float) -> list:
        first, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if first and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            first += more
        return first

    def fetch(self, handle) -> tuple[list, float]:
        from ray import exceptions as rx

        try:
            return self.ray.get(handle)
        except rx.RayTaskError as e:        # training raised: that error, with the worker's traceback
            raise e.as_instanceof_cause() from None
        except rx.TaskCancelledError:
            raise
        except rx.RayError as e:            # the worker or its node died, or ran out of memory
            raise Lost(str(e)) from None

    def cancel(self, handles: list) -> None:
        for h in handles:
            try:
                self.ray.cancel(h, force=True)
            except Exception:  # noqa: BLE001 - already finished, or Ray itself is going down
                pass
