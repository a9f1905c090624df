"""GEARS-style perturbation names: ``ctrl``, ``A+ctrl`` for a single gene, ``A+B`` for a double; with a
held-out-context split, one perturbation in one context (cell line, donor, ...) is ``A+ctrl|K562``."""

from __future__ import annotations

import re
from collections.abc import Sequence

CONTROL = "ctrl"
# The canonical data's obs columns.
CONDITION_KEY = "condition"
CONTROL_KEY = "control"
CONTEXT_KEY = "context"  # only in data split by held-out context
CONTEXT_SEPARATOR = "|"

# How published screens label their control cells, lower-cased without punctuation or a guide number:
# ctrl (GEARS, Adamson 2016), control (scPerturb), non-targeting (Replogle 2022, Schraivogel 2020),
# safe-targeting (Replogle 2022), NT (Papalexi 2021, Frangieh 2021), NTC (Datlinger 2017), INTERGENIC
# (Dixit 2016), negative control / scrambled guides. A label like these that config does not name as a
# control would be read as a gene.
CONTROL_LIKE = frozenset(
    {
        "ctrl",
        "control",
        "nontargeting",
        "nontarget",
        "safetargeting",
        "nt",
        "ntc",
        "intergenic",
        "negativecontrol",
        "negctrl",
        "scrambled",
        "scramble",
    }
)
_GUIDE_NUMBER = re.compile(r"[\W_]*\d+$")
_PUNCTUATION = re.compile(r"[\W_]+")


def looks_like_control(name: str) -> bool:
    """Whether a label (one gene's part of it) is a control label in one of the usual spellings:
    "non-targeting", "NT", "NTC_3", "CTRL00320", "Safe_Targeting" — never a gene symbol such as NT5C2."""
    bare = _PUNCTUATION.sub("", _GUIDE_NUMBER.sub("", name.strip().lower()))
    return bare in CONTROL_LIKE


def canonical_condition(raw: str, control_values: Sequence[str], separator: str) -> str:
    """Map a raw perturbation label to GEARS style: ``ctrl``, ``A+ctrl`` or ``A+B`` (the data's gene order)."""
    if raw in control_values:
        return CONTROL
    genes = [
        part.strip()
        for part in str(raw).split(separator)
        if part.strip() and part.strip() not in control_values
    ]
    if not genes:
        return CONTROL
    if len(genes) == 1:
        return f"{genes[0]}+{CONTROL}"
    return "+".join(genes)


def context_label(condition: str, context: str) -> str:
    """One perturbation in one context: ``A+ctrl|K562``."""
    return f"{condition}{CONTEXT_SEPARATOR}{context}"


def parse_context_label(label: str) -> tuple[str, str]:
    """``A+ctrl|K562`` → (``A+ctrl``, ``K562``); a label without a context gives an empty context."""
    condition, _, context = label.rpartition(CONTEXT_SEPARATOR)
    return (condition, context) if condition else (label, "")


def condition_genes(condition: str) -> list[str]:
    perturbation = parse_context_label(condition)[0]
    return [gene for gene in perturbation.split("+") if gene != CONTROL]


def is_single(condition: str) -> bool:
    return len(condition_genes(condition)) == 1


def is_combo(condition: str) -> bool:
    return len(condition_genes(condition)) >= 2


def unify_gene_order(conditions: Sequence[str]) -> dict[str, str]:
    """Map each condition to the first-seen spelling of its gene set, so that B+A joins A+B."""
    first: dict[tuple[str, ...], str] = {}
    for condition in conditions:
        first.setdefault(tuple(sorted(condition_genes(condition))), condition)
    return {condition: first[tuple(sorted(condition_genes(condition)))] for condition in conditions}
