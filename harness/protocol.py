"""The tuned protocol (`study.protocol: tuned`): each loss at its own best setting, not at one
shared learning rate, before losses are compared (DeepOBS tunes each optimizer before it
compares them; we compare losses and do the same).

    phase 1 (tune)   the study's grid, its seeds replaced by `tune.seeds`, every run judged on a
                     validation split of its training rows (`dataset.val_size`; the test split
                     is never read) and tagged phase=tune
    choice           per group of runs that differ only in the tuned keys (`tune.keys`, e.g.
                     optimizer.lr, regularization.weight) and the seed: the setting of the tuned
                     keys with the fewest diverged runs, then the best mean validation metric
                     (`tune.metric`, default the family's primary, on val/)
    phase 2 (final)  each group at its chosen setting, on the full training split, with new
                     seeds (`tune.final_seeds`, at least 5, none of phase 1's), judged on the
                     test split and tagged phase=final: the comparison the report makes

A study declares it:

    study:
      protocol: tuned
      tune: {keys: [optimizer.lr], grid: {optimizer.lr: "0.003,0.01,0.03,0.1"}, val_size: 0.2,
             seeds: "0,1", final_seeds: "10,11,12,13,14"}

Phase 1 may be an adaptive search instead of the grid (harness/search/): `tune: {search: optuna,
trials: 24, round: 8, grid: {optimizer.lr: "tag(log,interval(1e-4,1))"}}` searches the ranges of
`tune.grid` (which then replace the study's own values of those keys), one Optuna study per
group, and the choice is made from its trials as from a grid's. `tune.prune: true` hands
`train.prune=halving` to phase 1's runs (successive halving: poor runs stop early).

A study of the shared protocol may carry its `tune:` block: `study.protocol=tuned` on the command
line then runs it tuned (its report and the shared one's say whether the verdicts survive).

`choose` works on a runs table (one row per run: params as columns, final metrics), so the
sweeper (from its jobs' results) and the report (from MLflow) make the same choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError

PROTOCOLS = ("shared", "tuned")
NOT_GROUPED = ("seed", "dataset.val_size", "phase")   # besides the tuned keys
MIN_FINAL_SEEDS = 5


@dataclass(frozen=True)
class Tuning:
    keys: tuple[str, ...]
    val_size: float
    seeds: tuple[int, ...]
    final_seeds: tuple[int, ...]
    metric: str | None = None
    grid: tuple[tuple[str, str], ...] = ()   # values of tuned keys the study's own grid does not sweep
    search: str = "grid"                     # phase 1: grid | optuna (harness/search/)
    trials: int | None = None                # optuna: trials per group (None: the sweeper's default)
    round: int | None = None                 # optuna: trials trained at once per group
    prune: bool = False                      # train.prune=halving for phase 1's runs

    @classmethod
    def of(cls, study: Mapping[str, Any] | None) -> "Tuning | None":
        """The study's tuning, or None for the shared protocol; a malformed one is a ConfigError."""
        study = study or {}
        protocol = study.get("protocol", "shared")
        if protocol not in PROTOCOLS:
            raise ConfigError("study.protocol", protocol, "shared or tuned")
        if protocol == "shared":
            return None
        t = study.get("tune") or {}
        keys = tuple(t.get("keys") or ("optimizer.lr",))
        seeds, final = _ints("study.tune.seeds", t.get("seeds", "0,1")), _ints("study.tune.final_seeds", t.get("final_seeds"))
        val = t.get("val_size", 0.2)
        if not isinstance(val, (int, float)) or not 0 < val < 1:
            raise ConfigError("study.tune.val_size", val, "a fraction in (0, 1) of the training rows")
        if len(final) < MIN_FINAL_SEEDS or set(final) & set(seeds):
            raise ConfigError("study.tune.final_seeds", t.get("final_seeds"),
                              f"at least {MIN_FINAL_SEEDS} seeds, none of phase 1's ({', '.join(map(str, seeds))})")
        grid = tuple((str(k), str(v)) for k, v in (t.get("grid") or {}).items())
        search = t.get("search", "grid")
        if search not in ("grid", "optuna"):
            raise ConfigError("study.tune.search", search, "grid or optuna")
        if search == "grid":
            for k, v in grid:
                if "interval(" in v.replace(" ", ""):
                    raise ConfigError(f"study.tune.grid.{k}", v, "a comma list of values (a range needs study.tune.search: optuna)")
        trials, rnd = (_count(f"study.tune.{k}", t.get(k)) for k in ("trials", "round"))
        prune = t.get("prune", False)
        if not isinstance(prune, bool):
            raise ConfigError("study.tune.prune", prune, "true or false")
        return cls(keys, float(val), seeds, final, t.get("metric"), grid, str(search), trials, rnd, prune)

    def search_block(self) -> dict[str, Any]:
        """What phase 1's search takes from the study (the sweeper's own keys win where set)."""
        out = {"search": self.search, "trials": self.trials, "round": self.round, "metric": self.metric}
        return {k: v for k, v in out.items() if v is not None}

    def phase1(self, lines: Sequence[str], searched: bool = False) -> list[str]:
        """Phase 1's sweep lines: the study's (plus `tune.grid`'s values of tuned keys it does not
        sweep itself; when `searched`, tune.grid's ranges replace the study's values of their
        keys), with the tuning seeds, the validation split, phase=tune, and train.prune=halving
        when `prune`."""
        grid = {k for k, _ in self.grid} if searched else set()
        out = [ln for ln in lines if _key(ln) not in {"seed", "dataset.val_size", "phase", "train.prune"} | grid]
        have = {_key(ln) for ln in out}
        out += [f"{k}={v}" for k, v in self.grid if k not in have]
        out += ["train.prune=halving"] if self.prune else []
        return out + [f"seed={','.join(map(str, self.seeds))}", f"dataset.val_size={self.val_size}", "phase=tune"]

    def final(self, job: Sequence[str], seed: int) -> list[str]:
        """A phase-1 job as a phase-2 run with `seed`: the full training split, phase=final."""
        kept = [ln for ln in job if _key(ln) not in ("seed", "dataset.val_size", "phase", "train.prune")]
        return kept + [f"seed={seed}", "dataset.val_size=0.0", "phase=final"]


def choose(runs: pd.DataFrame, keys: Sequence[str], metric: str, higher: bool) -> pd.DataFrame:
    """Per group (runs equal in every param column but the tuned `keys`, the seed, the
    validation size and the phase), the chosen setting: fewest diverged runs, then the best mean
    of `metric`. One row per group: the group's params, the chosen keys' values, `mean`, `n`,
    `n_diverged`, `index` (the runs-table index of one run of the chosen setting)."""
    params = [c for c in runs.columns if c not in keys and c not in NOT_GROUPED and _is_param(c, runs)]
    df = runs.assign(_y=pd.to_numeric(runs[metric], errors="coerce"), _div=~np.isfinite(pd.to_numeric(runs[metric], errors="coerce")))
    by = params + list(keys)
    g = df.groupby(by, dropna=False, sort=False)
    s = g.agg(mean=("_y", "mean"), n=("_y", "count"), n_diverged=("_div", "sum")).reset_index()
    s["index"] = g.apply(lambda d: d.index[0]).to_numpy()
    s["_rank"] = s["mean"] * (-1 if higher else 1)
    s = s.sort_values(["n_diverged", "_rank"], na_position="last", kind="stable")
    return s.groupby(params, dropna=False, sort=False).head(1).drop(columns="_rank").reset_index(drop=True)


def _is_param(col: str, runs: pd.DataFrame) -> bool:
    """Config columns only: not ids, tags or metrics."""
    from harness.metric_table import is_metric

    return not is_metric(col) and col not in ("run_id", "run_name", "status", "task", "eval", "config_hash",
                                             "diverged_step", "curves", "study", "trial")


def _key(line: str) -> str:
    return line.lstrip("+~").split("=", 1)[0]


def _count(key: str, value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(key, value, "an integer >= 1")
    return value


def _ints(key: str, value) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in str(value).split(",")) if value is not None else ()
    except ValueError:
        raise ConfigError(key, value, "comma-separated integer seeds, e.g. 0,1") from None
    if not out or any(v < 0 for v in out):
        raise ConfigError(key, value, "comma-separated integer seeds >= 0, e.g. 0,1")
    return out
