"""Train/validation/test splits of perturbations, re-implemented from GEARS (cell-gears 0.1, ``DataSplitter``).

``simulation``: a share of all perturbed genes is "seen"; test = unseen singles + doubles labelled
combo_seen0/1/2 by their seen genes (+ the combo_seen2 not drawn for training), then the same on the
training part (0.9, 0.9) for validation. ``single``: a tenth of the singles' genes are held out with their
singles (test) and their doubles (dropped). ``combo`` (``seen`` 0/1/2): doubles whose genes are held out.
``file``: the user's own JSON. The draws use numpy's legacy ``RandomState(seed)`` in GEARS' order, so the
same seed and data give GEARS' split.

``cross_validation_folds``: k-fold (or leave-one-out) over every perturbation, once per split seed, each
fold keeping the constraint its split kind stands for (a test single's gene is unseen in training).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from ..settings import read_fields
from .conditions import (
    CONTROL,
    condition_genes,
    context_label,
    is_combo,
    is_single,
    parse_context_label,
)

SUBGROUPS = ("combo_seen0", "combo_seen1", "combo_seen2", "unseen_single")
KINDS = ("simulation", "single", "combo", "file", "context")


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    test_subgroups: dict[str, list[str]]
    val_subgroups: dict[str, list[str]]
    kind: str = "simulation"
    # Perturbations GEARS drops from every set (doubles that would leak a held-out gene).
    held_out: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def subgroups_by_seen(conditions: Sequence[str], seen_genes: set[str]) -> dict[str, list[str]]:
    """Label conditions by how many of their genes training has seen (GEARS' subgroup names)."""
    groups: dict[str, list[str]] = {name: [] for name in SUBGROUPS}
    for condition in conditions:
        genes = condition_genes(condition)
        n_seen = sum(gene in seen_genes for gene in genes)
        if len(genes) == 1:
            groups.setdefault("seen_single" if n_seen else "unseen_single", []).append(condition)
        else:
            groups.setdefault(f"combo_seen{n_seen}", []).append(condition)
    return groups


def label_subgroups(
    conditions: Sequence[str], seen_genes: set[str], seen2_in_train: set[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Training conditions and test subgroups, given the seen genes and the combo_seen2 drawn for training."""
    groups = subgroups_by_seen(conditions, seen_genes)
    train = groups.pop("seen_single", []) + [c for c in conditions if c in seen2_in_train]
    groups["combo_seen2"] = [c for c in groups["combo_seen2"] if c not in seen2_in_train]
    return train, groups


def _sorted_groups(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(conditions) for name, conditions in groups.items()}


# ---- simulation ------------------------------------------------------------------------------


def _draw(population: int, fraction: float, seed: int) -> np.ndarray:
    """Indices GEARS' ``np.random.seed(seed); np.random.choice(items, int(n * fraction), replace=False)`` picks."""
    return np.random.RandomState(seed).choice(population, int(population * fraction), replace=False)


def _holdout(
    conditions: Sequence[str], train_gene_set_size: float, combo_seen2_train_frac: float, seed: int
):
    """One GEARS "simulation" hold-out (``DataSplitter.get_simulation_split``), draws on sorted names."""
    genes = np.unique([g for c in conditions for g in condition_genes(c)])
    seen = set(genes[_draw(len(genes), train_gene_set_size, seed)])
    seen2 = sorted(
        c for c in conditions if is_combo(c) and all(g in seen for g in condition_genes(c))
    )
    seen2_train = {seen2[i] for i in _draw(len(seen2), combo_seen2_train_frac, seed)}
    train, subgroups = label_subgroups(conditions, seen, seen2_train)
    test = [c for group in SUBGROUPS for c in subgroups[group]]
    return train, test, subgroups


def simulation_split(
    conditions: Sequence[str], seed: int, train_gene_set_size: float, combo_seen2_train_frac: float
) -> Split:
    """GEARS "simulation" split: test hold-out, then a validation hold-out (0.9, 0.9) from training."""
    conditions = sorted(set(conditions) - {CONTROL})
    train, test, test_subgroups = _holdout(
        conditions, train_gene_set_size, combo_seen2_train_frac, seed
    )
    train, val, val_subgroups = _holdout(train, 0.9, 0.9, seed)
    return Split(
        sorted(train),
        sorted(val),
        sorted(test),
        _sorted_groups(test_subgroups),
        _sorted_groups(val_subgroups),
    )


# ---- single and combo ------------------------------------------------------------------------


def _with_genes(conditions: Sequence[str], genes: set[str], keep) -> list[str]:
    return [c for c in conditions if keep(c) and any(g in genes for g in condition_genes(c))]


def _split_list(
    conditions: list[str], rng: np.random.RandomState, test_size: float, kind: str, seen: int
):
    """GEARS ``DataSplitter.get_split_list``: (train, test, dropped), drawing from ``rng`` in GEARS' order.

    GEARS draws the held-out genes *with* replacement from the sorted genes, as many as a share of the
    singles, and does so before branching, so the combo_seen2 draw comes second.
    """
    singles = [c for c in conditions if is_single(c)]
    combos = [c for c in conditions if is_combo(c)]
    genes = np.unique([g for c in conditions for g in condition_genes(c)])
    test_genes = (
        set(rng.choice(genes, int(len(singles) * test_size)).tolist()) if len(genes) else set()
    )
    dropped: list[str] = []
    if kind == "single":
        test = _with_genes(conditions, test_genes, is_single)
        dropped = _with_genes(conditions, test_genes, is_combo)
    elif seen in (0, 1):
        held_combos = _with_genes(conditions, test_genes, is_combo)
        dropped = [
            c for c in held_combos if sum(g not in test_genes for g in condition_genes(c)) > seen
        ]
        test = _with_genes(conditions, test_genes, is_single) + [
            c for c in held_combos if c not in dropped
        ]
    else:
        test = (
            list(
                dict.fromkeys(
                    rng.choice(
                        np.array(combos, dtype=object), int(len(combos) * test_size)
                    ).tolist()
                )
            )
            if combos
            else []
        )
    excluded = set(test) | set(dropped)
    return [c for c in conditions if c not in excluded], test, dropped


def gears_list_split(
    conditions: Sequence[str],
    kind: str,
    seed: int,
    test_size: float,
    val_size: float,
    seen: int = 0,
) -> Split:
    """GEARS' "single" and "combo_seen{0,1,2}" splits. ``conditions`` in the data's order, as GEARS reads them."""
    conditions = [c for c in dict.fromkeys(conditions) if c != CONTROL]
    rng = np.random.RandomState(seed)
    train, test, dropped_test = _split_list(conditions, rng, test_size, kind, seen)
    train, val, dropped_val = _split_list(train, rng, val_size, kind, seen)
    seen_genes = {g for c in train for g in condition_genes(c)}
    return Split(
        sorted(train),
        sorted(val),
        sorted(test),
        _sorted_groups(subgroups_by_seen(test, seen_genes)),
        _sorted_groups(subgroups_by_seen(val, seen_genes)),
        kind=kind,
        held_out=sorted(dropped_test + dropped_val),
    )


# ---- the user's own ----------------------------------------------------------------------------


def split_from_file(path: str | Path, conditions: Sequence[str]) -> Split:
    """A split JSON ``{"train": [...], "val": [...], "test": [...]}`` checked against the data's conditions."""
    try:
        given = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(
            f"{path}: cannot read the split JSON ({error}). Fix: config 'dataset.split.path'."
        ) from error
    if not isinstance(given, dict) or not all(
        isinstance(given.get(key), list) for key in ("train", "test")
    ):
        raise InputError(
            f'{path}: a split needs lists "train" and "test" (and optionally "val"). Fix: write them.'
        )
    known = set(conditions) - {CONTROL}
    parts = {
        key: [str(c) for c in given.get(key, []) if str(c) != CONTROL]
        for key in ("train", "val", "test")
    }
    unknown = sorted({c for part in parts.values() for c in part} - known)
    if unknown:
        raise InputError(
            f"{path}: {len(unknown)} condition(s) not in the data, e.g. {unknown[:5]}. Fix: use the data's "
            "GEARS-style names (A+ctrl, A+B) as written in data/data_card.json."
        )
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(set(parts[first]) & set(parts[second]))
        if both:
            raise InputError(
                f"{path}: {len(both)} condition(s) are in both '{first}' and '{second}', e.g. {both[:5]}."
            )
    seen_genes = {g for c in parts["train"] for g in condition_genes(c)}
    assigned = {c for part in parts.values() for c in part}
    return Split(
        sorted(parts["train"]),
        sorted(parts["val"]),
        sorted(parts["test"]),
        _sorted_groups(subgroups_by_seen(parts["test"], seen_genes)),
        _sorted_groups(subgroups_by_seen(parts["val"], seen_genes)),
        kind="file",
        held_out=sorted(known - assigned),
    )


@dataclass(frozen=True)
class SplitSettings:
    """Config ``dataset.split`` (its defaults live in the schema)."""

    kind: str
    seed: int
    train_gene_set_size: float
    combo_seen2_train_frac: float
    test_size: float
    val_size: float
    seen: int
    path: str | None
    held_out_context: str | None

    @classmethod
    def from_params(cls, params: dict) -> SplitSettings:
        return read_fields(cls, params)


def make_split(conditions: Sequence[str], settings: SplitSettings) -> Split:
    """The split config ``dataset.split`` asks for; ``conditions`` in the data's order."""
    kind = settings.kind
    if kind == "simulation":
        return simulation_split(
            conditions,
            settings.seed,
            settings.train_gene_set_size,
            settings.combo_seen2_train_frac,
        )
    if kind in ("single", "combo"):
        return gears_list_split(
            conditions, kind, settings.seed, settings.test_size, settings.val_size, settings.seen
        )
    if kind == "file":
        if not settings.path:
            raise InputError(
                "config 'dataset.split.kind' is file but 'dataset.split.path' is empty. Fix: give the split JSON."
            )
        return split_from_file(settings.path, conditions)
    if kind == "context":
        if not settings.held_out_context:
            raise InputError(
                "config 'dataset.split.kind' is context but 'dataset.split.held_out_context' is empty. "
                "Fix: name the context (a value of 'dataset.split.context_column') to hold out."
            )
        pairs = [parse_context_label(c) for c in conditions if c != CONTROL]
        return context_split(pairs, settings.held_out_context, settings.val_size, settings.seed)
    raise InputError(f"config 'dataset.split.kind' is '{kind}'; known: {', '.join(KINDS)}.")


# ---- cross-validation ----------------------------------------------------------------------------

# Split kinds whose test singles are unseen genes (GEARS' unseen_single): a fold's training part drops the
# doubles that contain a gene of one of its test singles. ``single`` also tests singles only.
UNSEEN_SINGLE_KINDS = ("simulation", "single")


@dataclass(frozen=True)
class CrossValidationSettings:
    """Config ``evaluate.cross_validation``."""

    scheme: Literal["kfold", "leave_one_out"]
    folds: int
    split_seeds: tuple[int, ...]
    val_fraction: float

    @classmethod
    def from_params(cls, params: dict) -> CrossValidationSettings:
        return read_fields(cls, params, split_seeds=tuple(params["split_seeds"]))


@dataclass(frozen=True)
class Fold:
    """One fold of one split seed: its name (``s<seed>f<index>``) and its split."""

    name: str
    split_seed: int
    split: Split

    def as_dict(self) -> dict:
        return {"name": self.name, "split_seed": self.split_seed, **self.split.as_dict()}

    @classmethod
    def from_dict(cls, record: dict) -> Fold:
        fields = {f.name for f in dataclasses.fields(Split)}
        split = Split(**{key: value for key, value in record.items() if key in fields})
        return cls(record["name"], record["split_seed"], split)


def split_kind_for_folds(kind: str) -> str:
    """The split kind a fold follows; the kinds without a fold version are refused."""
    if kind in UNSEEN_SINGLE_KINDS:
        return kind
    raise InputError(
        f"config 'evaluate.protocol' is cross_validation but 'dataset.split.kind' is '{kind}', which has no "
        f"fold version. Fix: use split kind {' or '.join(UNSEEN_SINGLE_KINDS)}, or protocol split."
    )


def fold_tests(conditions: list[str], scheme: str, folds: int, split_seed: int) -> list[list[str]]:
    """The test parts of one split seed's folds: disjoint, together every condition once."""
    if scheme == "leave_one_out":
        return [[c] for c in conditions]
    order = np.random.RandomState(split_seed).permutation(len(conditions))
    chunks = np.array_split(order, min(folds, len(conditions)))
    return [sorted(conditions[i] for i in chunk) for chunk in chunks]


def one_fold(
    conditions: list[str], test: list[str], kind: str, val_fraction: float, draw_seed: int
) -> Split:
    """Train, validation and test of one fold: the doubles that would reveal a test single's gene are
    held out of training (``UNSEEN_SINGLE_KINDS``), then a random ``val_fraction`` of the rest validates."""
    unseen = {condition_genes(c)[0] for c in test if is_single(c)}
    rest = [c for c in conditions if c not in set(test)]
    held_out = [c for c in rest if is_combo(c) and unseen & set(condition_genes(c))]
    rest = [c for c in rest if c not in set(held_out)]
    drawn = set(_draw(len(rest), val_fraction, draw_seed).tolist())
    val = sorted(c for i, c in enumerate(rest) if i in drawn)
    train = sorted(c for i, c in enumerate(rest) if i not in drawn)
    seen = {g for c in train for g in condition_genes(c)}
    return Split(
        train,
        val,
        sorted(test),
        _sorted_groups(subgroups_by_seen(test, seen)),
        _sorted_groups(subgroups_by_seen(val, seen)),
        kind=f"cross_validation:{kind}",
        held_out=sorted(held_out),
    )


def cross_validation_folds(
    conditions: Sequence[str], kind: str, settings: CrossValidationSettings
) -> list[Fold]:
    """Every fold of every split seed. ``kind`` ``single`` tests singles only (doubles are trained on, or
    held out with a test gene); ``simulation`` tests singles and doubles (labelled combo_seen0/1/2 by the
    genes training has seen)."""
    kind = split_kind_for_folds(kind)
    conditions = sorted(set(conditions) - {CONTROL})
    tested = [c for c in conditions if kind != "single" or is_single(c)]
    folds = []
    for split_seed in settings.split_seeds:
        tests = fold_tests(tested, settings.scheme, settings.folds, split_seed)
        for index, test in enumerate(tests):
            split = one_fold(
                conditions, test, kind, settings.val_fraction, split_seed * 100_003 + index
            )
            folds.append(Fold(f"s{split_seed}f{index}", split_seed, split))
    return folds


# ---- held-out context ----------------------------------------------------------------------------


def context_pairs(conditions: Sequence[str], contexts: Sequence[str]) -> list[tuple[str, str]]:
    """The distinct (condition, context) pairs of the cells (one entry per cell in both sequences),
    without the controls."""
    return sorted({(str(c), str(x)) for c, x in zip(conditions, contexts) if str(c) != CONTROL})


def context_split(
    pairs: Sequence[tuple[str, str]], held_out: str, val_fraction: float, seed: int
) -> Split:
    """Hold out one context: every perturbation measured in it is test; the pairs of all other contexts
    (the same perturbations among them) are train, less a random ``val_fraction`` of them for
    validation. Test subgroups: ``seen_in_other_contexts`` (the perturbation is measured in a training
    context) and ``unseen_in_other_contexts``. Labels are ``condition|context``."""
    contexts = sorted({context for _, context in pairs})
    if held_out not in contexts:
        raise InputError(
            f"context '{held_out}' has no perturbed cells; the data's contexts: {contexts}."
        )
    test = sorted(context_label(c, x) for c, x in pairs if x == held_out)
    rest = sorted(context_label(c, x) for c, x in pairs if x != held_out)
    drawn = set(_draw(len(rest), val_fraction, seed).tolist())
    val = sorted(label for i, label in enumerate(rest) if i in drawn)
    train = sorted(label for i, label in enumerate(rest) if i not in drawn)
    elsewhere = {c for c, x in pairs if x != held_out}
    groups: dict[str, list[str]] = {"seen_in_other_contexts": [], "unseen_in_other_contexts": []}
    for label in test:
        seen = parse_context_label(label)[0] in elsewhere
        groups["seen_in_other_contexts" if seen else "unseen_in_other_contexts"].append(label)
    return Split(train, val, test, groups, {"val": val}, kind=f"context:{held_out}")


def context_splits(
    pairs: Sequence[tuple[str, str]], val_fraction: float, seed: int
) -> dict[str, Split]:
    """One split per context, each holding that context out in turn."""
    return {
        context: context_split(pairs, context, val_fraction, seed)
        for context in sorted({context for _, context in pairs})
    }
