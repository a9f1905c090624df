"""report: seconds to write the report (tables, HTML, heatmap) from the demo's evaluation."""

import tempfile
from pathlib import Path

from dygenept.stages.report import run

from _common import DEMO_OUT, ROOT, parse_args, report, require, timed

args = parse_args(__doc__)
require(DEMO_OUT / "evaluate" / "metrics.json")
with tempfile.TemporaryDirectory() as tmp:
    outputs = {
        name: Path(tmp) / name for name in ("report.md", "report.html", "heatmap.png", "table.txt")
    }
    inputs = {
        "metrics": DEMO_OUT / "evaluate/metrics.json",
        "facet_weights": DEMO_OUT / "evaluate/facet_weights.csv",
        "facets_yaml": ROOT / "resources/facets.yaml",
    }
    _, seconds = timed(
        run,
        inputs,
        dict(zip(("markdown", "html", "heatmap", "table"), outputs.values())),
        {},
        repeat=3,
    )
report(
    "report",
    1 / seconds,
    "reports/s",
    "demo evaluation: 5 methods, facet heatmap PNG",
    f"{seconds:.2f} s per report",
)
