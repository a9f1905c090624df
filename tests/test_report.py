"""`snakemake --report`: the self-contained HTML report of a finished demo run carries the metrics table
and the facet heatmap (the report rule's outputs, wrapped in `report()` with captions from report/)."""

from __future__ import annotations

import base64
import re

import pytest
from demo_project import snakemake

from conftest import ROOT

pytestmark = pytest.mark.slow

EMBEDDED_FILE = re.compile(
    r"data:([\w/+.-]+);charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)"
)


def embedded_files(html: str) -> dict[str, tuple[str, bytes]]:
    """{file name: (media type, bytes)} of every result the report embeds as a data URI."""
    return {
        name: (media, base64.b64decode(data)) for media, name, data in EMBEDDED_FILE.findall(html)
    }


def test_report_embeds_the_metrics_table_and_the_heatmap(demo_run):
    project, out = demo_run
    result = snakemake(project, "--report", "results/demo/snakemake_report.html")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    html = (out / "snakemake_report.html").read_text()
    files = embedded_files(html)
    media, table = files["metrics_table.txt"]
    assert media == "text/plain"
    assert table == (out / "report" / "metrics_table.txt").read_bytes()
    assert re.search(rb"^\| dygenept +\|", table, re.M) and b"| no_change" in table
    media, heatmap = files["facet_heatmap.png"]
    assert media == "image/png" and heatmap == (out / "report" / "facet_heatmap.png").read_bytes()
    # the captions and the workflow description come from report/
    # the in-silico screen's page (config 'predict') is in the report too
    media, page = files["screen.md"]
    assert page == (out / "predict" / "screen.md").read_bytes() and b"TP53+ctrl" in page
    captions = (
        "metrics_table.rst",
        "facet_heatmap.rst",
        "cell_facets.rst",
        "screen.rst",
        "workflow.rst",
    )
    for caption in captions:
        first_words = " ".join((ROOT / "report" / caption).read_text().split()[:4])
        assert first_words in html, caption
