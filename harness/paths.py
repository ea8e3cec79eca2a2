"""Where lossbench's own files are: the repository root and its Hydra config tree."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"            # config groups: loss/ dataset/ model/ optimizer/, config.yaml
EXPERIMENTS = ROOT / "experiments"   # studies, found by Hydra as the group `experiment`


def group_dir(group: str) -> Path:
    """The folder holding the options of a config group (conf/<group>, or experiments/)."""
    return EXPERIMENTS if group == "experiment" else CONF / group
