"""Shared helpers for the per-stage benchmarks: timing, the machine line, inputs, the printed figure."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from dygenept.config_defaults import dataset_stage_params as dataset_params  # noqa: E402

ANNOTATIONS = ROOT / "resources" / "annotations"
ORG_DB = ANNOTATIONS / "org.Hs.eg.sqlite"
GO_DB = ANNOTATIONS / "GO.sqlite"
DEMO_H5AD = ROOT / "resources" / "demo" / "perturbench_devel_norman19_mcfaline23.h5ad"
DEMO_OUT = ROOT / "results" / "demo"


DEMO_DATASET_PARAMS = dataset_params(
    perturbation_column="perturbation",
    control_values=["control"],
    filter={"dataset": "norman19"},
    expression="log_normalized",
)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a small run, to check the script works"
    )
    return parser.parse_args()


def require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(
            f"missing {missing}: run `make demo` first (it fetches the databases and writes results/demo/)"
        )


def machine() -> str:
    import torch

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.processor(),
        )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}"


def timed(function, *args, repeat: int = 1, **kwargs):
    """(result of the last call, best wall time in seconds over ``repeat`` calls)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def report(stage: str, figure: float, unit: str, size: str, extra: str = "") -> None:
    """One comparable line per benchmark: stage, figure, unit, workload, machine, date."""
    print(f"{stage}: {figure:,.1f} {unit}  [{size}]{'  ' + extra if extra else ''}")
    print(f"  machine: {machine()}; date: {dt.date.today().isoformat()}")
