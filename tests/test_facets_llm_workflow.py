"""Real Snakemake dry runs in a scratch copy of the project: with an LLM backend selected, the prompt
files are inputs of rule facets_llm, and editing one reruns facets_llm → facets → facet_embed → train →
evaluate → report, never the text or cell stages; with go-rules they are no input at all. A dry run needs
no model and no server: the outputs are created and touched first (``--touch``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from demo_project import (
    DOWNSTREAM_OF_FACETS,
    append_line,
    copy_project,
    planned_jobs,
    planned_outputs,
    snakemake,
)

# End-to-end: about ten real Snakemake invocations (parse, dry run, touch) of a project copy, a minute
# or more on two cores; `make test-fast` leaves them out, `make test` runs them.
pytestmark = pytest.mark.slow

PROMPT_FILES = ["system.md", "user.md", "examples.yaml"]


def finished_project(destination: Path, backend: str, org_db: Path, go_db: Path) -> Path:
    """A project copy whose every output exists and is up to date, as after a run with ``backend``."""
    project = copy_project(destination)
    overrides = {
        "annotations": {"sqlite": {"org_hs_eg": str(org_db), "go": str(go_db)}},
        "facets": {"backend": backend},
    }
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(overrides))
    plan = snakemake(project, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-2000:]
    for name in planned_outputs(plan):
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    touched = snakemake(project, "--touch")
    assert touched.returncode == 0, touched.stderr[-2000:]
    assert planned_jobs(snakemake(project, "--dry-run")) == set()
    return project


def planned_after(project: Path, edited: str, *args: str) -> set[str]:
    path = project / edited
    original = append_line(path, "\n# an edit\n")
    try:
        result = snakemake(project, "--dry-run", *args)
    finally:
        path.write_text(original)
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result)


@pytest.fixture(scope="module")
def vllm_project(tmp_path_factory, org_db, go_db) -> Path:
    return finished_project(tmp_path_factory.mktemp("vllm"), "vllm", org_db, go_db)


@pytest.mark.parametrize("prompt", PROMPT_FILES)
def test_editing_the_prompt_reruns_the_llm_and_what_follows_only(vllm_project, prompt):
    planned = planned_after(vllm_project, f"resources/prompts/facets/{prompt}")
    assert planned == DOWNSTREAM_OF_FACETS | {"facets_llm"}
    assert not planned & {"knowledge", "enrich", "cells", "genes", "dataset"}


def test_editing_the_llm_code_reruns_the_llm_stage(vllm_project):
    edited = "workflow/dygenept/facet_backends/llm/validation.py"
    assert planned_after(vllm_project, edited) == DOWNSTREAM_OF_FACETS | {"facets_llm"}


def test_vllm_asks_for_a_gpu(vllm_project):
    result = snakemake(
        vllm_project, "--dry-run", "--forcerun", "facets_llm", "--resources", "gpu=1"
    )
    block = re.search(r"rule facets_llm:.*?resources: ([^\n]*)", result.stdout, re.S)
    assert block and "gpu=1" in block.group(1)


def test_with_go_rules_the_prompt_is_no_input(tmp_path, org_db, go_db):
    project = finished_project(tmp_path, "go-rules", org_db, go_db)
    assert planned_after(project, "resources/prompts/facets/system.md") == set()
    assert "facets_llm" not in snakemake(project, "--dry-run", "--forceall").stdout
