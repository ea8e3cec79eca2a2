"""The sweeper's side of an adaptive search (`hydra.sweeper.search=optuna`, harness/search/).

    1. the command line is read as a search space (harness/search/space.py): the ranges, and
       the grid's groups, one Optuna study each; every group is validated at the ends of its
       ranges (and every choice) before anything runs, with the search's options, the metric
       and the Optuna storage: a bad one is one line and exit status 2. A group without a
       validation split gets `dataset.val_size=0.2` and a one-line note (the test split is
       never the objective);
    2. one MLflow parent run, as for a grid (its key: every group's corner configs and the
       sampler, seed and metric), so that rerunning the command resumes it and its studies;
    3. rounds: each study proposes up to `round` trials, all trained at once through the
       launcher (the batched launcher stacks runs that share a stack key: one loss's trials
       differ only in numbers), each run tagged with its trial's number (lossbench.trial)
       before the trial is told its score; then the next round, until every study holds
       `trials` trials (fewer when its space has fewer settings);
    4. a tuned study (study.protocol=tuned) then trains phase 2 from the trials' scores, as
       after a grid (hydra_plugins/lossbench/tuned.py), and the parent closes with the counts.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, List

from hydra.core.utils import JobStatus

from harness import schema as S
from harness.errors import ConfigError


def options(sweeper, tuning, lines: List[str]):
    """The search's Options, or None for a grid (whose lines then hold no range); bad ones: one
    line, exit status 2."""
    from harness.search.space import ranges
    from harness.search.study import Options

    tune = tuning.search_block() if tuning is not None else None
    try:
        opts = Options.of(sweeper.search, sweeper.trials, sweeper.round, sweeper.sampler, sweeper.search_seed,
                          sweeper.storage, sweeper.metric, tune)
        if opts is None:
            for key, text in ranges(lines):
                raise ConfigError(key, text, "a comma list of values; a range is searched with hydra.sweeper.search=optuna")
        return opts
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)


def run(sweeper, opts, tuning, grids, lines: List[str], t0: float):
    """The whole search sweep (module doc); returns the JobReturns, batch by batch."""
    from harness import resume as R
    from harness.search.study import GroupStudy, open_storage, storage_url
    from hydra_plugins.lossbench import sweeper as SW
    from hydra_plugins.lossbench import tuned

    notes: List[str] = []
    groups, specs = _validated(sweeper, opts, tuning, grids, notes)
    finals = tuned.Finals(sweeper, tuning, [j for g in groups for j in g.corner_jobs()], specs) if tuning else None
    first = specs[0]
    try:
        url, note = storage_url(opts.storage, first.tracking["uri"])
        storage = open_storage(url)
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    for line in notes + ([note] if note else []):   # after every check: a refusal is one line
        print(line, file=sys.stderr)
    import logging

    logging.getLogger(__name__).info(f"search: {len(groups)} studies validated in {time.perf_counter() - t0:.2f} s")
    n_runs = sum(g.n_trials * len(g.seeds) for g in groups) + (finals.count if finals else 0)
    key = R.sweep_key([s.config_hash for s in specs] + [f"search {opts.sampler} {opts.seed} {[g.metric for g in groups]}"],
                      first.tracking["experiment"])
    sweep_dir = SW.Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    SW.OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    ctx, recorded = _start(sweeper, lines, groups, opts, url, first, n_runs, key)
    studies = [GroupStudy(storage, _study_name(ctx.sweep_id, g), g, g.metric, g.higher, opts, g.n_trials) for g in groups]
    loop = _Loop(sweeper, ctx, recorded)
    status = "FAILED"
    try:
        with ctx.exported():
            loop.search(studies, opts.round)
            if finals is not None:
                finals.phase1(loop.trial_jobs, [ctx.specs[tuple(j)] for j in loop.trial_jobs])
                more = finals.jobs(loop.values, ctx)
                loop.launch([j for j in more if ctx.specs[tuple(j)].config_hash not in loop.recorded])
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        done, diverged = loop.close(status, n_runs, t0)
    for batch in loop.returns:
        for r in batch:
            _ = r.return_value  # re-raise a failed job's exception, as Hydra's sweeper does
    for st in studies:
        print(_best_line(st), file=sys.stderr)
    print(f"sweep {ctx.sweep_id} done: {done} runs ({diverged} diverged) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    sweeper._finish(first, ctx, done)
    SW._write_timing(sweep_dir, done)
    return loop.returns


def _validated(sweeper, opts, tuning, grids, notes: List[str]):
    """(the groups, every group's corner specs in order): validated (module doc, 1)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from harness import conditional
    from harness.search import space

    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    try:
        groups = []
        for lines, defaults in grids:
            dims, rest = space.split(lines, parser)
            jobs = [j for batch in sweeper.split_arguments(parser.parse_overrides(rest), None) for j in batch]
            groups += space.groups(conditional.prune(jobs, defaults), dims, defaults)
        if not any(g.dims for g in groups):
            raise ConfigError("hydra.sweeper.search", "optuna", "ranges to search, e.g. optimizer.lr=tag(log,interval(1e-4,1)) "
                                                                "(no override is a range)")
        if tuning is not None:
            extra = sorted({d.key for g in groups for d in g.dims} - set(tuning.keys))
            if extra:
                raise ConfigError("study.tune.keys", ",".join(tuning.keys), f"every searched key ({', '.join(extra)} too)")
        if tuning is None:   # trials: judged on the validation split, the test split reported (harness/engine.py)
            for g in groups:
                g.lines = [ln for ln in g.lines if conditional.split(ln)[1] != "phase"] + ["phase=search"]
        specs = _specs(sweeper, groups)
        if any(s.dataset.get("val_size", 0) == 0 for s in specs):
            notes.append("note: dataset.val_size=0.2: a search is judged on a validation split of the training rows, "
                         "never on the test split")
            for g in groups:
                g.lines.append("dataset.val_size=0.2")
            specs = _specs(sweeper, groups)
        _metrics(groups, opts, notes)
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    return groups, specs


def _specs(sweeper, groups) -> list:
    """Every group's corner jobs validated into specs (g.specs), the store checked; all in order."""
    from harness import conditional, store, timing
    from harness.compose import FastComposer
    from harness.spec import build_spec

    composer = FastComposer(sweeper.hydra_context.config_loader, sweeper.config)
    out = []
    with timing.phase("compose"):
        for g in groups:
            jobs = g.corner_jobs()
            conditional.check(jobs, g.defaults)
            g.specs = [build_spec(composer.task_config(j), tuple(j)) for j in jobs]
            out += g.specs
    where = {(s.tracking["uri"], s.tracking["experiment"]) for s in out}
    if len(where) > 1:
        raise ConfigError("tracking.experiment", sorted(where)[1][1], "one tracking.uri and experiment per sweep")
    store.check(out[0].tracking["uri"])
    return out


def _metrics(groups, opts, notes: List[str]) -> None:
    """Each group's metric, direction and number of trials (at most its space's settings)."""
    from harness.metric_table import higher_is_better
    from harness.search.study import check_metric, default_metric

    for g in groups:
        fam = g.specs[0].family
        g.metric = opts.metric or default_metric(fam)
        check_metric(g.metric, fam)
        g.higher = bool(higher_is_better(g.metric))
        g.n_trials = int(min(opts.trials, g.size()))
        if g.n_trials < opts.trials:
            notes.append(f"note: {g.label}: {g.n_trials} trials, the settings its space holds "
                         f"(hydra.sweeper.trials={opts.trials})")


def _start(sweeper, lines, groups, opts, url: str, first, n_runs: int, key: str):
    """(context, {config hash: run id} recorded): the resumed sweep of this key, or a new parent
    whose params hold the grid's lines, each range as written and the search's options."""
    from harness import conditional, timing
    from harness.sweep import SweepContext, tracker_for

    with timing.phase("track"):
        tracker = tracker_for(first)
    sweeper._n_runs = n_runs
    with timing.phase("track"):
        resumed = sweeper._resumed(tracker, key, n_runs)
    if resumed is not None:
        ctx = SweepContext(resumed[0], resumed[1], tracker)
        sweeper._bind(ctx)
        return ctx, dict(resumed[2])
    dims = {d.key: d for g in groups for d in g.dims}
    plain = [ln for ln in lines if conditional.split(ln)[1] not in dims]
    extra = {S.sweep_param(k): d.text for k, d in dims.items()}
    extra[S.sweep_param("search")] = "optuna"
    extra.update({S.sweep_param(f"search.{k}"): str(v) for k, v in
                  dict(trials=opts.trials, round=opts.round, sampler=opts.sampler, seed=opts.seed,
                       metric=",".join(sorted({g.metric for g in groups})), storage=url).items()})
    from hydra_plugins.lossbench.sweeper import _study

    parent, sweep_id = sweeper._new_parent(tracker, plain, _study(sweeper.config, groups[0].specs), n_runs, key, extra)
    ctx = SweepContext(sweep_id, parent, tracker)
    sweeper._bind(ctx)
    print(f"sweep {sweep_id}: search ({opts.sampler}) of {len(groups)} studies, {opts.trials} trials each, {opts.round} "
          f"a round: up to {n_runs} runs -> MLflow {first.tracking['uri']} experiment {first.tracking['experiment']!r}, "
          f"parent run {parent}; studies in {url}", file=sys.stderr)
    return ctx, {}


def _study_name(sweep_id: str, g) -> str:
    label = g.label if len(g.label) <= 200 else g.key()
    return f"{sweep_id} {label}"


def _best_line(st) -> str:
    best = st.best()
    if best is None:
        return f"search {st.group.label}: no trial with a finite {st.metric}"
    value, params, number = best
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return f"search {st.group.label}: best {st.metric}={value:.4g} at {shown or 'its one setting'} (trial {number})"


class _Loop:
    """The rounds: ask, train through the launcher, tag, tell; what it has recorded and returned."""

    def __init__(self, sweeper, ctx, recorded: Dict[str, str]):
        from harness.compose import FastComposer

        self.sweeper, self.ctx, self.recorded, self.before = sweeper, ctx, recorded, dict(recorded)
        self.composer = FastComposer(sweeper.hydra_context.config_loader, sweeper.config)
        self.returns: list = []
        self.values: Dict[str, Dict[str, Any]] = {}    # config hash -> final values (with status)
        self.trial_jobs: List[List[str]] = []
        self._stored: Dict[str, Dict[str, Any]] | None = None
        self._launched = 0

    def search(self, studies, k: int) -> None:
        from harness import interrupt

        rounds = -(-max(st.trials for st in studies) // k)
        while True:
            interrupt.check()
            t = time.perf_counter()
            rnd = -(-max(st.counted() for st in studies) // k) + 1
            batch = [(st, n, p) for st in studies for n, p in st.next_round(k)]
            if not batch:
                return
            jobs = {(id(st), n): [st.group.job(p, s) for s in st.group.seeds] for st, n, p in batch}
            every = [j for js in jobs.values() for j in js]
            self.trial_jobs += every
            self._specs(every)
            self.launch([j for j in every if self._hash(j) not in self.recorded])
            for st, n, p in batch:   # tag first, tell last: a told trial has its tags
                runs = [self.values.get(self._hash(j)) for j in jobs[(id(st), n)]]
                if any(r is None for r in runs):
                    continue   # a run failed: the trial stays RUNNING, a rerun trains it
                self._tag([r["run_id"] for r in runs], n, st.group.label)
                st.tell(n, runs, [r.get("status", "") for r in runs])
            self._raise_failed()
            print(f"search round {rnd}/{rounds}: {len(batch)} trials ({len(every)} runs) in {time.perf_counter() - t:.1f} s; "
                  + "; ".join(_short(st) for st in studies), file=sys.stderr)

    def _hash(self, job) -> str:
        return self.ctx.specs[tuple(job)].config_hash

    def _specs(self, jobs) -> None:
        from harness.spec import build_spec

        for j in jobs:
            if tuple(j) not in self.ctx.specs:
                self.ctx.specs[tuple(j)] = build_spec(self.composer.task_config(j), tuple(j))
        for j in jobs:   # runs an earlier invocation recorded: their values from the store
            h = self._hash(j)
            if h in self.recorded and h not in self.values:
                self.values[h] = self._from_store(h)

    def _from_store(self, h: str) -> Dict[str, Any]:
        from harness.tracking import children

        if self._stored is None:
            kids = {c.config_hash: c for c in children.children(self.ctx.tracker, self.ctx.parent) if c.status == "FINISHED"}
            finals = children.final_metrics(self.ctx.tracker, [c.run_id for c in kids.values()])
            self._stored = {hh: {**finals.get(c.run_id, {}), "status": c.outcome, "run_id": c.run_id} for hh, c in kids.items()}
        return self._stored.get(h) or {"run_id": self.recorded[h]}

    def launch(self, jobs) -> None:
        """Trains `jobs` (their specs in the context) through the launcher, records their values."""
        uniq = list({tuple(j): j for j in jobs}.values())
        if not uniq:
            return
        self._specs(uniq)
        rets = self.sweeper.launcher.launch(uniq, initial_job_idx=self._launched)
        self._launched += len(uniq)
        self.returns.append(rets)
        for job, r in zip(uniq, rets):
            if r.status == JobStatus.COMPLETED and isinstance(r._return_value, dict):
                h = self._hash(job)
                self.values[h] = r._return_value
                self.recorded[h] = r._return_value["run_id"]

    def _tag(self, run_ids, number: int, label: str) -> None:
        from mlflow.entities import RunTag

        for rid in run_ids:
            self.ctx.tracker.client.log_batch(rid, tags=[RunTag(S.TRIAL_TAG, str(number)), RunTag(S.SEARCH_TAG, label[:5000])])

    def _raise_failed(self) -> None:
        for batch in self.returns:
            for r in batch:
                if r.status != JobStatus.COMPLETED:
                    raise r._return_value if isinstance(r._return_value, BaseException) else RuntimeError("a run failed")

    def close(self, status: str, n_runs: int, t0: float):
        """The parent's end: status and the counts read from the store, as after a grid."""
        from harness import timing
        from hydra_plugins.lossbench.tally import counts

        failed = sum(1 for batch in self.returns for r in batch if r.status != JobStatus.COMPLETED)
        done, diverged = counts(self.ctx, self.returns, self.before)
        if failed or (status == "FINISHED" and done < n_runs):
            status = "FAILED"
        self.sweeper._counts = (done, n_runs)
        with timing.phase("track"):
            self.ctx.tracker.end_sweep(self.ctx.parent, status, {S.SWEEP_STATUS_TAG: status.lower()},
                                       {S.SWEEP_RUNS: done, S.SWEEP_DIVERGED: diverged, S.SWEEP_FAILED: failed,
                                        S.SWEEP_MISSING: max(n_runs - done, 0), S.SWEEP_SECONDS: time.perf_counter() - t0})
        return done, diverged


def _short(st) -> str:
    best = st.best()
    return f"{st.group.label} {st.counted()}/{st.trials}" + (f" best {best[0]:.4g}" if best else "")
