"""``dygenept STAGE --in NAME=PATH ... --out NAME=PATH ... --params JSON``: run one stage by hand or from Snakemake.

Every stage module exposes ``run(inputs, outputs, params) -> details``; this wrapper only unpacks
arguments, sets up logging, and writes the provenance record beside each output.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

from .artifacts import build_provenance, write_provenance
from .errors import InputError

STAGES = {
    "annotations": "Fetch the org.Hs.eg.db and GO.db SQLite databases.",
    "fetch_dataset": "Download a published Perturb-seq file once, checksum-verified.",
    "dataset": "Validate a Perturb-seq h5ad; write it canonical, with split and DE genes.",
    "genes": "Map the perturbed genes to Entrez ids.",
    "knowledge": "Gene function text, sentence by sentence.",
    "fetch_string": "STRING's official human files → an Entrez edge table.",
    "enrich": "Neighbour paragraphs for genes with thin text.",
    "facets": "K facet paragraphs per gene, or NONE.",
    "facet_embed": "Facet texts → (genes, K, D) tensor + mask.",
    "cells": "Control-cell state embeddings.",
    "train": "Train the DyGenePT adapters.",
    "evaluate": "Metrics on held-out perturbations, with baselines.",
    "report": "Markdown/HTML report with the facet heatmap.",
}


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Path]:
    result = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{flag} expects NAME=PATH, got '{pair}'")
        result[name] = Path(path)
    return result


def parse_params(text: str) -> dict:
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--params is not valid JSON ({error})") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dygenept", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage, help_text in STAGES.items():
        stage_parser = sub.add_parser(stage, help=help_text, description=help_text)
        stage_parser.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME=PATH")
        stage_parser.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME=PATH")
        stage_parser.add_argument("--params", default="{}", help="JSON object, or @file.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    inputs = parse_pairs(args.inputs, "--in")
    outputs = parse_pairs(args.outputs, "--out")
    params = parse_params(args.params)
    module = importlib.import_module(f"dygenept.{args.stage}")
    started = time.perf_counter()
    try:
        details = module.run(inputs, outputs, params) or {}
    except InputError as error:
        print(f"dygenept {args.stage}: error: {error}", file=sys.stderr)
        return 2
    details["seconds"] = round(time.perf_counter() - started, 3)
    record = build_provenance(args.stage, inputs, params, details)
    for path in outputs.values():
        write_provenance(path, record)
    logging.getLogger("dygenept").info("%s done in %.1f s", args.stage, details["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
