"""One group's Optuna study, driven by ask and tell, and the search options.

A round asks up to `round` trials of each group's study, the sweeper trains them (every trial at
each of the group's seeds) and tells each trial its score: the mean over its seeds of the
validation metric (`val/<primary>` of the runs' family by default, with that metric's
direction). A trial with a diverged run is told the worst value (+inf when minimizing, -inf when
maximizing: Optuna keeps it, TPE ranks it last and steers away), a pruned one
(`train.prune=halving`) is told PRUNED. The study lives in an Optuna RDB storage (by default
`optuna.db` beside an SQLite MLflow store), named by the sweep's id and the group's label, so a
rerun of the command finds it again (harness/resume.py gives it the same sweep):

    COMPLETE and PRUNED trials count towards `trials` and are never retrained;
    RUNNING trials (asked by a process that was killed) are trained first, at the params they
    were asked with (their runs that MLflow already holds are read back, not retrained);
    a suggestion equal to a setting the study already has is told FAIL (user attr
    `duplicate_of`) and asked again: every counted trial is a distinct configuration.

The sampler is rebuilt before each ask, seeded by `seed` + the number of trials the study holds,
so the params asked are a function of the study's state: a killed and resumed search asks what
an uninterrupted one would. TPE (constant liar, so a round's trials spread out) starts with
max(round, 4) random trials; `sampler=random` is the baseline.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from harness.errors import ConfigError

SEARCHES = ("grid", "optuna")
SAMPLERS = ("tpe", "random")
DEFAULT_TRIALS, DEFAULT_ROUND = 32, 8
MAX_REDRAWS = 200          # asks for a setting the study does not hold yet, before it counts as exhausted
PRUNED = "pruned"          # a run's lossbench.status when successive halving stopped it (train.prune)


@dataclass(frozen=True)
class Options:
    trials: int
    round: int
    sampler: str
    seed: int
    storage: str | None
    metric: str | None

    @classmethod
    def of(cls, search: Any, trials: Any, round: Any, sampler: Any, seed: Any, storage: Any, metric: Any,
           tune: Mapping[str, Any] | None = None) -> "Options | None":
        """The search's options (None: a grid sweep) from the sweeper's keys, a tuned study's
        `tune:` block filling those left unset; a bad one is a ConfigError."""
        tune = tune or {}
        search = str(search if search not in (None, "grid") else tune.get("search", "grid"))
        if search not in SEARCHES:
            raise ConfigError("hydra.sweeper.search", search, "grid or optuna")
        if search == "grid":
            for key, v in (("trials", trials), ("round", round), ("sampler", sampler), ("storage", storage)):
                if v is not None:
                    raise ConfigError(f"hydra.sweeper.{key}", v, "only with hydra.sweeper.search=optuna")
            return None
        trials = _int("hydra.sweeper.trials", trials if trials is not None else tune.get("trials", DEFAULT_TRIALS))
        round = _int("hydra.sweeper.round", round if round is not None else tune.get("round", DEFAULT_ROUND))
        sampler = str(sampler if sampler is not None else tune.get("sampler", "tpe"))
        if sampler not in SAMPLERS:
            raise ConfigError("hydra.sweeper.sampler", sampler, "tpe or random")
        seed = _int("hydra.sweeper.seed", seed, low=0)
        if storage is not None and not (isinstance(storage, str) and "://" in storage):
            raise ConfigError("hydra.sweeper.storage", storage, "an SQLAlchemy URL for Optuna: sqlite:///FILE.db, "
                                                                "postgresql://HOST/DB")
        metric = metric if metric is not None else tune.get("metric")
        if metric is not None:
            check_metric(str(metric))
        return cls(trials, round, sampler, seed, storage, None if metric is None else str(metric))


def check_metric(metric: str, family: str | None = None) -> None:
    """A validation metric with a direction (that the family logs, when given): else ConfigError."""
    from harness.metric_table import FAMILIES, higher_is_better

    rest = metric.partition("/")[2]
    logged = family is None or rest == "loss" or f"test/{rest}" in FAMILIES[family].metrics
    if not metric.startswith("val/") or higher_is_better(metric) is None or not logged:
        known = (["val/loss"] + [f"val/{m.split('/', 1)[1]}" for m in FAMILIES[family].members]) if family else []
        raise ConfigError("hydra.sweeper.metric", metric, "a validation metric with a direction (the test split is "
                          "never the objective)" + (f": {', '.join(known)}" if known else ", e.g. val/rmse"))


def default_metric(family: str) -> str:
    from harness.metric_table import FAMILIES

    return "val/" + FAMILIES[family].primary.split("/", 1)[1]


def storage_url(storage: str | None, tracking_uri: str) -> tuple[str, str | None]:
    """(the Optuna storage URL, a note to print or None): the given one, else optuna.db beside an
    SQLite MLflow store, else optuna.db in the working directory (Optuna's tables must not share
    a database with MLflow's: both keep an alembic_version table)."""
    if storage:
        return storage, None
    if tracking_uri.startswith("sqlite:///"):
        path = tracking_uri[len("sqlite:///"):]
        return f"sqlite:///{os.path.join(os.path.dirname(os.path.abspath(path)), 'optuna.db')}", None
    url = f"sqlite:///{os.path.abspath('optuna.db')}"
    return url, f"note: the search's Optuna studies go into {url} (hydra.sweeper.storage=URL to choose)"


def open_storage(url: str):
    """Optuna's RDB storage at `url` (its tables created when new); a ConfigError when it cannot be opened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
        if not os.path.isdir(folder):
            raise ConfigError("hydra.sweeper.storage", url, f"an SQLite file in an existing folder (no folder {folder})")
    try:
        kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:  # noqa: BLE001 - any driver's refusal is bad input, said in one line
        msg = " ".join(str(e).split())[:200]
        raise ConfigError("hydra.sweeper.storage", url, f"a database Optuna can open ({type(e).__name__}: {msg})") from None


def make_sampler(kind: str, seed: int, startup: int):
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


class GroupStudy:
    """One group's study: which trials to train next, and telling them their scores."""

    def __init__(self, storage, name: str, group, metric: str, higher: bool, opts: Options, trials: int):
        import optuna

        self.group, self.metric, self.higher, self.opts, self.trials, self.name = group, metric, higher, opts, trials, name
        self.study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                         direction="maximize" if higher else "minimize")
        self.exhausted = False

    def _states(self) -> tuple[list, list]:
        from optuna.trial import TrialState

        every = self.study.get_trials(deepcopy=False)
        return [t for t in every if t.state in (TrialState.COMPLETE, TrialState.PRUNED)], \
               [t for t in every if t.state == TrialState.RUNNING]

    def counted(self) -> int:
        return len(self._states()[0])

    def next_round(self, k: int) -> list[tuple[int, dict]]:
        """Up to `k` trials to train now, as (trial number, params): first those left RUNNING by
        a killed process, then new asks, never past `trials` counted ones."""
        done, running = self._states()
        seen = {_setting(t.params): t.number for t in done}
        out = []
        keys = {d.key for d in self.group.dims}
        for t in sorted(running, key=lambda t: t.number):
            s = _setting(t.params)
            if set(t.params) != keys:   # killed inside ask, before all its params were stored: asked again
                self._fail_duplicate(t.number, -1)
            elif s in seen:   # a duplicate a kill left before it was told FAIL
                self._fail_duplicate(t.number, seen[s])
            elif len(out) < k:
                seen[s] = t.number
                out.append((t.number, dict(t.params)))
        want = min(k - len(out), self.trials - len(done) - len(out))
        dists = {d.key: d.distribution() for d in self.group.dims}
        for _ in range(max(want, 0)):
            got = self._ask(dists, seen)
            if got is None:
                self.exhausted = True
                break
            seen[_setting(got[1])] = got[0]
            out.append(got)
        return out

    def _ask(self, dists: dict, seen: dict) -> tuple[int, dict] | None:
        for _ in range(MAX_REDRAWS):
            self.study.sampler = make_sampler(self.opts.sampler, self.opts.seed + len(self.study.get_trials(deepcopy=False)),
                                              max(self.opts.round, 4))
            trial = self.study.ask(dists)
            s = _setting(trial.params)
            if s not in seen:
                return trial.number, dict(trial.params)
            trial.set_user_attr("duplicate_of", seen[s])
            self._fail_duplicate(trial.number, seen[s])
        return None

    def _fail_duplicate(self, number: int, of: int) -> None:
        from optuna.trial import TrialState

        self.study.tell(number, state=TrialState.FAIL)

    def tell(self, number: int, finals: Sequence[Mapping[str, Any]], statuses: Sequence[str]) -> float | None:
        """Tells trial `number` the score of its runs (their final values and lossbench.status);
        returns the value told (None for PRUNED)."""
        from optuna.trial import TrialState

        state, value = score(finals, statuses, self.metric, self.higher)
        if state == PRUNED:
            self.study.tell(number, state=TrialState.PRUNED)
            return None
        self.study.tell(number, value)
        return value

    def best(self) -> tuple[float, dict, int] | None:
        """(best value, its params, its trial number) among the completed trials with a finite value."""
        done = [t for t in self._states()[0] if t.value is not None and math.isfinite(t.value)]
        if not done:
            return None
        t = (max if self.higher else min)(done, key=lambda t: t.value)
        return t.value, dict(t.params), t.number


def score(finals: Sequence[Mapping[str, Any]], statuses: Sequence[str], metric: str, higher: bool) -> tuple[str, float]:
    """(state, value) of a trial from its runs: PRUNED when one was pruned; the worst value
    (-inf / +inf) when one diverged or lacks a finite value; else the mean over its runs."""
    if any(s == PRUNED for s in statuses):
        return PRUNED, math.nan
    vals = [float(f.get(metric, math.nan)) if f else math.nan for f in finals]
    if not vals or any(not math.isfinite(v) for v in vals):
        return "complete", -math.inf if higher else math.inf
    return "complete", sum(vals) / len(vals)


def _setting(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _int(key: str, v: Any, low: int = 1) -> int:
    ok = isinstance(v, int) and not isinstance(v, bool)
    if not ok and isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v, ok = int(v), True
    if not ok or v < low:
        raise ConfigError(key, v, f"an integer >= {low}")
    return v
