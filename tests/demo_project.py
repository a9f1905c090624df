"""Real Snakemake runs of the project in a scratch copy: the copy, the command, and the planned jobs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PROJECT_FILES = [
    "Snakefile",
    "rules",
    "workflow/dygenept",
    "config",
    "profiles",
    "envs",
    "resources/facets.yaml",
    "resources/prompts",
    "resources/previous_symbols.tsv",
    "resources/demo",
    "report",
]

# The facet stage and every rule downstream of it (the demo runs an in-silico screen too).
DOWNSTREAM_OF_FACETS = {"facets", "facet_embed", "train", "evaluate", "predict", "report", "all"}


def copy_project(destination: Path) -> Path:
    for name in PROJECT_FILES:
        source, target = ROOT / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return destination


def snakemake(
    project: Path,
    *args: str,
    config_files: tuple[str, ...] = ("config/demo.yaml", "config/test.yaml"),
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        *config_files,
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


def planned_jobs(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run (empty when there is nothing to do)."""
    match = re.search(
        r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", result.stdout + result.stderr, re.S
    )
    return (
        set()
        if match is None
        else {line.split()[0] for line in match.group(1).splitlines() if line.strip()}
    )


def planned_outputs(result: subprocess.CompletedProcess) -> list[str]:
    """Every output path a dry run lists, without the flags it prints after a name ("(update)")."""
    lines = re.findall(r"^    output: (.*)$", result.stdout, re.M)
    return [re.sub(r" \([a-z_]+\)$", "", name) for line in lines for name in line.split(", ")]


def append_line(path: Path, line: str) -> str:
    original = path.read_text()
    path.write_text(original + line)
    return original
