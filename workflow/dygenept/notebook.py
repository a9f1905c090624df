"""A finished run from Python: ``dygenept.load_run("results/demo")`` (or the run's config file).

    import dygenept
    run = dygenept.load_run("results/demo")
    adata = run.predict(["TP53", "GATA1+KLF1"])   # AnnData: obs the screen's columns, layers['delta']
    run.explain("TP53")                           # facet weights, mean ± sd over control cells, with text
    run.interaction("GATA1+KLF1")                 # c1, c2, magnitude, corr_fit, dcor, eq_contr, GI types

The run is found through the predict stage's provenance record (the files it read and its params), and
loaded by the same library the stage runs (``evaluation.in_silico``): the object gives the numbers the
stage wrote. Every file is checked against the sha256 the record holds, so a run whose artifacts changed
since is refused rather than mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import pandas as pd
import yaml

from .data.screen_requests import Request, parse_requests
from .errors import InputError
from .evaluation.in_silico import InSilicoScreen, ScreenSettings
from .io.artifacts import provenance_path, read_json, sha256_file

# The predict stage's artifact whose provenance record names the run's files.
SCREEN_ARTIFACT = Path("predict") / "predictions.h5ad"
WORKFLOW_FILE = "Snakefile"
DEFAULT_CONFIG = Path("config") / "config.yaml"


class TrainedRun:
    """A finished run's main model (every seed), data and facets: predict, explain, score pairs."""

    def __init__(self, screen: InSilicoScreen, where: str):
        self.screen, self.where = screen, where

    def __repr__(self) -> str:
        seeds = sorted(seed for _, seed in self.screen.models)
        return (
            f"TrainedRun({self.where!r}, seeds={seeds}, genes={len(self.screen.data.gene_names)})"
        )

    def _admitted(self, entries: Sequence[str], call: str) -> list[Request]:
        """The parsed requests; a gene without facets in this run stops the call, naming gene and fix."""
        requests = parse_requests(list(entries), f"{self.where}: {call}")
        admitted, skipped = self.screen.admit(requests)
        if skipped:
            raise InputError(
                f"{self.where}: {call}: "
                + "; ".join(f"'{entry}': {reason}" for entry, reason in skipped.items())
                + "; then load the run again."
            )
        return admitted

    def predict(self, perturbations: Sequence[str] | str) -> ad.AnnData:
        """One row per perturbation (``A`` or ``A+B``): X the predicted mean expression over the control
        cells, ``layers['delta']`` its change from control, ``obs`` the screen's columns (perturbation,
        genes, unseen genes, effect size, top facets and genes, nearest training perturbations, the
        distance from the training mean's prediction against the noise floor with its rank and ties, and a
        pair's c1, c2, magnitude and GI types), ``var`` the data's genes, ``uns['noise_floor']``. Ranks
        and ties compare the perturbations asked for together, as the screen compares its list."""
        entries = [perturbations] if isinstance(perturbations, str) else list(perturbations)
        requests = self._admitted(entries, "predict")
        return self.screen.anndata(self.screen.screen(requests))

    def explain(self, perturbation: str) -> pd.DataFrame:
        """Every facet of the perturbation's gene(s): weight mean and sd over the control cells (of every
        seed), whether the gene has text for it, and the text; heaviest first."""
        (request,) = self._admitted([perturbation], "explain")
        return self.screen.facet_table(self.screen.predict(request))

    def interaction(self, pair: str) -> pd.Series:
        """The pair's GI scores: its predicted double fit on its singles (measured where the data have
        them, else predicted; ``singles`` says which), with its GI types."""
        (request,) = self._admitted([pair], "interaction")
        if len(request.genes) != 2:
            raise InputError(
                f"{self.where}: interaction: '{pair}' is not a pair. Fix: write it A+B."
            )
        scores = self.screen.interaction(request)
        return pd.Series(scores, name=request.condition)


def project_root(config_path: Path) -> Path:
    """The folder of the workflow that the config belongs to: the first above it with a Snakefile."""
    for folder in config_path.resolve().parents:
        if (folder / WORKFLOW_FILE).is_file():
            return folder
    raise InputError(
        f"{config_path}: no {WORKFLOW_FILE} in any folder above it. Fix: give the run's folder "
        "(its config 'outdir', e.g. results/demo) instead."
    )


def config_outdir(config_path: Path) -> Path:
    """The run folder a config writes to, as the Snakefile reads it: the config's 'outdir', else the
    project's config/config.yaml's (which the Snakefile loads first)."""
    root = project_root(config_path)
    for path in (config_path, root / DEFAULT_CONFIG):
        written = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if written.get("outdir"):
            return root / written["outdir"]
    raise InputError(f"{config_path}: no 'outdir'. Fix: give the run's folder instead.")


def located_inputs(record: dict, run_dir: Path, record_path: Path) -> dict[str, Path]:
    """The recorded inputs' paths, resolved against the folder Snakemake ran in (the first folder above
    the run where they all exist), each checked against its recorded sha256."""
    recorded = {name: Path(entry["path"]) for name, entry in record["inputs"].items()}
    for folder in [run_dir.resolve(), *run_dir.resolve().parents]:
        resolved = {name: folder / path for name, path in recorded.items()}
        if all(path.is_file() for path in resolved.values()):
            break
    else:
        raise InputError(
            f"{record_path}: the files the predict stage read ({sorted(map(str, recorded.values()))[:3]}"
            "...) are not found above the run folder. Fix: load the run where the pipeline ran."
        )
    for name, path in resolved.items():
        if sha256_file(path) != record["inputs"][name]["sha256"]:
            raise InputError(
                f"{path}: changed since the predict stage ran (sha256 differs from {record_path}). "
                "Fix: rerun the pipeline so that the run's artifacts agree, then load it again."
            )
    return resolved


def load_run(path: str | Path) -> TrainedRun:
    """A finished run, from its folder (config 'outdir', e.g. ``results/demo``) or its config file."""
    path = Path(path)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        run_dir = config_outdir(path)
    elif path.is_dir():
        run_dir = path
    else:
        raise InputError(f"{path}: neither a run folder nor a config file. Fix: e.g. results/demo.")
    record_path = provenance_path(run_dir / SCREEN_ARTIFACT)
    if not record_path.is_file():
        raise InputError(
            f"{record_path}: not found: this run has no in-silico screen, which is what holds the "
            "model's and the screen's facets. Fix: list perturbations in config "
            "'predict.perturbations' and run the pipeline."
        )
    record = read_json(record_path)
    inputs = located_inputs(record, run_dir, record_path)
    screen = InSilicoScreen.load(inputs, ScreenSettings.from_params(record["params"]))
    return TrainedRun(screen, str(path))
