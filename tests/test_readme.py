"""README.md runs as written: every command of its shell blocks that can run offline on the demo runs,
in order, in a scratch copy of the project (with the venv first on PATH, as `make` puts it, and the
annotation cache where a set-up machine has it); every other command is listed here with the reason it
cannot run in a test. A new command in README.md that is in neither list fails the test. The demo
paragraph's numbers are what the demo printed, and the kill → --unlock → rerun story holds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from demo_project import copy_project

from conftest import ANNOTATION_CACHE, ROOT

pytestmark = pytest.mark.slow

NOT_RUN = {
    "make demo": "sets up the venv the test runs in; its pipeline command is the demo line below",
    "make test": "the whole test suite, this test among it",
    ". .venv/bin/activate": "the test runs inside the venv already (PATH)",
    "snakemake --cores 16": "config/config.yaml: the real run downloads GEARS' data and network text",
    "snakemake --configfile config/adamson2016.yaml --cores 16": "downloads GEARS' Adamson data",
    "snakemake --cores 16 --use-conda": "creates conda envs: no conda channel is reachable in CI",
    "snakemake --workflow-profile profiles/slurm": "needs a SLURM cluster (tests/test_slurm.py)",
    'snakemake --cores 16 predict --config \'predict={"file": "candidates.txt"}\'': (
        "config/config.yaml (network) and a candidates file of the reader's"
    ),
    "snakemake --workflow-profile profiles/slurm --configfile config/config.yaml": (
        "needs a SLURM cluster (tests/test_slurm.py)"
    ),
    "sudo scripts/local-slurm install && sudo scripts/local-slurm start /tmp/slurm": (
        "root and Debian's slurm packages (tests/test_slurm.py)"
    ),
    "export SLURM_CONF=/tmp/slurm/slurm.conf; sinfo": "a running local cluster",
    "sudo scripts/local-slurm stop /tmp/slurm": "a running local cluster",
    "snakemake --configfile config/demo.yaml config/demo_cv.yaml --cores 2": (
        "45 fold trainings (about 20 min on 2 cores); tests/test_workflow.py runs the same configs with "
        "few training steps"
    ),
}
UNLOCK = "snakemake --configfile config/demo.yaml --unlock"
DEMO = "snakemake --configfile config/demo.yaml --cores 2"


def without_comment(line: str) -> str:
    """The line less a trailing comment (a `#` after blanks, outside quotes)."""
    for match in re.finditer(r"\s+#", line):
        if line[: match.start()].count("'") % 2 == 0:
            return line[: match.start()]
    return line


def readme_commands(text: str) -> list[str]:
    """Every command of the README's ```bash blocks, in order: a line ending in a backslash or inside an
    open quote continues on the next; trailing comments are dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        pending = ""
        for line in block.splitlines():
            line = line if pending.count("'") % 2 else without_comment(line)
            pending = f"{pending}\n{line}" if pending else line
            if pending.rstrip().endswith("\\") or pending.count("'") % 2:
                continue
            command = re.sub(r"\\\n\s*", " ", pending).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def shell(project: Path, command: str, **kwargs) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "workflow"),  # `python -m dygenept` runs the copy's package
    }
    return subprocess.run(
        ["bash", "-c", command],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        **kwargs,
    )


def kill_mid_run(project: Path) -> None:
    """A run killed with SIGKILL while a job runs: Snakemake's lock stays behind."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with subprocess.Popen(
        ["bash", "-c", f"exec {DEMO} --forcerun report"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as run:
        deadline = time.monotonic() + 600
        for line in run.stdout:
            if line.startswith(("rule ", "localrule ")) or time.monotonic() > deadline:
                break
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory, org_db, go_db) -> tuple[Path, list[str], list[str]]:
    """README's commands, in order, in a fresh copy with the annotation cache where `make setup` leaves
    it on a set-up machine: (the copy, the commands run, the failures with their output). Before the
    unlock command, a run is killed mid-job and the next one found locked; after it, the demo finishes."""
    project = copy_project(tmp_path_factory.mktemp("readme"))
    (project / "resources" / "annotations").symlink_to(ANNOTATION_CACHE.resolve())
    ran, failures = [], []
    for command in readme_commands((ROOT / "README.md").read_text()):
        if command in NOT_RUN:
            continue
        if command == UNLOCK:
            kill_mid_run(project)
            locked = shell(project, DEMO)
            if locked.returncode == 0 or "cannot be locked" not in locked.stdout + locked.stderr:
                failures.append(
                    f"a run after a kill was not refused for the lock:\n{locked.stderr[-1000:]}"
                )
        result = shell(project, command)
        ran.append(command)
        if result.returncode != 0:
            failures.append(f"{command}\n{(result.stdout + result.stderr)[-1500:]}")
    final = shell(project, DEMO)  # the interrupted run redone
    if final.returncode != 0:
        failures.append(f"{DEMO} (after the unlock)\n{final.stderr[-1500:]}")
    return project, ran, failures


def test_every_offline_readme_command_runs_as_written(readme_run):
    project, ran, failures = readme_run
    commands = readme_commands((ROOT / "README.md").read_text())
    unknown = [
        c for c in commands if c not in NOT_RUN and not c.startswith(("snakemake", "python"))
    ]
    assert not unknown, f"README commands neither run here nor listed in NOT_RUN: {unknown}"
    assert not failures, "\n\n".join(failures)
    assert DEMO in ran and UNLOCK in ran and any("--report" in c for c in ran)
    assert (project / "results" / "demo" / "snakemake_report.html").is_file()
    assert not (project / "report.html").exists()


def test_the_demo_paragraph_quotes_what_the_demo_prints(readme_run):
    project = readme_run[0]
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("`make demo` ends by printing") :].split("\n\n")[0]
    reads = paragraph.split("pearson_delta column reads:")[1].split("(")[0]
    quoted = dict(re.findall(r"([a-z_]+)\s+(\d\.\d{3})", reads))
    report = (project / "results" / "demo" / "report" / "metrics_table.txt").read_text()
    table = report.split("\n\n")[0]  # the metrics, without the paired differences printed below
    rows = {
        cells[0]: cells[3].split(" ± ")[0]
        for cells in (
            [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]
        )
    }
    assert len(quoted) >= 6 and {method: rows[method] for method in quoted} == quoted
    assert "benchmarks/RESULTS.md" in paragraph and "3 seeds" in paragraph


def test_the_screen_on_the_demo_is_as_the_readme_says(readme_run):
    project = readme_run[0]
    screen = pd.read_csv(project / "results" / "demo" / "predict" / "screen.tsv", sep="\t")
    ranks = dict(zip(screen["condition"], screen["rank"]))
    singles = ["TP53+ctrl", "GATA1+ctrl", "MYC+ctrl", "KLF1+ctrl"]
    assert all(pd.isna(ranks[c]) for c in singles) and ranks["GATA1+KLF1"] == 1
