"""One GPU policy: every rule whose configured backend runs on a GPU asks the scheduler for one under
device auto or cuda, none under cpu (registry.stage_gpus, read by every rule through one helper). Checked
on real dry runs of config/config.yaml, job by job."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
import yaml
from demo_project import copy_project, planned_jobs, snakemake

from dygenept import registry
from dygenept.config_defaults import merged, section_defaults

from conftest import ROOT

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


# ---- the SLURM profile, statically (tests/test_slurm.py runs the demo on a real cluster) -------------


def local_rules() -> set[str]:
    """Rules that run where Snakemake runs: the Snakefile's `localrules:` and `localrule: True`."""
    names = set()
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        text = path.read_text()
        block = re.search(r"^localrules:\n((?:\s+\w+,?\n)+)", text, re.M)
        names |= set(re.findall(r"\w+", block.group(1))) if block else set()
        for name, body in re.findall(r"^\s*rule (\w+):(.*?)(?=^\s*rule |\Z)", text, re.S | re.M):
            names |= {name} if re.search(r"localrule:\s*True", body) else set()
    return names


def test_the_slurm_profile_places_every_job_of_the_real_run_at_genome_scale(project, tmp_path):
    """config.yaml with 8 shards, planned through profiles/slurm (its default- and set-resources), each
    submitted job through the executor's own partition choice: GPU jobs on the GPU partition, the rest on
    the CPU one, none left without a partition; every rule the profile sizes exists."""
    partitions = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")
    profile = ROOT / "profiles" / "slurm"
    site = partitions.read_partition_file(profile / "partitions.yaml")
    (project / "config" / "scale.yaml").write_text(
        yaml.safe_dump({"outdir": str(tmp_path / "results"), "shards": 8, **SCREEN})
    )
    result = snakemake(
        project,
        "--dry-run",
        "--workflow-profile",
        str(profile),
        "--software-deployment-method",
        "env-modules",  # the profile's conda is not installed here; a dry run creates no env anyway
        config_files=("config/config.yaml", "config/test.yaml", "config/scale.yaml"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    local, placed = local_rules(), {}
    # a group's jobs (the LLM stage's gathering and the facets job) print indented under their group
    jobs = re.findall(
        r"^\s*(?:local)?rule (\w+):\n(.*?)(?=^\s*(?:local)?rule |\Z)", result.stdout, re.M | re.S
    )
    for rule, body in jobs:
        if rule in local | {"all"}:
            continue
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", body)[1]))
        job = SimpleNamespace(
            name=rule,
            threads=int(re.search(r"threads: (\d+)", body)[1]) if "threads:" in body else 1,
            resources={key: int(v) if v.isdigit() else v for key, v in resources.items()},
        )
        chosen = partitions.get_best_partition(site, job, logging.getLogger(__name__))
        wanted = "gpu" if int(resources.get("gpu", 0)) else "cpu"
        placed.setdefault(rule, set()).add(chosen)
        assert chosen == wanted, (rule, resources, chosen)
    assert {"facets_llm_shard", "facet_embed_shard", "train", "evaluate", "cells"} <= set(placed)
    assert placed["facets_llm_shard"] == placed["train"] == {"gpu"}
    sized = yaml.safe_load((profile / "config.yaml").read_text())["set-resources"]
    assert set(sized) <= planned_jobs(result), set(sized) - planned_jobs(result)
