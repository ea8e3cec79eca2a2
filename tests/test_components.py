"""Every registered component has one YAML file in its conf/ group holding its defaults (the one
source of them), with exactly the keys its Python schema types; the spec's own sections likewise
in conf/config.yaml. Looping over the registries: a new component is checked the moment it is
registered."""
from __future__ import annotations

import pytest
import yaml

from harness.component import Section, group_defaults, section_defaults
from harness.data import DATASETS
from harness.losses import LOSSES
from harness.models import MODELS
from harness.optim import OPTIMIZERS
from harness.paths import CONF
from harness.spec import Outliers, Regularization, Tracking, Train

REGISTRIES = {"loss": LOSSES, "dataset": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS}
COMPONENTS = [(g, n) for g, reg in REGISTRIES.items() for n in reg.names()]


@pytest.mark.parametrize("group, name", COMPONENTS)
def test_each_component_has_its_yaml_with_the_schema_keys(group, name):
    cls = REGISTRIES[group].get(name)
    assert cls.group == group
    path = CONF / group / f"{name}.yaml"
    assert path.is_file(), f"conf/{group}/{name}.yaml is missing"
    conf = yaml.safe_load(path.read_text())
    assert conf.pop("name") == name
    shared = section_defaults(group)          # keys every option of the group takes, in conf/config.yaml
    assert not set(conf) & set(shared), f"conf/{group}/{name}.yaml repeats a shared default"
    assert set(conf) | set(shared) == set(cls.schema), f"conf/{group}/{name}.yaml keys differ from {cls.__name__}.schema"
    assert group_defaults(group, name) == conf


@pytest.mark.parametrize("group, name", [(g, n) for g, n in COMPONENTS if n not in ("custom", "file", "openml")])
def test_defaults_come_from_the_yaml(group, name):
    """normalize() of an empty section gives the YAML's values, typed by the schema."""
    cls = REGISTRIES[group].get(name)
    got = cls.normalize({}, group)
    want = {**section_defaults(group), **group_defaults(group, name)}
    assert {k: got[k] for k in want} == want
    for k, kind in cls.schema.items():
        assert kind is None or got[k] is None or isinstance(got[k], kind), (k, kind, got[k])


@pytest.mark.parametrize("cls", [Regularization, Outliers, Train, Tracking])
def test_spec_sections_default_from_config_yaml(cls):
    assert issubclass(cls, Section)
    defaults = section_defaults(cls.name)
    assert set(defaults) == set(cls.schema)
    got = cls.normalize({}, cls.name)
    assert {k: got[k] for k in defaults} == {k: (float(v) if cls.schema[k] is float and v is not None else v)
                                             for k, v in defaults.items()}


def test_a_default_changed_in_the_yaml_is_the_default(tmp_path, monkeypatch):
    """One source: editing the YAML changes what normalize() fills in."""
    import harness.component as C

    (tmp_path / "loss").mkdir()
    (tmp_path / "loss" / "huber.yaml").write_text("name: huber\ndelta: 2.5\n")
    monkeypatch.setattr(C, "CONF", tmp_path)
    assert LOSSES.get("huber").normalize({}, "loss")["delta"] == 2.5
