"""A real SLURM run of the demo through profiles/slurm, on a one-node cluster on this machine.

scripts/local-slurm starts munged, slurmctld and slurmd (Debian's slurm-wlm); Snakemake submits each
stage with snakemake-executor-plugin-slurm and polls `squeue`. Checked: every stage but the local
(network) rules ran as its own SLURM job, the results equal a local run's, and a job killed with
`scancel` while it runs is reported and submitted again (the profile's `retries: 1`), after which the
run completes and a rerun has nothing to do. Needs root (slurmd) and the packages, which the test
installs with apt-get where it can (as in CI); skipped elsewhere, saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from demo_project import copy_project, planned_jobs, snakemake

from conftest import ROOT

pytestmark = pytest.mark.slow

LOCAL_SLURM = ROOT / "scripts" / "local-slurm"
SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
RUN_TIMEOUT_S = 720  # the whole SLURM run, scancel and resubmission included
LOCAL_RULES = {"knowledge"}  # the Snakefile's localrules that the demo runs (besides `all`)
CANCELLED_RULE = "facet_embed"  # the longest stage before train: cancelled once while it runs
# Artifacts whose bytes are a pure function of their inputs: equal on SLURM and locally.
DETERMINISTIC = [
    "data/dataset.h5ad",
    "data/split.json",
    "data/de_genes.json",
    "data/data_card.json",
    "model/genes/genes.tsv",
    "model/knowledge/gene_text.parquet",
    "model/enrich/gene_text.parquet",
    "model/facets/facets.parquet",
    "model/facet_embed/facet_tensor.safetensors",
    "cells/control_embeddings.safetensors",
    *(
        f"train/{variant}/seed0/model.{ext}"
        for variant in ("dygenept", "dygenept_static", "dygenept_softmax")
        for ext in ("safetensors", "json")
    ),
    "evaluate/metrics.json",
    "evaluate/per_condition.csv",
    "evaluate/facet_weights.csv",
    "report/metrics_table.txt",
    "report/facet_heatmap.png",
    "predict/screen.tsv",
]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/")


def slurm_unavailable() -> str | None:
    """None when a local SLURM cluster can run here, else the reason it cannot."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    if os.geteuid() != 0:
        return "needs root: slurmd runs as root (CI runs the tests as root)"
    if all(shutil.which(tool) for tool in SLURM_TOOLS):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed, and there is no apt-get to install them"
    install = subprocess.run(
        [str(LOCAL_SLURM), "install"], capture_output=True, text=True, timeout=900
    )
    if install.returncode != 0:
        return f"`scripts/local-slurm install` failed: {install.stderr[-1000:]}"
    return None


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """The environment of a client of a running local cluster; the cluster stops after the module."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        [str(LOCAL_SLURM), "start", str(state)], capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield {
            **os.environ,
            "SLURM_CONF": str(state / "slurm.conf"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
    finally:
        subprocess.run([str(LOCAL_SLURM), "stop", str(state)], timeout=60)


def local_cluster_profile(project: Path) -> str:
    """profiles/slurm with its site values set for the local cluster; the name of the copy."""
    profile = yaml.safe_load((project / "profiles" / "slurm" / "config.yaml").read_text())
    del profile["default-resources"]["slurm_account"]  # the local cluster has no accounts
    profile["slurm-no-account"] = True
    del profile["software-deployment-method"]  # no conda channel answers here: the venv runs stages
    profile["slurm-init-seconds-before-status-checks"] = 2  # one node, nothing queued before us
    profile["latency-wait"] = 5  # one file system
    profile["default-resources"]["mem_mb"] = 2000  # what the stages need, within this machine
    del profile["set-resources"]  # the site's larger memory for facet_embed and train
    target = project / "profiles" / "slurm-local"
    target.mkdir()
    (target / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return "profiles/slurm-local"


def squeue(env: dict, *args: str) -> list[list[str]]:
    out = subprocess.run(
        ["squeue", "--noheader", *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def cancel_once_running(process: subprocess.Popen, env: dict, rule: str, deadline: float) -> str:
    """scancel the job of `rule` once it has run for a few seconds; its SLURM id."""
    while time.monotonic() < deadline and process.poll() is None:
        for job_id, comment, state, seconds in squeue(
            env, "--states=RUNNING", "--format=%i|%k|%T|%M"
        ):
            running = state == "RUNNING" and seconds not in ("0:00", "0:01")
            if comment.startswith(f"rule_{rule}") and running:
                subprocess.run(["scancel", job_id], env=env, check=True)
                return job_id
        time.sleep(0.5)
    pytest.fail(f"the {rule} job was never seen running (snakemake.out in the project says why)")


@pytest.fixture(scope="module")
def slurm_run(slurm_env, demo_run, tmp_path_factory):
    """The demo again, every stage submitted to the local cluster; one job cancelled once."""
    local_project, _ = demo_run
    project = copy_project(tmp_path_factory.mktemp("slurm_project"))
    shutil.copy2(local_project / "config" / "test.yaml", project / "config" / "test.yaml")
    profile = local_cluster_profile(project)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        "config/demo.yaml",
        "config/test.yaml",
        "--workflow-profile",
        profile,
        "--cores",
        "2",
    ]
    started = time.monotonic()
    deadline = started + RUN_TIMEOUT_S
    # a file, not a pipe: nothing blocks while the test watches squeue
    log = project / "snakemake.out"
    with (
        log.open("w") as sink,
        subprocess.Popen(
            command, cwd=project, env=slurm_env, stdout=sink, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        try:
            cancelled = cancel_once_running(process, slurm_env, CANCELLED_RULE, deadline)
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            process.kill()
            subprocess.run(["scancel", "--user=root"], env=slurm_env)
            raise
        finally:
            output = log.read_text()
    seconds = time.monotonic() - started
    assert process.returncode == 0, output[-5000:]
    return project, project / "results" / "demo", output, cancelled, seconds


def test_every_stage_ran_as_a_slurm_job(slurm_run, slurm_env):
    project, _, output, cancelled, seconds = slurm_run
    jobs = SUBMITTED.findall(output)
    rules = {rule for _, rule in jobs}
    local = set(re.findall(r"^localrule (\w+):", output, re.M))
    assert local == LOCAL_RULES | {"all"}, local
    stages = {"dataset", "genes", "enrich", "facets", "facet_embed", "cells", "train"}
    assert rules == stages | {"evaluate", "predict", "report"}
    assert not rules & local
    # the cluster's own record: each job ran, under the rule's name, and ended COMPLETED (but the
    # cancelled one); each left its SLURM log beside the others
    ids = ",".join(job_id for job_id, _ in jobs)
    states = {
        job_id: (comment, state, partition)
        for job_id, comment, state, partition in squeue(
            slurm_env, "--states=all", f"--jobs={ids}", "--format=%i|%k|%T|%P"
        )
    }
    for job_id, rule in jobs:
        expected = "CANCELLED" if job_id == cancelled else "COMPLETED"
        # no demo stage asks for a GPU: partitions.yaml sends them all to the CPU partition
        comment, state, partition = states[job_id]
        # a rule with wildcards (train: variant, seed) has them in its comment and its log folder
        assert comment.startswith(f"rule_{rule}") and (state, partition) == (expected, "cpu"), (
            job_id,
            rule,
        )
        logs = project / ".snakemake" / "slurm_logs" / f"rule_{rule}"
        assert list(logs.rglob(f"{job_id}.log")), (job_id, rule)
    print(f"SLURM run: {seconds:.0f} s for {len(jobs)} jobs")


def test_a_cancelled_job_is_reported_and_submitted_again(slurm_run, slurm_env):
    project, out, output, cancelled, _ = slurm_run
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    attempts = [job_id for job_id, rule in SUBMITTED.findall(output) if rule == CANCELLED_RULE]
    # one job per gene set (the model's and the screen's), and the cancelled one once more
    assert len(attempts) == 3 and cancelled in attempts[:2]
    for gene_set in ("model", "screen"):
        assert (out / gene_set / "facet_embed" / "facet_tensor.safetensors").is_file()
    rerun = snakemake(
        project,
        "--dry-run",
        "--workflow-profile",
        "profiles/slurm-local",
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert planned_jobs(rerun) == set()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_results_equal_a_local_run(slurm_run, demo_run):
    _, slurm_out, _, _, slurm_seconds = slurm_run
    _, local_out = demo_run
    metrics = [
        json.loads((out / "evaluate" / "metrics.json").read_text())
        for out in (slurm_out, local_out)
    ]
    assert metrics[0] == metrics[1]
    for artifact in DETERMINISTIC:
        assert sha256(slurm_out / artifact) == sha256(local_out / artifact), artifact
    print(f"SLURM run {slurm_seconds:.0f} s")


def test_partitions_send_gpu_jobs_to_the_gpu_partition():
    """profiles/slurm/partitions.yaml through the executor's own partition choice (no GPU here to
    submit to): CPU jobs to the CPU partition, GPU jobs to the GPU one, an unknown GPU model nowhere."""
    partitions = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")
    site = partitions.read_partition_file(ROOT / "profiles" / "slurm" / "partitions.yaml")

    def best(**resources):
        job = SimpleNamespace(
            name="stage", threads=2, resources={"mem_mb": 8000, "runtime": 60, **resources}
        )
        return partitions.get_best_partition(site, job, logging.getLogger(__name__))

    assert best() == best(gpu=0) == "cpu"
    assert best(gpu=1) == best(gpu=1, gpu_model="a100") == "gpu"
    assert best(gpu=1, gpu_model="no_such_gpu") is None
