"""DAG: how long Snakemake takes to plan the real run at genome scale, and how many jobs it plans.

config/config.yaml (the real run: an LLM facet backend, PubMedBERT, scGPT, three variants × three seeds)
with `shards` jobs per sharded stage and an in-silico screen of `--genes` perturbations (the first genes
of org.Hs.eg.db by Entrez id, as a predict.file: every entry is parsed and checked while the workflow is
read). A dry run: nothing executes, so the figure is the planning alone (parse, schema, DAG).
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dygenept.data.annotation_db import gene_records

from _common import ORG_DB, ROOT, machine, require

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--quick", action="store_true", help="a small run, to check the script works")
parser.add_argument("--genes", type=int, default=20_000)
parser.add_argument("--shards", type=int, default=8)
args = parser.parse_args()
require(ORG_DB)
count = 200 if args.quick else args.genes

records = gene_records(ORG_DB)
symbols = sorted({record.symbol for record in records.values() if record.symbol.isalnum()})[:count]
with tempfile.TemporaryDirectory() as tmp:
    screen = Path(tmp) / "screen.txt"
    screen.write_text("\n".join(symbols) + "\n")
    override = Path(tmp) / "scale.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "outdir": str(Path(tmp) / "results"),
                "shards": args.shards,
                "predict": {"file": str(screen)},
                "annotations": {
                    "sqlite": {"org_hs_eg": str(ORG_DB), "go": str(ORG_DB.parent / "GO.sqlite")}
                },
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        "config/config.yaml",
        str(override),
    ]
    command += ["--dry-run", "--cores", "16"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
if result.returncode != 0:
    sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
output = result.stdout + result.stderr
total = int(re.search(r"^total\s+(\d+)", output, re.M).group(1))
per_rule = dict(re.findall(r"^(\w+)\s+(\d+)$", output.split("Job stats:")[1], re.M))
print(
    f"dag: {seconds:.1f} s to plan {total} jobs  [config.yaml, {args.shards} shards, a screen of "
    f"{len(symbols):,} genes; dry run]  per rule: "
    + ", ".join(f"{rule} {n}" for rule, n in per_rule.items() if rule != "total")
)
print(f"  machine: {machine()}")
