"""`hydra/sweeper=lossbench` (the default): Hydra's basic sweeper (cartesian product of the
overrides, `hydra.sweeper.params` from experiment files), plus what a tracked sweep needs:

1. every job's config is composed (cheaply, harness/compose.py) and validated into a RunSpec
   before anything runs, and the tracking store is checked (harness/store.py): a bad value
   anywhere in the grid, or a store that cannot take the runs, is one line and exit status 2,
   with nothing written to MLflow;
2. one MLflow parent run per sweep (tags: lossbench.sweep_id, lossbench.kind=sweep; params:
   the swept values; artifacts: multirun.yaml and the study). Its context (harness/sweep.py:
   parent, sweep id, tracker, the validated specs) goes to a launcher that takes it (`bind`,
   the batched launcher) and, through the environment, to jobs that Hydra runs through the task
   function (basic, joblib, submitit), so children of any launcher attach to it;
3. at the end, the parent records how many runs converged and diverged, and its status
   (FINISHED, or FAILED with the runs already written kept; SIGTERM and SIGINT end it as KILLED
   with one line);
4. resume (harness/resume.py): rerunning the command of a sweep that did not finish trains only
   the configurations it has not recorded, into the same parent (`hydra.sweeper.resume`);
5. `hydra.sweeper.search=optuna` (or a tuned study's `tune.search: optuna`): an adaptive search
   over the ranges of the command line instead of the grid (hydra_plugins/lossbench/search.py);
6. with `hydra.sweeper.report=true` (set by the studies in experiments/), the comparison report
   is built from MLflow and its path printed, with the `mlflow ui` command that opens the store.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

from harness import resume as _resume
from hydra_plugins.lossbench import tally as _ending
from hydra_plugins.lossbench.sweep_info import _choices, _launcher_name, _study, _ui_lines, _write_timing  # noqa: F401
from hydra_plugins.lossbench.tally import counts as _counts, steps_run as _steps_run, values as _values

log = logging.getLogger(__name__)


@dataclass
class LossbenchSweeperConf:
    _target_: str = "hydra_plugins.lossbench.sweeper.LossbenchSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    report: bool = False  # build the report (python -m harness.report) when the sweep ends
    resume: str = "auto"  # auto: continue an unfinished sweep of the same grid | never | a sweep id (harness/resume.py)
    # adaptive search (harness/search/, hydra_plugins/lossbench/search.py): grid | optuna, and its options
    search: str = "grid"
    trials: Any = None    # trials per study (default 32; a tuned study's tune.trials)
    round: Any = None     # trials asked and trained at once per study (default 8)
    sampler: Any = None   # tpe (default) | random
    seed: Any = 0         # the sampler's seed
    storage: Any = None   # Optuna storage URL (default: optuna.db beside an SQLite MLflow store)
    metric: Any = None    # the objective (default val/<the family's primary metric>)


ConfigStore.instance().store(group="hydra/sweeper", name="lossbench", node=LossbenchSweeperConf, provider="lossbench")


class LossbenchSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 report: bool = False, resume: str = "auto", search: str = "grid", trials: Any = None,
                 round: Any = None, sampler: Any = None, seed: Any = 0, storage: Any = None, metric: Any = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.report, self.resume = report, str(resume)
        self.search, self.trials, self.round, self.sampler = search, trials, round, sampler
        self.search_seed, self.storage, self.metric = seed, storage, metric

    def sweep(self, arguments: List[str]) -> Any:
        """The sweep, with SIGTERM turned into the KeyboardInterrupt that SIGINT raises, and
        either ending it with one line (the parent KILLED, its counts right) and exit status
        128 + the signal's number; a store that fails for good (a full disk) ends it with one
        line too (the store, the cause, the runs kept, the parent FAILED) and exit status 1, as
        does a remote stack whose worker was lost past its retries (the other stacks recorded)."""
        import signal

        from harness.executors import StackLost
        from harness.interrupt import Interrupted, handled
        from harness.tracking.store import StoreError

        try:
            with handled():
                return self._sweep(arguments)
        except KeyboardInterrupt as e:
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            print(_ending.interrupted(getattr(self, "_ctx", None), getattr(self, "_counts", None),
                                     signal.Signals(signum).name), file=sys.stderr)
            sys.exit(128 + int(signum))
        except StoreError as e:   # a full disk, a store that stays locked: one line, exit status 1
            print(e.line(_ending.failed(getattr(self, "_ctx", None), getattr(self, "_counts", None),
                                        getattr(self, "_close_error", None))), file=sys.stderr)
            sys.exit(1)
        except StackLost as e:    # a remote worker lost past its retries: one line, exit status 1
            print(_ending.lost(getattr(self, "_ctx", None), getattr(self, "_counts", None), e), file=sys.stderr)
            sys.exit(1)

    def _sweep(self, arguments: List[str]) -> Any:
        """Validate every job, open (or resume) the parent run, launch, close the parent, report."""
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        from hydra_plugins.lossbench import search, tuned

        t0 = time.perf_counter()
        lines = self._parse_config() + list(arguments)
        tuning = tuned.tuning_of(self.config)
        searching = search.options(self, tuning, lines)   # None: a grid
        grids = [(self._auto_losses(g), d) for g, d in self._grids(lines, list(arguments))]
        if tuning is not None:     # phase 1 of the tuned protocol: the grid on a validation split
            grids = [(tuning.phase1(g, searched=searching is not None), d) for g, d in grids]
        if searching is not None:  # an adaptive search instead of the grid
            return search.run(self, searching, tuning, grids, lines, t0)
        jobs, specs = self._validate(grids, t0)
        finals = tuned.Finals(self, tuning, jobs, specs) if tuning is not None else None   # validated now
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        ctx, recorded = self._start(lines, jobs, specs, _study(self.config, specs), len(jobs) + (finals.count if finals else 0))
        returns, done, diverged, pruned = self._launch(ctx, jobs, t0, finals, recorded)
        from harness.executors import StackLost
        from harness.tracking.store import StoreError

        for batch in returns:
            for r in batch:
                if isinstance(r._return_value, (StoreError, StackLost)):   # said in one line by sweep(), not logged by Hydra
                    raise r._return_value
                _ = r.return_value  # re-raise a failed job's exception, as Hydra's sweeper does
        stopped = f"{diverged} diverged" + (f", {pruned} pruned" if pruned else "")
        print(f"sweep {ctx.sweep_id} done: {done} runs ({stopped}) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        self._finish(specs[0], ctx, done)
        _write_timing(sweep_dir, len(jobs))
        return returns

    def _grids(self, lines: List[str], arguments: List[str]) -> List[tuple]:
        """[(sweep lines, the group choices its jobs start from)]: the sweep's own grid, or, for a
        study made of parts (the tour: study.parts), each part's grid (its experiment file's
        hydra.sweeper.params, with the part's overrides), its runs going into this sweep's
        experiment, the command line's values applied to every part."""
        parts = (OmegaConf.to_container(self.config.study, resolve=True) or {}).get("parts") if self.config.get("study") else None
        if not parts:
            return [(lines, _choices(self.config))]
        from harness.paths import EXPERIMENTS

        experiment = str(self.config.tracking.experiment)
        rest = [a for a in arguments if a.lstrip("+~").split("=", 1)[0] != "experiment"]   # the tour itself goes
        out = []
        for part in parts:
            name = part["name"]
            node = OmegaConf.to_container(OmegaConf.load(EXPERIMENTS / f"{name}.yaml"), resolve=False)
            params = {**((node.get("hydra") or {}).get("sweeper", {}).get("params") or {}), **(part.get("overrides") or {})}
            part_lines = [f"+experiment={name}", f"tracking.experiment={experiment}",
                          *(f"{k}={v}" for k, v in params.items()), *rest]
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, [f"+experiment={name}"])
            out.append((part_lines, _choices(cfg)))
        return out

    def _auto_losses(self, lines: List[str]) -> List[str]:
        """`loss=auto` (the advise study): every built-in loss that trains a predictor for the
        data's task with the chosen model (harness.losses.fitting), the task read from the
        grid's first job's data set."""
        if "loss=auto" not in lines:
            return lines
        from harness.compose import FastComposer
        from harness.data import DATASETS
        from harness.errors import ConfigError
        from harness.losses import fitting

        rest = [ln for ln in lines if ln != "loss=auto"]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        first = next(iter(job for batch in self.split_arguments(parser.parse_overrides(rest), None) for job in batch), [])
        try:
            cfg = FastComposer(self.hydra_context.config_loader, self.config).task_config(first)
            cls = DATASETS.get(cfg["dataset"]["name"])
            task = cls.task_of(cls.normalize(cfg["dataset"], "dataset"))
            losses = fitting(task, cfg["model"]["name"])
            if not losses:
                raise ConfigError("loss", "auto", f"a data set whose task has built-in losses (task {task} has none)")
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)
        log.info(f"loss=auto: the losses for task {task}: {', '.join(losses)}")
        return [f"loss={','.join(losses)}" if ln == "loss=auto" else ln for ln in lines]

    def _validate(self, grids: List[tuple], t0: float):
        """(jobs, specs): the grids' jobs (each without the options its choices lack) and their
        validated RunSpecs; a bad value anywhere is one line and exit status 2."""
        from harness import conditional, timing
        from harness.compose import FastComposer
        from harness.errors import ConfigError
        from harness.spec import build_spec

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs, n_grid = [], 0
        try:
            for lines, defaults in grids:
                grid = [job for batch in self.split_arguments(parser.parse_overrides(lines), None) for job in batch]
                n_grid += len(grid)
                grid = conditional.prune(grid, defaults)   # loss.delta only for the losses that have it
                conditional.check(grid, defaults)
                jobs += grid
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)
        composer = FastComposer(self.hydra_context.config_loader, self.config)
        try:
            with timing.phase("compose"):  # includes loading each distinct data set once (phase "data")
                specs = [build_spec(composer.task_config(job), tuple(job)) for job in jobs]
            where = {(s.tracking["uri"], s.tracking["experiment"]) for s in specs}
            if len(where) > 1:
                raise ConfigError("tracking.experiment", sorted(where)[1][1], "one tracking.uri and experiment per sweep")
            from harness import store

            store.check(specs[0].tracking["uri"])   # before the parent run is created
            store.check_experiment(specs[0].tracking["uri"], specs[0].tracking["experiment"])
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)
        log.info(f"validated {len(jobs)} jobs in {time.perf_counter() - t0:.2f} s"
                 + (f" ({n_grid - len(jobs)} grid points repeat a job: options of a choice that lacks them)" if n_grid > len(jobs) else ""))
        return jobs, specs

    def _start(self, lines: List[str], jobs, specs, study: Dict[str, Any], n_runs: int):
        """(the sweep's context, handed to a launcher that takes it; {config hash: run id} of the
        runs it holds already): a new parent run (the swept values as params, the study as an
        artifact), or the parent of the unfinished sweep of this grid that it resumes."""
        from harness import schema as S
        from harness import timing
        from harness.sweep import SweepContext, tracker_for

        from harness.tracking.store import guarded

        with timing.phase("track"):
            tracker = tracker_for(specs[0])
        self._n_runs = n_runs
        key = _resume.sweep_key([s.config_hash for s in specs], specs[0].tracking["experiment"])
        with timing.phase("track"), guarded(tracker.uri, "resuming the sweep"):
            resumed = self._resumed(tracker, key, n_runs)
        if resumed is not None:
            ctx = SweepContext(resumed[0], resumed[1], tracker, specs={tuple(job): s for job, s in zip(jobs, specs)})
            self._bind(ctx)
            return ctx, resumed[2]
        parent, sweep_id = self._new_parent(tracker, lines, study, n_runs, key)
        ctx = SweepContext(sweep_id, parent, tracker, specs={tuple(job): s for job, s in zip(jobs, specs)})
        self._bind(ctx)
        print(f"sweep {sweep_id}: {n_runs} runs -> MLflow {specs[0].tracking['uri']} "
              f"experiment {specs[0].tracking['experiment']!r}, parent run {parent}", file=sys.stderr)
        return ctx, {}

    def _bind(self, ctx) -> None:
        self._ctx = ctx
        bind = getattr(self.launcher, "bind", None)
        if callable(bind):
            bind(ctx)

    def _resumed(self, tracker, key: str, n_runs: int):
        from harness.errors import ConfigError

        try:
            return _resume.continue_sweep(tracker, key, self.resume, n_runs)
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)

    def _new_parent(self, tracker, lines: List[str], study: Dict[str, Any], n_runs: int, grid_key: str,
                    extra: Optional[Dict[str, str]] = None):
        import json

        from harness import schema as S
        from harness import timing
        from harness.sweep import new_sweep_id
        from harness.tracking.store import guarded

        sweep_id = new_sweep_id()
        swept = {}
        for o in OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(lines):
            key = o.key_or_group.replace("/", ".")  # no +, ~ or @package: MLflow allows [\w./ -] in names
            swept[S.sweep_param(key)] = ",".join(o.sweep_string_iterator()) if o.is_sweep_override() else o.get_value_element_as_str()
        params = {**swept, **(extra or {}), S.N_RUNS_PARAM: str(n_runs), S.LAUNCHER_PARAM: _launcher_name(self.config)}
        tags = {S.STUDY_TAG: str(study.get("name", "")), S.PROTOCOL_TAG: str(study.get("protocol", "shared"))} if study else {}
        tags.update({S.OWNER_TAG: _resume.owner(), S.SWEEP_STATUS_TAG: "running",
                     S.ARGV_TAG: json.dumps(sys.argv[1:])[:5000], S.CWD_TAG: os.getcwd()})
        artifacts = {S.MULTIRUN_ARTIFACT: OmegaConf.to_yaml(self.config)}
        if study:
            artifacts[S.STUDY_ARTIFACT] = OmegaConf.to_yaml(OmegaConf.create(study))
        with timing.phase("track"):
            parent = tracker.start_sweep(sweep_id, params, tags, artifacts)
            # the grid's key last: a parent is resumable only once its params and artifacts are in
            with guarded(tracker.uri, "tagging the sweep's parent run"):
                tracker.client.set_tag(parent, S.SWEEP_KEY_TAG, grid_key)
        return parent, sweep_id

    def _launch(self, ctx, jobs, t0: float, finals=None, recorded: Optional[Dict[str, str]] = None):
        """Launches the jobs the sweep has not recorded (in chunks of max_batch_size), then, for
        the tuned protocol, the final runs at the settings phase 1 chose, into the same parent;
        closes the parent run with the counts of the whole sweep, read from the store, whatever
        happens: (returns, runs recorded, runs diverged)."""
        from harness import schema as S
        from harness import timing

        recorded = recorded or {}
        status, returns = "FAILED", []
        todo = [j for j in jobs if ctx.specs[tuple(j)].config_hash not in recorded]
        try:
            with ctx.exported():
                self._launch_all(todo, returns)
                if finals is not None:
                    more = finals.jobs(_values(ctx, returns, recorded), ctx)
                    self._launch_all([j for j in more if ctx.specs[tuple(j)].config_hash not in recorded],
                                     returns, start=len(todo))
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            failed = sum(1 for batch in returns for r in batch if r.status != JobStatus.COMPLETED)
            done, diverged, pruned = _counts(ctx, returns, recorded)
            if failed or (status == "FINISHED" and done < self._n_runs):
                status = "FAILED"
            self._counts = (done, self._n_runs)
            self._close(ctx, status, {S.SWEEP_RUNS: done, S.SWEEP_DIVERGED: diverged, S.SWEEP_FAILED: failed,
                                      S.SWEEP_MISSING: max(self._n_runs - done, 0), S.SWEEP_PRUNED: pruned,
                                      S.SWEEP_STEPS_RUN: _steps_run(ctx, returns, recorded),
                                      S.SWEEP_SECONDS: time.perf_counter() - t0})
        return returns, done, diverged, pruned

    def _close(self, ctx, status: str, metrics: Dict[str, float]) -> None:
        """The parent run closed with its status and counts. A store that refuses (the full disk
        that failed a stack) leaves it RUNNING, for resume to close: the error that stopped the
        sweep is the one reported, this one is kept for its line (tally.failed)."""
        from harness import schema as S
        from harness import timing
        from harness.tracking.store import StoreError

        self._close_error = None
        try:
            with timing.phase("track"):
                ctx.tracker.end_sweep(ctx.parent, status, {S.SWEEP_STATUS_TAG: status.lower()}, metrics)
        except StoreError as e:
            self._close_error = e
            if status == "FINISHED":   # nothing else failed: this is the sweep's error
                raise

    def _launch_all(self, jobs, returns: list, start: int = 0) -> None:
        if not jobs:
            return
        chunk = self.max_batch_size or len(jobs)
        for i in range(0, len(jobs), chunk):
            returns.append(self.launcher.launch(jobs[i:i + chunk], initial_job_idx=start + i))

    def _finish(self, spec, ctx, n_runs: int) -> None:
        """The report (studies) or the command that builds it, and the command that opens MLflow;
        the parent run's description says the same (the report writes its verdicts there)."""
        uri, experiment = spec.tracking["uri"], spec.tracking["experiment"]
        if self.report:
            from harness import timing
            from harness.report import build_report

            with timing.phase("report"):
                folder = build_report(uri, experiment, sweep=ctx.parent)
            print(f"report: {Path(folder) / 'index.html'}", file=sys.stderr)
        else:
            command = f"python -m harness.report tracking.uri={uri} tracking.experiment={experiment} sweep={ctx.sweep_id}"
            ctx.tracker.describe(ctx.parent, f"Sweep `{ctx.sweep_id}`: {n_runs} runs. Its report: `{command}`")
            print(f"report: {command}", file=sys.stderr)
        for line in _ui_lines(uri, ctx.tracker.experiment_id, experiment):
            print(line, file=sys.stderr)
