"""`make bench-gpu` (benchmarks/bench_gpu.py) at its tiny size on the CPU: every part runs through the
project's code and prints its figures; without a GPU the real-size run stops at once, saying why."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT / "benchmarks",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_every_part_runs_at_the_tiny_size_and_prints_its_figures():
    result = bench("--tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for part, unit in [
        ("facet_embed", "texts/s"),
        ("cells", "cells/s"),
        ("train", "steps/s"),
        ("evaluate", "predicted cells/s"),
    ]:
        line = re.search(rf"^{part}: ([\d,.]+) {re.escape(unit)}.*$", out, re.M)
        assert line and float(line.group(1).replace(",", "")) > 0, (part, out)
        assert "CPU slice" in line.group(0) and "peak GPU memory" in line.group(0)
    assert "tokens/s" in out and "summary" in out


def test_the_real_size_without_a_gpu_stops_at_once_saying_why():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = bench()
    assert result.returncode == 2
    assert "sees no CUDA device" in result.stderr and "--tiny" in result.stderr
