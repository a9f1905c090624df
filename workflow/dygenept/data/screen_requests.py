"""Requested perturbations of an in-silico screen: ``A`` or ``A+B``, parsed and checked before any work.

Standard library only: the Snakefile reads the requests while it parses, so that a bad entry stops the
run before any job and the requested genes join the gene universe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .conditions import CONTROL

MAX_GENES = 2
FIX = "Fix: write each perturbation as one gene (A) or a pair (A+B), once."


@dataclass(frozen=True)
class Request:
    entry: str  # as the user wrote it
    genes: tuple[str, ...]

    @property
    def condition(self) -> str:
        """GEARS style, as the data's conditions are named: ``A+ctrl`` or ``A+B``."""
        return "+".join(self.genes) if len(self.genes) > 1 else f"{self.genes[0]}+{CONTROL}"


def entry_problem(genes: list[str]) -> str | None:
    if not genes:
        return "names no gene"
    if len(genes) > MAX_GENES:
        return f"names {len(genes)} genes; the model takes at most {MAX_GENES}"
    if len({gene.upper() for gene in genes}) < len(genes):
        return "pairs a gene with itself"
    return None


def parse_requests(entries: Sequence[str], where: str) -> list[Request]:
    """Each entry as a ``Request``; every problem (empty, >2 genes, A+A, duplicates) named in one error."""
    if not entries:
        raise InputError(
            f"{where}: no perturbation to predict. Fix: list them in config 'predict.perturbations' "
            "or in the file 'predict.file' (one per line, A or A+B)."
        )
    requests, problems, first = [], [], {}
    for position, entry in enumerate(entries, start=1):
        genes = [
            part.strip() for part in str(entry).split("+") if part.strip() not in ("", CONTROL)
        ]
        problem = entry_problem(genes)
        key = tuple(sorted(gene.upper() for gene in genes))
        if problem is None and key in first:
            problem = f"repeats entry {first[key]}"
        if problem:
            problems.append(f"entry {position} '{entry}' {problem}")
            continue
        first[key] = f"{position} '{entry}'"
        requests.append(Request(str(entry), tuple(genes)))
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems) + f". {FIX}")
    return requests


def read_request_file(path: str | Path) -> list[str]:
    """One perturbation per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(
            f"{path}: cannot read the perturbation list ({error.strerror}). Fix: config 'predict.file'."
        ) from error
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def requested_genes(requests: Sequence[Request]) -> list[str]:
    return sorted({gene for request in requests for gene in request.genes})
