"""One GPU policy: every rule whose configured backend runs on a GPU asks the scheduler for one under
device auto or cuda, none under cpu (registry.stage_gpus, read by every rule through one helper). Checked
on real dry runs of config/config.yaml, job by job."""

from __future__ import annotations

import re

import pytest
import yaml
from demo_project import copy_project, snakemake

from dygenept import registry
from dygenept.config_defaults import merged, section_defaults

pytestmark = pytest.mark.slow

# Every device setting of config.yaml's backends (vllm has none: it always runs on GPUs).
DEVICE_KEYS = {
    "facet_embed": {"device": None},
    "cells": {"scgpt": {"device": None}},
    "train": {"device": None},
}
# An in-silico screen, so that rule predict is planned too.
SCREEN = {"predict": {"perturbations": ["TP53"]}}


def with_device(device: str) -> dict:
    def fill(node):
        return {
            key: fill(value) if isinstance(value, dict) else device for key, value in node.items()
        }

    return fill(DEVICE_KEYS)


def job_gpus(output: str) -> dict[str, set[int]]:
    """rule → the gpu resource of each of its planned jobs (0 where a job declares none)."""
    found: dict[str, set[int]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", output, re.M | re.S):
        gpu = re.search(r"resources: .*\bgpu=(\d+)", body)
        found.setdefault(rule, set()).add(int(gpu.group(1)) if gpu else 0)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory, org_db, go_db):
    project = copy_project(tmp_path_factory.mktemp("gpu_policy"))
    annotations = {"annotations": {"sqlite": {"org_hs_eg": str(org_db), "go": str(go_db)}}}
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(annotations))
    return project


def planned_gpus(project, tmp_path, overrides: dict) -> dict[str, set[int]]:
    (project / "config" / "devices.yaml").write_text(
        yaml.safe_dump({"outdir": str(tmp_path / "results"), **SCREEN, **overrides})
    )
    result = snakemake(
        project,
        "--dry-run",
        # the workstation profile offers no GPU (gpu=0), which caps what a job asks for
        "--resources",
        "gpu=8",
        config_files=("config/config.yaml", "config/test.yaml", "config/devices.yaml"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return job_gpus(result.stdout)


@pytest.mark.parametrize("device, expected", [("cpu", 0), ("auto", 1), ("cuda", 1)])
def test_every_rule_asks_for_a_gpu_exactly_when_its_backend_may_run_on_one(
    project, tmp_path, device, expected
):
    gpus = planned_gpus(project, tmp_path, with_device(device))
    on_device = {"facet_embed", "cells", "train", "evaluate", "predict"}
    for rule in on_device:
        assert gpus[rule] == {expected}, (rule, gpus[rule])
    # vllm runs on GPUs whatever the devices say: tensor_parallel_size of them
    assert gpus["facets_llm"] == {1}
    # the rest never compute on a GPU (the facets stage reads the LLM's records)
    for rule in set(gpus) - on_device - {"facets_llm"}:
        assert gpus[rule] == {0}, rule


def test_the_llm_and_an_embedding_facet_backend_follow_their_devices(project, tmp_path):
    for device, expected in [("cpu", 0), ("auto", 1), ("cuda:1", 1)]:
        overrides = {
            "facets": {"backend": "transformers", "llm": {"transformers": {"device": device}}}
        }
        assert planned_gpus(project, tmp_path, overrides)["facets_llm"] == {expected}
    extractive = {"facets": {"backend": "extractive"}}
    for device, expected in [("cpu", 0), ("auto", 1)]:
        gpus = planned_gpus(project, tmp_path, {**extractive, "facet_embed": {"device": device}})
        assert gpus["facets"] == gpus["facet_embed"] == {expected}
        assert "facets_llm" not in gpus


def test_the_registry_answers_the_same_without_snakemake():
    config = {name: section_defaults(name) for name in ("facets", "facet_embed", "cells", "train")}
    config = merged(config, {"facets": {"backend": "vllm"}, "cells": {"encoder": "scgpt"}})
    config["facets"]["llm"]["vllm"]["tensor_parallel_size"] = 4
    assert registry.stage_gpus("facets_llm", config) == 4
    for device, expected in [("cpu", 0), ("auto", 1), ("cuda", 1)]:
        devices = merged(config, with_device(device))
        assert [
            registry.stage_gpus(stage, devices)
            for stage in ("facet_embed", "cells", "train", "evaluate", "predict")
        ] == [expected] * 5
        assert registry.stage_gpus("dataset", devices) == 0
