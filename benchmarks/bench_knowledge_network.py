"""knowledge (network sources): genes per second for mygene, entrez and uniprot against the loopback APIs of
tests/fake_apis.py (50 ms latency per request), at real batch sizes and rate limits, so that the rate limit
is the only intended bound; then the same genes again from the per-gene cache."""

import sys
import tempfile
from pathlib import Path

import pandas as pd

from _common import ROOT, parse_args, report, timed

sys.path.insert(0, str(ROOT / "tests"))
from dygenept.config_defaults import merged, section_defaults  # noqa: E402
from dygenept.stages.knowledge import run  # noqa: E402

from fake_apis import FakeApis, load_records  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
LATENCY = 0.05
# The config defaults, except entrez at NCBI's with-key limit (10/s).
SOURCES = {
    "mygene": {"batch_size": 1000, "requests_per_second": 1},
    "entrez": {"batch_size": 100, "requests_per_second": 10, "email": "bench@example.org"},
    "uniprot": {"batch_size": 100, "page_size": 500, "requests_per_second": 5},
}

args = parse_args(__doc__)
if not SHARED.is_dir():
    sys.exit(f"missing {SHARED}: the benchmark serves the RefSeq summaries from ../shared/data")
n = 200 if args.quick else 2_000
records = load_records(SHARED, n)
with tempfile.TemporaryDirectory() as tmp, FakeApis(records, latency=LATENCY) as server:
    genes_path = Path(tmp) / "genes.tsv"
    pd.DataFrame(
        [
            {
                "query": r.symbol,
                "symbol": r.symbol,
                "entrez_id": r.entrez_id,
                "name": r.name,
                "match": "symbol",
            }
            for r in records.values()
        ]
    ).to_csv(genes_path, sep="\t", index=False)
    urls = {"mygene": server.mygene_url, "entrez": server.entrez_url, "uniprot": server.uniprot_url}
    for name, settings in SOURCES.items():
        overrides = {
            "sources": [name],
            "cache_dir": str(Path(tmp) / f"cache_{name}"),
            name: {**settings, "url": urls[name]},
        }
        params = merged(section_defaults("knowledge"), overrides)
        outputs = {"gene_text": Path(tmp) / f"{name}.parquet", "report": Path(tmp) / f"{name}.json"}
        before = len(server.requests(name))
        details, seconds = timed(run, {"genes": genes_path}, outputs, params)
        asked = server.requests(name)[before:]
        span = asked[-1].time - asked[0].time if len(asked) > 1 else 0.0
        _, cached_seconds = timed(run, {"genes": genes_path}, outputs, params)
        report(
            f"knowledge[{name}]",
            n / seconds,
            "genes/s",
            f"{n:,} genes, {len(asked)} requests, batch {settings['batch_size']}, limit {settings['requests_per_second']}/s, "
            f"{LATENCY * 1000:.0f} ms latency; {details['coverage'][name]:,} genes with text",
            f"server saw {(len(asked) - 1) / span if span else 0:.2f} req/s; from cache: {n / cached_seconds:,.0f} genes/s",
        )
