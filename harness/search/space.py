"""A sweep's command line read as a search space: the ranges to search, and the grid of groups.

Hydra's sweep syntax, parsed by Hydra's own OverridesParser and read as hydra-optuna-sweeper
reads it:

    optimizer.lr=interval(1e-4,1)             a float in [1e-4, 1]
    optimizer.lr=tag(log,interval(1e-4,1))    the same on a log scale
    model.width=int(interval(4,64))           an integer (tag(log, ...) allowed)
    regularization.kind=choice(none,l1,l2)    a categorical of two or more values
    regularization.weight=0,1e-3,1e-2         a categorical too: a comma list of numbers on a
                                              tuned key (loss.*, optimizer.*, regularization.*)

Every other override is the grid, as in a grid sweep: `loss=mse,mae,huber dataset=a,b` makes
six *groups*, each searched by a study of its own (the losses are compared, not searched over);
`seed=0,1` makes every trial train each seed (the trial's score is their mean). A range on a
config group (`loss=choice(...)`) or on the seed is refused: those are what a search compares
or replicates, not what it tunes. An option of one choice (`loss.delta=interval(0.1,3)`) is
searched only in the groups whose choice has it (harness/conditional.py).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from harness import conditional
from harness.errors import ConfigError

TUNED_SECTIONS = ("loss", "optimizer", "regularization")
NOT_SEARCHED = conditional.GROUPS + ("seed",)
SYNTAX = ("a range: interval(a,b), tag(log,interval(a,b)), int(interval(a,b)), or choice(x,y,...) of two or more "
          "values")


@dataclass(frozen=True)
class Dim:
    """One searched key: `kind` float | int (low, high, log) or categorical (choices)."""

    key: str                 # as Optuna names the param: the override key without + or ~
    prefix: str              # '+' when the line adds the key
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple = ()
    text: str = ""           # the value as written (the parent run's sweep.<key> param)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution(self.choices)

    def line(self, value: Any) -> str:
        """The override that sets this key to `value` in a job."""
        return f"{self.prefix}{self.key}={_fmt(value)}"

    def corners(self) -> tuple:
        """The values at the ends of the range (every choice of a categorical): validated before any run."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)

    def size(self) -> float:
        """How many distinct values (inf for a float range)."""
        if self.kind == "categorical":
            return len(self.choices)
        return int(self.high) - int(self.low) + 1 if self.kind == "int" else math.inf


@dataclass
class Group:
    """Jobs that differ only in the searched keys and the seed: one Optuna study."""

    lines: list[str]                     # the group's own overrides, without the seed
    seeds: list[str]                     # its seed lines ('seed=0', ...); [''] when none is given
    dims: tuple[Dim, ...]
    defaults: dict[str, str] = field(default_factory=dict)
    label: str = ""                      # what tells it from the sweep's other groups ('loss=huber')

    def job(self, params: Mapping[str, Any], seed: str) -> list[str]:
        """The job of one trial (its params) at one seed."""
        return self.lines + [d.line(params[d.key]) for d in self.dims] + ([seed] if seed else [])

    def corner_jobs(self) -> list[list[str]]:
        """Jobs at the low ends, at the high ends, and at every other choice, at each seed."""
        n = max((len(d.corners()) for d in self.dims), default=1)
        points = [{d.key: d.corners()[min(i, len(d.corners()) - 1)] for d in self.dims} for i in range(n)]
        return [self.job(p, s) for p in points for s in self.seeds]

    def size(self) -> float:
        return math.prod(d.size() for d in self.dims)

    def key(self) -> str:
        """A stable identity for the study's name: its lines and its space."""
        text = repr((self.lines, self.seeds, [(d.key, d.kind, d.low, d.high, d.log, d.choices) for d in self.dims]))
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def split(lines: Sequence[str], parser) -> tuple[list[Dim], list[str]]:
    """(the searched keys, the other lines) of a sweep's override lines; a malformed range, or a
    range on a config group or the seed, is a ConfigError."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    dims, rest = [], []
    for line in lines:
        o = parser.parse_override(line)
        value = o.value() if o.is_sweep_override() else None
        prefix, key, text = conditional.split(line)
        is_range = isinstance(value, IntervalSweep)
        is_choice = isinstance(value, ChoiceSweep) and not value.simple_form and len(value.list) > 1
        is_numbers = (isinstance(value, (ChoiceSweep, RangeSweep)) and key.split(".")[0] in TUNED_SECTIONS
                      and _numeric_list(value))
        if not (is_range or is_choice or is_numbers):
            if key == "seed" or key in conditional.GROUPS:
                _no_tags(key, text, value)
            rest.append(line)
            continue
        if key in NOT_SEARCHED:
            what = "each value its own study" if key != "seed" else "every trial trains each seed"
            raise ConfigError(key, text, f"a comma list under hydra.sweeper.search=optuna ({what}), not a range")
        if prefix.startswith("~"):
            raise ConfigError(key, text, "a key to set, not one to delete (~)")
        dims.append(_dim(key, prefix, text, value))
    keys = [d.key for d in dims]
    if len(set(keys)) < len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(dup, "", "one range per key")
    return dims, rest


def ranges(lines: Sequence[str]) -> list[tuple[str, str]]:
    """(key, value) of every line that is a range (interval(...)): what only a search can sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    parser, out = OverridesParser.create(), []
    for line in lines:
        try:
            o = parser.parse_override(line)
        except Exception:   # noqa: BLE001 - Hydra reports its own syntax errors
            continue
        if o.is_sweep_override() and isinstance(o.value(), IntervalSweep):
            out.append(conditional.split(line)[1:])
    return out


def groups(jobs: Sequence[Sequence[str]], dims: Sequence[Dim], defaults: Mapping[str, str]) -> list[Group]:
    """The grid's jobs (the cartesian product of the other lines) gathered into groups: jobs
    equal but for their seed; each group searches the dims its choices have (a group that has
    none, MSE beside `loss.delta=interval(...)`, is one trial: one setting to train)."""
    by: dict[tuple, Group] = {}
    for job in jobs:
        lines = [ln for ln in job if conditional.split(ln)[1] != "seed"]
        seed = next((ln for ln in job if conditional.split(ln)[1] == "seed"), "")
        g = by.get(tuple(lines))
        if g is None:
            chosen = conditional.choices(lines, defaults)
            own = tuple(d for d in dims if conditional.applies(d.line(d.corners()[0]), chosen))
            g = by[tuple(lines)] = Group(list(lines), [], own, dict(defaults))
        if seed not in g.seeds:
            g.seeds.append(seed)
    out = list(by.values())
    used = {d.key for g in out for d in g.dims}
    for g in out:   # a dim that no group's choices have: kept everywhere, for validation to refuse
        own = {d.key for d in g.dims}
        g.dims = tuple(d for d in dims if d.key in own or d.key not in used)
    _label(out)
    return out


def _label(gs: list[Group]) -> None:
    """Each group's label: its lines that differ across the sweep's groups (one group: its loss
    line, else 'all')."""
    common = set.intersection(*(set(g.lines) for g in gs)) if gs else set()
    for g in gs:   # one group: its loss, when the command names one (the report draws it per loss)
        own = [ln for ln in g.lines if ln not in common] or [ln for ln in g.lines if conditional.split(ln)[1] == "loss"]
        g.label = " ".join(own) or "all"


def _dim(key: str, prefix: str, text: str, value) -> Dim:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep

    tags = set(getattr(value, "tags", ()) or ())
    if tags - {"log"}:
        raise ConfigError(key, text, f"{SYNTAX}; the only tag is log (got {', '.join(sorted(tags - {'log'}))})")
    if isinstance(value, IntervalSweep):
        lo, hi = value.start, value.end
        is_int = isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool)
        if not (_finite(lo) and _finite(hi)) or not lo < hi:
            raise ConfigError(key, text, "interval(low,high) with finite low < high")
        if "log" in tags and lo <= 0:
            raise ConfigError(key, text, "tag(log,interval(low,high)) with 0 < low < high")
        return Dim(key, prefix, "int" if is_int else "float", float(lo), float(hi), "log" in tags, text=text)
    if "log" in tags:
        raise ConfigError(key, text, "tag(log, ...) of an interval, not of a list")
    values = list(value.list) if isinstance(value, ChoiceSweep) else list(value.range())
    if len(set(map(repr, values))) < len(values):
        raise ConfigError(key, text, "a choice of distinct values")
    return Dim(key, prefix, "categorical", choices=tuple(_plain(v) for v in values), text=text)


def _no_tags(key: str, text: str, value) -> None:
    if value is not None and getattr(value, "tags", None):
        raise ConfigError(key, text, "a comma list (the grid): tags are read only on ranges")


def _numeric_list(value) -> bool:
    from hydra.core.override_parser.types import RangeSweep

    values = list(value.range()) if isinstance(value, RangeSweep) else list(value.list)
    return len(values) > 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _plain(v: Any) -> Any:
    """A choice as Optuna stores it: None, bool, int, float or str."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: Any) -> str:
    """A value as an override writes it: floats by repr (1e-05 reads back as the same float)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)
