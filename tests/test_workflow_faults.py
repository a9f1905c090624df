"""Real Snakemake runs on a bad day: a file where the output folder should be, and a screen asked for
with nothing to screen, stop before any job; a predict job that fails keeps the last good screen and its
provenance; --forceall never downloads the annotation databases again once they are cached."""

from __future__ import annotations

import shutil

import pytest
import yaml
from demo_project import copy_project, planned_jobs, snakemake

EMPTY_SCREEN = {"predict": {"perturbations": [], "file": None}}


def test_an_empty_screen_stops_before_any_job_naming_the_key(tmp_path):
    project = copy_project(tmp_path)
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(EMPTY_SCREEN))
    result = snakemake(project, "predict")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "config 'predict.perturbations' is empty" in output and "Fix: list genes or pairs" in output
    )
    assert "Job stats" not in output and not (project / "results").exists()
    # the default target with no screen asked for plans no predict job (and fails nothing)
    plan = snakemake(project, "--dry-run")
    assert plan.returncode == 0 and "predict" not in planned_jobs(plan)


def test_a_file_where_the_output_folder_should_be_stops_before_any_job(tmp_path):
    project = copy_project(tmp_path)
    (project / "config" / "test.yaml").write_text("{}\n")
    (project / "results").mkdir()
    (project / "results" / "demo").write_text("a file, not the output folder")
    result = snakemake(project, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "results/demo: a file where a folder must be" in output and "Fix: move or delete" in output
    )
    assert "NotADirectoryError" not in output and "Job stats" not in output


def write_annotation_cache(folder, present: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("org.Hs.eg.sqlite", "GO.sqlite"):
        if present:
            (folder / name).touch()  # a dry run plans from the files' presence only


@pytest.mark.parametrize("cached", [True, False])
def test_forceall_never_fetches_cached_annotation_databases(tmp_path, cached):
    project = copy_project(tmp_path)
    cache = tmp_path / "annotation_cache"
    write_annotation_cache(cache, present=cached)
    config = {"annotations": {"cache_dir": str(cache)}}
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake(project, "--dry-run", "--forceall")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert ("fetch_annotations" in planned_jobs(plan)) is not cached
    assert "dataset" in planned_jobs(plan)


@pytest.mark.slow
def test_a_failing_predict_keeps_the_last_good_screen_and_its_provenance(demo_run, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(demo_run[0], project, symlinks=True)  # results, caches and Snakemake's records
    screen = project / "results" / "demo" / "predict"
    before = {path.name: path.read_bytes() for path in screen.iterdir()}
    assert "screen.tsv" in before and "screen.tsv.provenance.json" in before
    stage = project / "workflow" / "dygenept" / "stages" / "predict.py"
    source = stage.read_text()
    # a bug in the stage's code: the job reruns (its code is an input) and fails
    stage.write_text(
        source + "\n\ndef run(inputs, outputs, params):\n    raise RuntimeError('a bug')\n"
    )
    result = snakemake(project)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "a bug" in output
    after = {path.name: path.read_bytes() for path in screen.iterdir()}
    assert after == before  # every output and every provenance record, byte for byte
    stage.write_text(source)
    # the report plots the screen's pairs, so it waits for the screen's rerun
    assert planned_jobs(snakemake(project, "--dry-run")) == {"predict", "report", "all"}
