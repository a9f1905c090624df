"""Shared fixtures: the real annotation databases, the real demo data, and the repository layout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from dygenept.config_defaults import dataset_stage_params as dataset_params  # noqa: E402
from dygenept.config_defaults import merged, section_defaults  # noqa: E402
from dygenept.registry import ANNOTATION_DATABASES  # noqa: E402
from dygenept.stages import fetch_annotations  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_H5AD = ROOT / "resources" / "demo" / "perturbench_devel_norman19_mcfaline23.h5ad"
DEMO_REFSEQ = ROOT / "resources" / "demo" / "refseq_summaries_norman19.tsv.gz"
# Demo genes without a RefSeq summary: IER5L has no GO annotation either; the others have GO only.
DEMO_THIN = ("IER5L", "CNN1", "SLC38A2", "ZBTB10")
ANNOTATION_CACHE = Path(
    os.environ.get("DYGENEPT_ANNOTATION_CACHE", ROOT / "resources" / "annotations")
)


def section_params(section: str, **overrides) -> dict:
    """A stage's params as the rule builds them: the schema's defaults of its config section, then overrides."""
    return merged(section_defaults(section), overrides)


DEMO_DATASET_PARAMS = dataset_params(
    perturbation_column="perturbation",
    control_values=["control"],
    filter={"dataset": "norman19"},
    expression="log_normalized",
)


def _annotation_db(key: str) -> Path:
    """The same cached SQLite file the pipeline uses; fetched once (apt-get download) if absent.

    Fetching needs Debian's package servers: offline, every test that needs the databases is skipped,
    saying why, rather than failed.
    """
    package = ANNOTATION_DATABASES[key]
    path = ANNOTATION_CACHE / package.sqlite_name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        version = section_defaults("annotations")["apt_versions"][key]
        try:
            fetch_annotations.fetch_package(package, path, apt_version=version, tarball_url=None)
        except fetch_annotations.AnnotationFetchError as error:
            pytest.skip(
                f"needs {package.sqlite_name} (apt-get download {package.debian_name}): {error}"
            )
    return path


@pytest.fixture(scope="session")
def org_db() -> Path:
    return _annotation_db("org_hs_eg")


@pytest.fixture(scope="session")
def go_db() -> Path:
    return _annotation_db("go")


@pytest.fixture(scope="session")
def demo_gene_text(tmp_path_factory, org_db, go_db) -> Path:
    """The knowledge stage's text (sources: refseq_tsv, go) for the demo genes, from the shipped table."""
    import pandas as pd

    from dygenept.data import annotation_db
    from dygenept.stages import knowledge

    tmp = tmp_path_factory.mktemp("demo_gene_text")
    shipped = pd.read_csv(DEMO_REFSEQ, sep="\t", dtype=str)
    by_symbol = {r.symbol: r for r in annotation_db.gene_records(org_db).values()}
    rows = [by_symbol[s] for s in [*shipped["symbol"], *DEMO_THIN]]
    genes = pd.DataFrame(
        [
            {"query": r.symbol, "symbol": r.symbol, "entrez_id": r.entrez_id, "name": r.name}
            for r in rows
        ]
    ).assign(match="symbol")
    genes.to_csv(tmp / "genes.tsv", sep="\t", index=False)
    knowledge.run(
        {"genes": tmp / "genes.tsv", "org_db": org_db, "go_db": go_db, "refseq_tsv": DEMO_REFSEQ},
        {"gene_text": tmp / "gene_text.parquet"},
        {
            **section_defaults("knowledge"),
            "sources": ["refseq_tsv", "go"],
            "excluded_evidence": ["ND"],
        },
    )
    return tmp / "gene_text.parquet"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DYGENEPT_NETWORK_TESTS") != "1":
        skip = pytest.mark.skip(reason="needs the real internet; set DYGENEPT_NETWORK_TESTS=1")
        for item in items:
            if "network" in item.keywords:
                item.add_marker(skip)
    if not os.environ.get("DYGENEPT_FULL_DATA"):
        skip = pytest.mark.skip(
            reason="needs GEARS' full data; set DYGENEPT_FULL_DATA=<dir with norman/, adamson/>"
        )
        for item in items:
            if "full_data" in item.keywords:
                item.add_marker(skip)
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, org_db, go_db):
    """The demo, run once for the session in a scratch copy of the project: (project, results/demo).

    Tests may dry-run, report on or edit the copy, restoring what they edit; nothing may rerun it.
    """
    from demo_project import copy_project, snakemake

    project = copy_project(tmp_path_factory.mktemp("project"))
    overrides = {"annotations": {"sqlite": {"org_hs_eg": str(org_db), "go": str(go_db)}}}
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(overrides))
    result = snakemake(project)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return project, project / "results" / "demo"
