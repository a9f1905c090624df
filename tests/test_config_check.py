"""A config that breaks the schema stops in a few lines: the file that sets the key, the key, what was
expected, and the closest valid key or value. By hand on the pure function, then in a real Snakemake
run (the whole output under ten lines)."""

from __future__ import annotations

import pytest
import yaml
from demo_project import copy_project, snakemake

from dygenept.config_check import config_error, config_sources, where_set

from conftest import ROOT

SCHEMA = ROOT / "config" / "schema.yaml"


def demo_config(**overrides) -> dict:
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def test_a_valid_config_has_no_error():
    assert config_error(demo_config(), SCHEMA) == ""


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"train": {"stepz": 3}},
            ["config key 'train.stepz' is not a setting.", "Did you mean 'train.steps'?"],
        ),
        (
            {"facets": {"backend": "go_rules"}},
            [
                "config key 'facets.backend' is 'go_rules'; expected one of:",
                "Did you mean 'go-rules'?",
            ],
        ),
        (
            {"train": {"steps": "many"}},
            ["config key 'train.steps' is 'many'; expected a value of type integer."],
        ),
        (
            {"train": {"learning_rate": -1}},
            ["config key 'train.learning_rate' is -1; the schema asks for exclusiveMinimum: 0."],
        ),
    ],
)
def test_the_message_names_the_key_the_expectation_and_a_guess(overrides, expected):
    message = config_error(demo_config(**overrides), SCHEMA)
    assert all(part in message for part in expected), message
    assert len(message.splitlines()) <= 3 and "Fix:" in message


def test_a_misspelled_section_is_guessed_at_the_top_level():
    config = demo_config()
    config["trian"] = config.pop("train", {})
    message = config_error(config, SCHEMA)
    assert "config key 'trian' is not a setting." in message and "Did you mean 'train'?" in message
    assert "the top-level keys: outdir, shards, dataset" in message


def test_the_file_named_is_the_one_that_sets_the_key(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("train: {steps: 1}\n")
    second.write_text("train: {steps: 2}\nfacets: {backend: x}\n")
    sources = config_sources([first, second], {"predict": {"top_genes": 0}})
    assert [label for label, _ in sources][-1] == "--config"
    assert where_set(["train", "steps"], sources) == str(second)
    assert where_set(["facets", "backend"], sources) == str(second)
    assert where_set(["predict", "top_genes"], sources) == "--config"
    assert where_set(["train", "stepz"], sources) == str(second)  # its nearest parent


def test_snakemake_prints_the_file_the_key_and_a_guess_in_under_ten_lines(tmp_path):
    project = copy_project(tmp_path)
    (project / "config" / "test.yaml").write_text("train:\n  stepz: 3\n")
    result = snakemake(project, "--dry-run")
    output = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(output) < 10, "\n".join(output)
    text = "\n".join(output)
    assert "config/test.yaml: config key 'train.stepz' is not a setting." in text
    assert "Did you mean 'train.steps'?" in text and "Fix: use one of the keys of 'train'" in text
