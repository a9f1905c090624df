"""report: seconds to write the report (tables, HTML, six figures) from the demo's evaluation."""

import tempfile
from pathlib import Path

from dygenept.stages.report import FIGURES, run

from _common import DEMO_OUT, ROOT, parse_args, report, require, timed

args = parse_args(__doc__)
evaluated = DEMO_OUT / "evaluate"
require(evaluated / "metrics.json", evaluated / "interactions.csv", DEMO_OUT / "predict/screen.tsv")
with tempfile.TemporaryDirectory() as tmp:
    outputs = {key: Path(tmp) / name for key, name in FIGURES.items()}
    outputs |= {name: Path(tmp) / f"{name}.out" for name in ("markdown", "html", "table")}
    inputs = {
        "metrics": evaluated / "metrics.json",
        "facet_weights": evaluated / "facet_weights.csv",
        "cell_facets": evaluated / "cell_facets.csv",
        "de_changes": evaluated / "de_changes.csv",
        "interactions": evaluated / "interactions.csv",
        "interactions_summary": evaluated / "interactions.json",
        "screen": DEMO_OUT / "predict/screen.tsv",
        "facets_yaml": ROOT / "resources/facets.yaml",
        # each figure's caption: report/<figure>.rst, as the rule gives them
        **{
            f"caption_{key}": ROOT / "report" / Path(name).with_suffix(".rst")
            for key, name in FIGURES.items()
        },
    }
    _, seconds = timed(run, inputs, outputs, {}, repeat=1 if args.quick else 3)
report(
    "report",
    1 / seconds,
    "reports/s",
    "demo evaluation: 9 methods, tables, HTML, 6 PNG figures",
    f"{seconds:.2f} s per report",
)
