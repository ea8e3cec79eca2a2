"""Successive halving inside a stack (`train.prune=halving`): the runs of a data group race, and
the worst stop early at a few rungs, as ASHA does (synchronously: a stack's runs step together).

    rungs   r_i = round(r0 * eta^i) < train.steps,  r0 = train.prune_every, eta = train.prune_eta
            (defaults 30 and 3: steps 30, 90, 270 of 300)
    race    train.prune_race=setting (the default): at each rung, the settings of a data
            family (runs of one stack and outliers that differ only in their seed: the same
            problem) race, each scored by the mean over its seeds' live runs (each seed a data
            group, layout.py: the runs that share the data draw, split, initialization and
            minibatch order, so every setting meets the same draws: a fair race); all but the best
            ceil(keep * n) of the n settings stop, every seed of a setting together (keep =
            train.prune_keep, default 1/eta; at least one setting of a family always goes on).
            A search's trial or a grid's setting is thus whole or stopped, never kept at one seed
            and stopped at another. train.prune_race=run: each data group races alone, its runs
            ranked by their own score (a setting may go on at one seed and stop at another).
            A run (a setting) tied with the cut goes on too: |score - cut| <= tie * |cut|, tie = train.prune_tie (default 1e-6, a few float32 ulps:
            runs converged to one optimum by different paths differ in the last bits, and no run
            stops for rounding); a NaN score ranks last (NaN ties with NaN); padding slots and runs
            that already stopped do not race.
    score   train.prune_metric: `auto` is the run's validation metric `val/<primary>` (the primary
            metric of its family, harness/metric_table.py) when dataset.val_size > 0 and that metric
            is a curve, else the training objective `train/objective` (as logged at the rung: a
            minibatch's with train.batch_size); or one named: train/objective, train/loss, val/<a
            curve metric of the family>, val/loss. NEVER the test split: a run is not stopped on the
            numbers it is finally judged by (`test/...` is refused); higher or lower is better as
            metric_table says.

A stopped run is recorded with status `pruned` (the lossbench.status tag, like `diverged`): its
curves up to the rung (rungs are evaluation and logging steps), its final metrics its values at
the rung (final-only metrics evaluated there), train/steps_run = the rung. Until it stops a run
computes exactly what it computes unpruned (bit for bit, tested): pruning only takes runs away.

Stopped runs cost nothing afterwards: after a rung the stack is *compacted* along its run axis,
every [U, K, ...] tensor (parameters, optimizer state, learning rates, penalties, loss
parameters, masks) gathered down to the live runs, [U, K'] with K' = max(2, the most live runs
of a group); a group with fewer live runs is filled with frozen copies (filler slots: they
compute, are never updated, and write into a spare slot of the record). The data, minibatch
order and draws have no K axis and stay as they are. Two slots at least keep BLAS on its GEMM
path (layout.py), so the products of a run stay bit-identical. Curves keep their [steps, U, K]
record; each slot writes through `home`, its place there.

What races is one stack: the batched launcher's (a run alone, the basic launcher, is a race of
one and never stops); a data group the memory planner splits (one group over the budget) races
in its parts. One host-device synchronization per rung (the ranking is read on the host).
"""
from __future__ import annotations

import math
import numpy as np
import torch

from harness.component import require
from harness.errors import ConfigError
from harness.metric_table import FAMILIES, METRICS, higher_is_better

KINDS = ("none", "halving")
OPTIONS = ("prune_every", "prune_eta", "prune_keep", "prune_tie", "prune_race", "prune_metric", "prune_compact")
RACES = ("setting", "run")
TRAIN = ("train/objective", "train/loss")
# A compacted stack keeps a multiple of ALIGN slots (at least ALIGN): BLAS (MKL) computes a GEMM
# in blocks of rows, and a row of a whole block comes out the same whatever the other rows, but
# rows of a smaller remainder go another way (seen: M = 2 or 3 differs from M = 12 in the last bit)
ALIGN = 4


def check_options(s: dict, group: str) -> None:
    """Range checks of the train section's prune keys (spec.Train.check), whatever train.prune."""
    require(s["prune"] in KINDS, f"{group}.prune", s["prune"], "one of " + ", ".join(KINDS))
    require(s["prune_every"] >= 1, f"{group}.prune_every", s["prune_every"], "an integer >= 1 (the first rung's step)")
    require(s["prune_eta"] > 1 and math.isfinite(s["prune_eta"]), f"{group}.prune_eta", s["prune_eta"],
            "a number > 1 (rungs at prune_every * prune_eta^i)")
    k = s["prune_keep"]
    require(k is None or (isinstance(k, (int, float)) and not isinstance(k, bool) and 0 < k < 1), f"{group}.prune_keep", k,
            "null (1/prune_eta) or a fraction in (0, 1): the share of a group's live runs that go on at a rung")
    if k is not None:
        s["prune_keep"] = float(k)
    require(s["prune_race"] in RACES, f"{group}.prune_race", s["prune_race"],
            "setting (a setting's seeds race together, by their mean score) or run (each data group alone)")
    t = s["prune_tie"]
    require(0 <= t < 1, f"{group}.prune_tie", t, "a relative tolerance in [0, 1): scores within tie * |cut| of the cut go on (0: exact ties only)")
    require(isinstance(s["prune_metric"], str), f"{group}.prune_metric", s["prune_metric"], "a metric name or auto")
    if s["prune"] == "halving":
        require(s["prune_every"] < s["steps"], f"{group}.prune_every", s["prune_every"],
                f"an integer in [1, train.steps={s['steps']}): with train.prune=halving the first rung comes before the last step")


def resolve(train: dict, family: str, val_size: float) -> None:
    """Completes the prune keys of a normalized train section (build_spec, once the family is
    known): the score `auto` resolved and checked against the family and the validation split.
    With train.prune=none the prune keys are dropped, so that a run without pruning keeps the
    config (and config hash, the identity resume matches) it had before pruning existed."""
    if train["prune"] == "none":
        for k in ("prune",) + OPTIONS:
            train.pop(k, None)
        return
    fam = FAMILIES[family]
    curves = [m for m in fam.members if m.startswith("test/") and METRICS[m].curve] + ["test/loss"]
    vals = ["val/" + m[len("test/"):] for m in curves]
    m = train["prune_metric"]
    if m == "auto":
        primary = METRICS[fam.primary]
        m = "val/" + fam.primary[len("test/"):] if val_size > 0 and primary.curve else "train/objective"
    elif m.startswith("test/"):
        raise ConfigError("train.prune_metric", m, "never a test metric (the test split judges the run; it must not "
                          f"decide which runs stop): auto, {', '.join(TRAIN)}, or with dataset.val_size > 0 one of {', '.join(vals)}")
    elif m.startswith("val/") and val_size <= 0:
        raise ConfigError("train.prune_metric", m, "a validation metric needs dataset.val_size > 0; without one: auto, "
                          + ", ".join(TRAIN))
    elif m not in TRAIN and m not in vals:
        raise ConfigError("train.prune_metric", m, f"auto, {', '.join(TRAIN)}" + (f", {', '.join(vals)}" if val_size > 0 else
                          " (validation metrics val/... with dataset.val_size > 0)") + f" (family {family})")
    train["prune_metric"] = m


def rungs(train: dict) -> list[int]:
    """The rung steps round(r0 * eta^i) < steps, increasing (repeats of a small eta dropped)."""
    out: list[int] = []
    r0, eta, steps = train["prune_every"], train["prune_eta"], train["steps"]
    i = 0
    while (r := int(round(r0 * eta ** i))) < steps:
        if not out or r > out[-1]:
            out.append(r)
        i += 1
    return out


def survivors(score: np.ndarray, live: np.ndarray, keep: float, higher: bool, tie: float = 0.0) -> np.ndarray:
    """One group's race: score and live [K]; the live runs that go on (bool [K]): the best
    ceil(keep * n_live) (at least one) and any run tied with the last of them (within tie * |cut|,
    relative), NaN last."""
    idx = np.flatnonzero(live)
    if len(idx) == 0:
        return live.copy()
    n_keep = max(1, math.ceil(keep * len(idx) - 1e-9))
    s = score[idx].astype(np.float64)
    key = np.where(np.isnan(s), np.inf, -s if higher else s)
    out = np.zeros_like(live)
    # a run whose score equals the cut's goes on: no run stops for a score equal to one that goes
    # on (runs converged to one optimum tie to the last bit; the slot order would pick at random)
    cut = np.sort(key)[n_keep - 1]
    if np.isfinite(cut):
        cut = cut + tie * abs(cut)
    out[idx[key <= cut]] = True
    return out


class Halving:
    """The race of one stack (engine._Stack): the rungs, the score, and what happens at a rung."""

    def __init__(self, train: dict, evaluated_on: str, K0: int, family: list | None = None, setting: list | None = None):
        self.rungs = rungs(train)
        self.race = train["prune_race"]
        self.family, self.setting = family, setting      # per run index: its data family, its setting
        self.keep = train["prune_keep"] if train["prune_keep"] is not None else 1.0 / train["prune_eta"]
        self.tie = train["prune_tie"]
        name = train["prune_metric"]
        assert not name.startswith("test/"), "the test split never decides a race"
        self.higher = bool(higher_is_better(name))
        # inside the engine the evaluation split's metrics are named test/...; with a validation
        # split (dataset.val_size > 0) that split is the validation rows, and only then is val/ allowed
        assert not name.startswith("val/") or evaluated_on == "val", "val/ scores need the validation split"
        self.internal = "test/" + name[len("val/"):] if name.startswith("val/") else name
        self.K0, self.compacts = K0, train["prune_compact"]
        self.stopped_at: dict[tuple[int, int], int] = {}        # (u, original slot) -> rung
        self.finals_at_stop: dict[str, np.ndarray] = {}          # final-only metrics at the stop, [U, K0]
        self.params_at_stop: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.slot_steps = 0                                      # slots x steps computed (fillers, padding included)

    @classmethod
    def of(cls, st) -> "Halving | None":
        t = st.specs[0].train
        if t.get("prune", "none") == "none":
            return None
        from harness.spec import config_hash

        family = [(s.group[0], s.group[2]) for s in st.specs]        # stack and outliers: all but the seed
        setting = [config_hash({k: v for k, v in s.config().items() if k != "seed"}) for s in st.specs]
        return cls(t, st.datas[0].evaluated_on, st.layout.K, family, setting)

    def score(self, st, loss) -> torch.Tensor:
        return loss if self.internal == "train/loss" else st.last[self.internal]

    def rung(self, st, s: int, loss, grads: dict, keep_params: bool) -> dict:
        """Step s is a rung: each group's race, the losers stopped (their final-only metrics and
        parameters kept as of now), then the stack compacted to its live runs; returns the step's
        gradients of the slots that remain."""
        alive = st.alive.cpu().numpy()
        score = self.score(st, loss).detach().cpu().numpy()
        live = alive & st.real_now
        stop = np.zeros_like(live)
        if self.race == "setting":
            stop = self.setting_race(score, live, st.layout.run_at)
        else:
            for u in range(live.shape[0]):
                stop[u] = live[u] & ~survivors(score[u], live[u], self.keep, self.higher, self.tie)
        if stop.any():
            home = st.home_np()
            fin = st.finals()
            us, ks = np.nonzero(stop)
            for name, arr in fin.items():
                a = self.finals_at_stop.setdefault(name, np.full((st.layout.U, self.K0 + 1), np.nan))
                a[us, home[us, ks]] = np.asarray(arr, dtype=np.float64)[us, ks]
            host = {k: v.detach().cpu().numpy() for k, v in st.params.items()} if keep_params else {}
            for u, k in zip(*np.nonzero(stop)):
                self.stopped_at[(int(u), int(home[u, k]))] = s
                if keep_params:
                    self.params_at_stop[(int(u), int(home[u, k]))] = {n: a[u, k].copy() for n, a in host.items()}
            stop_t = torch.as_tensor(stop, device=st.device)
            st.died = torch.where(stop_t, torch.full_like(st.died, s), st.died)
            st.alive = st.alive & ~stop_t
        return self.compact(st, alive & ~stop & st.real_now, grads) if self.compacts else grads

    def setting_race(self, score: np.ndarray, live: np.ndarray, run_at: np.ndarray) -> np.ndarray:
        """train.prune_race=setting: the runs (bool [U, K]) that stop, every seed of a losing
        setting; a setting's score is the mean of its live runs' (NaN when one is NaN: last)."""
        families: dict = {}
        for u, k in zip(*np.nonzero(live)):
            i = int(run_at[u, k])
            families.setdefault(self.family[i], {}).setdefault(self.setting[i], []).append((u, k))
        stop = np.zeros_like(live)
        for settings in families.values():
            slots = list(settings.values())
            mean = np.array([np.mean([score[u, k] for u, k in at]) for at in slots], dtype=np.float64)
            kept = survivors(mean, np.ones(len(slots), dtype=bool), self.keep, self.higher, self.tie)
            for at, ok in zip(slots, kept):
                for u, k in ([] if ok else at):
                    stop[u, k] = True
        return stop

    def compact(self, st, live: np.ndarray, grads: dict) -> dict:
        """Gathers every [U, K] tensor of the stack, and the step's gradients, down to the live
        runs (module doc)."""
        U, K = live.shape
        K1 = ALIGN * max(1, -(-int(live.sum(1).max()) // ALIGN))
        if K1 >= K:
            return grads
        idx = np.zeros((U, K1), dtype=np.int64)
        filler = np.ones((U, K1), dtype=bool)
        for u in range(U):
            ks = np.flatnonzero(live[u])
            idx[u, :len(ks)] = ks
            idx[u, len(ks):] = ks[0] if len(ks) else 0
            filler[u, :len(ks)] = False
        st.flush_died()
        home = st.home_np()[np.arange(U)[:, None], idx]
        home[filler] = self.K0                                 # the spare slot of the record
        gi = torch.as_tensor(idx, device=st.device)
        ar = torch.arange(U, device=st.device)[:, None]
        take = lambda t: t[ar, gi]
        st.params = {n: take(p.detach()).clone().requires_grad_(True) for n, p in st.params.items()}
        st.opt.state = {n: {k: take(v).clone() for k, v in d.items()} for n, d in st.opt.state.items()}
        st.lr, st.l1, st.l2 = take(st.lr), take(st.l1), take(st.l2)
        if st.lr_factors is not None:
            st.lr_factors = st.lr_factors[:, ar, gi]
        st.lparams = {k: (v if isinstance(v, float) else take(v)) for k, v in st.lparams.items()}
        st.threshold = take(st.threshold)
        st.died = take(st.died)
        st.alive = take(st.alive) & torch.as_tensor(~filler, device=st.device)
        st.real_now = st.real_now[np.arange(U)[:, None], idx] & ~filler
        st.set_home(home)
        lay = st.layout
        st.layout = type(lay)(lay.groups, U, K1, lay.run_at[np.arange(U)[:, None], idx], st.real_now.copy())
        return {n: take(g) for n, g in grads.items()}
