"""evaluate: the demo's Norman subset, GEARS split, 3 seeds of every variant, scored beside the baselines and
the noise ceiling (the benchmark of RESULTS.md). Runs the pipeline into results/bench_demo_3seeds/."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, parse_args, report

args = parse_args(__doc__)
out = ROOT / "results" / ("bench_demo_quick" if args.quick else "bench_demo_3seeds")
seeds = [0] if args.quick else [0, 1, 2]
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as override:
    override.write(f"outdir: {out}\ntrain:\n  seeds: {seeds}\n")
    override.write("  steps: 40\n" if args.quick else "")
started = time.perf_counter()
subprocess.run(
    [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        "config/demo.yaml",
        override.name,
        "--cores",
        "2",
        "--quiet",
    ],
    cwd=ROOT,
    check=True,
)
seconds = time.perf_counter() - started
Path(override.name).unlink()
print((out / "report" / "metrics_table.txt").read_text())
metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
fractions = metrics["fraction_of_ceiling"].get("dygenept", {}).get("all", {})
print("dygenept as a fraction of the noise ceiling:", json.dumps(fractions))
report(
    "evaluate (benchmark)",
    seconds,
    "s wall for the pipeline",
    f"demo Norman subset, GEARS simulation split, {len(seeds)} seed(s) × 3 variants",
)
