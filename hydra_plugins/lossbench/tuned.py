"""The sweeper's side of the tuned protocol (harness/protocol.py): phase 2's jobs are validated
with phase 1's, before anything runs; once phase 1 has run, each group's setting is chosen from
its results (the same `choose` the report uses) and phase 2 goes into the same parent run."""
import sys
from typing import Any, Dict, List, Optional


def tuning_of(config) -> Optional[Any]:
    """The primary config's study's Tuning (None: shared protocol); a bad one: one line, exit 2."""
    from omegaconf import OmegaConf

    from harness.errors import ConfigError
    from harness.protocol import Tuning

    study = OmegaConf.to_container(config.study, resolve=True) if config.get("study") else None
    try:
        return Tuning.of(study)
    except ConfigError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)


class Finals:
    """Phase 2 of a tuned sweep: one group per phase-1 job set that differs only in the tuned
    keys and the seed; `count` runs (groups x final seeds), composed and validated now."""

    def __init__(self, sweeper, tuning, jobs: List[List[str]], specs) -> None:
        from harness.compose import FastComposer
        from harness.errors import ConfigError
        from harness.spec import build_spec

        self.tuning, self.jobs1, self.specs1 = tuning, jobs, specs
        self.composer = FastComposer(sweeper.hydra_context.config_loader, sweeper.config)
        groups: Dict[tuple, int] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(self._group(job), i)
        self.count = len(groups) * len(tuning.final_seeds)
        try:   # every group's final runs compose and validate (one per group: the rest differ in numbers)
            for i in groups.values():
                build_spec(self.composer.task_config(tuning.final(jobs[i], tuning.final_seeds[0])))
        except ConfigError as e:
            print(e.line(), file=sys.stderr)
            sys.exit(2)

    def phase1(self, jobs: List[List[str]], specs) -> None:
        """Phase 1's jobs as they ran (an adaptive search: its trials), for `jobs` to choose from."""
        self.jobs1, self.specs1 = jobs, specs

    def _group(self, job: List[str]) -> tuple:
        skip = set(self.tuning.keys) | {"seed", "dataset.val_size", "phase", "train.prune"}
        return tuple(ln for ln in job if ln.lstrip("+~").split("=", 1)[0] not in skip)

    def jobs(self, values: Dict[str, Dict[str, Any]], ctx) -> List[List[str]]:
        """Phase 2's jobs from phase 1's final values ({config hash: values}, tally.values); their
        specs join the context (for the launcher)."""
        import pandas as pd

        from harness.metric_table import FAMILIES, higher_is_better
        from harness.protocol import choose
        from harness.schema import run_params
        from harness.spec import build_spec

        rows = []
        for spec in self.specs1:
            value = values.get(spec.config_hash) or {}
            rows.append({**run_params(spec.config()), **{k: v for k, v in value.items() if isinstance(v, float)},
                         "_family": spec.family})
        table = pd.DataFrame(rows)
        chosen = []
        for family, part in table.groupby("_family", sort=False):
            metric = self.tuning.metric or "val/" + FAMILIES[family].primary.split("/", 1)[1]
            if metric not in part:
                part = part.assign(**{metric: float("nan")})
            chosen += list(choose(part.drop(columns="_family"), self.tuning.keys, metric,
                                  bool(higher_is_better(metric)))["index"])
        out = [self.tuning.final(self.jobs1[i], seed) for i in sorted(chosen) for seed in self.tuning.final_seeds]
        ctx.specs.update({tuple(j): build_spec(self.composer.task_config(j), tuple(j)) for j in out})
        return out
