"""`snakemake --report`: the self-contained HTML report of a finished demo run carries the metrics table
and the facet heatmap (the report rule's outputs, wrapped in `report()` with captions from report/)."""

from __future__ import annotations

import base64
import re
import shutil
import time

import pytest
import yaml
from test_workflow import copy_project, snakemake

from conftest import ROOT

pytestmark = pytest.mark.slow

# A short training run: the promises tested here do not depend on how well the model fits.
QUICK_TRAIN_STEPS = 10
EMBEDDED_FILE = re.compile(
    r"data:([\w/+.-]+);charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)"
)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory, org_db, go_db):
    """The demo run locally, in a scratch project, with a short training run: (project, out, seconds)."""
    project = copy_project(tmp_path_factory.mktemp("quick_demo"))
    shutil.copytree(ROOT / "report", project / "report")
    overrides = {
        "annotations": {"sqlite": {"org_hs_eg": str(org_db), "go": str(go_db)}},
        "train": {"steps": QUICK_TRAIN_STEPS},
    }
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(overrides))
    started = time.monotonic()
    result = snakemake(project)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return project, project / "results" / "demo", time.monotonic() - started


def embedded_files(html: str) -> dict[str, tuple[str, bytes]]:
    """{file name: (media type, bytes)} of every result the report embeds as a data URI."""
    return {
        name: (media, base64.b64decode(data)) for media, name, data in EMBEDDED_FILE.findall(html)
    }


def test_report_embeds_the_metrics_table_and_the_heatmap(quick_demo):
    project, out, _ = quick_demo
    result = snakemake(project, "--report", "report.html")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    html = (project / "report.html").read_text()
    files = embedded_files(html)
    media, table = files["metrics_table.txt"]
    assert media == "text/plain"
    assert table == (out / "report" / "metrics_table.txt").read_bytes()
    assert re.search(rb"^\| dygenept +\|", table, re.M) and b"| no_change" in table
    media, heatmap = files["facet_heatmap.png"]
    assert media == "image/png" and heatmap == (out / "report" / "facet_heatmap.png").read_bytes()
    # the captions and the workflow description come from report/
    for caption in ("metrics_table.rst", "facet_heatmap.rst", "workflow.rst"):
        first_words = " ".join((ROOT / "report" / caption).read_text().split()[:4])
        assert first_words in html, caption
