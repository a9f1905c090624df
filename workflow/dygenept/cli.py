"""``dygenept STAGE --in NAME=PATH ... --out NAME=PATH ... --params JSON``: run one stage by hand or from Snakemake.

Every stage module (``dygenept.stages.<STAGE>``) exposes ``run(inputs, outputs, params) -> details``;
this wrapper only unpacks arguments, sets up logging, and writes the provenance record beside each
output, with the sha256 of every source file the stage runs (its import closure).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from .errors import UserError, write_problem
from .import_graph import PACKAGE_DIR, code_files, stage_module, stage_names, stage_summary
from .io.artifacts import (
    build_provenance,
    canonical_json,
    sha256_file,
    sha256_text,
    write_provenance,
)


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
    for stage in stage_names():
        help_text = stage_summary(stage)
        stage_parser = sub.add_parser(stage, help=help_text, description=help_text)
        stage_parser.add_argument(
            "--in", dest="inputs", action="append", default=[], metavar="NAME=PATH"
        )
        stage_parser.add_argument(
            "--out", dest="outputs", action="append", default=[], metavar="NAME=PATH"
        )
        stage_parser.add_argument("--params", default="{}", help="JSON object, or @file.json")
    return parser


def stage_code_digests(stage: str) -> dict[str, str]:
    """sha256 of each source file of the stage's import closure, keyed by its path inside the package."""
    return {
        str(path.relative_to(PACKAGE_DIR.parent)): sha256_file(path)
        for path in code_files(stage_module(stage))
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    inputs = parse_pairs(args.inputs, "--in")
    outputs = parse_pairs(args.outputs, "--out")
    code = stage_code_digests(args.stage)
    # the caches of the stages key their values by the code that computed them
    given = parse_params(args.params)
    params = {**given, "code_sha256": sha256_text(canonical_json(code))}
    module = importlib.import_module(stage_module(args.stage))
    started = time.perf_counter()
    try:
        details = module.run(inputs, outputs, params) or {}
        details["seconds"] = round(time.perf_counter() - started, 3)
        details["code"] = code
        record = build_provenance(args.stage, inputs, given, details)
        for path in outputs.values():
            write_provenance(path, record)
    except UserError as error:
        print(f"dygenept {args.stage}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a blocked or unwritable folder: which, and the fix
        where = os.path.commonpath([str(path) for path in outputs.values()]) if outputs else "."
        problem = write_problem(error, where)
        if problem is None:
            raise
        print(f"dygenept {args.stage}: error: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("dygenept").info("%s done in %.1f s", args.stage, details["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
