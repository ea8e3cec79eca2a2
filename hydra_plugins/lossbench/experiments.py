"""The studies in experiments/ as Hydra's config group `experiment` (`+experiment=NAME`).

Each file is registered in Hydra's ConfigStore under its stem, in the global package (the files
open with `# @package _global_`): no symlink from conf/ is needed, so a checkout on any file
system finds them. Hydra imports this module with its plugins, before composing any config.
"""
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

for _path in sorted(EXPERIMENTS.glob("*.yaml")):
    ConfigStore.instance().store(group="experiment", name=_path.stem, node=OmegaConf.load(_path),
                                 package="_global_", provider="lossbench")
