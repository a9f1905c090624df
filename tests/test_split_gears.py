"""The GEARS "simulation" split against the subgroup lists GEARS published for Norman and Adamson (seed 1).

Without the full condition lists (the GEARS data download) the published lists check the subgroup
labelling: from the published test and validation subgroups, infer which genes GEARS saw in training,
relabel the published conditions with ``label_subgroups`` and get GEARS' labels back.
"""

from __future__ import annotations

import json

import pytest

from dygenept.data.conditions import condition_genes
from dygenept.data.splits import SUBGROUPS, label_subgroups, simulation_split


def published(shared_data, name: str) -> dict:
    return json.loads(
        (shared_data / "perturbseq" / f"gears_simulation_subgroups_{name}.json").read_text()
    )


def seen_genes_implied(subgroups: dict[str, list[str]]) -> set[str]:
    unseen = {
        g for c in subgroups["unseen_single"] + subgroups["combo_seen0"] for g in condition_genes(c)
    }
    named = {g for conditions in subgroups.values() for c in conditions for g in condition_genes(c)}
    return named - unseen


@pytest.mark.parametrize("dataset", ["norman", "adamson"])
@pytest.mark.parametrize("part", ["test_subgroup", "val_subgroup"])
def test_labelling_reproduces_published_subgroups(shared_data, dataset, part):
    subgroups = published(shared_data, dataset)[part]
    conditions = [c for group in SUBGROUPS for c in subgroups[group]]
    train, labelled = label_subgroups(
        conditions, seen_genes_implied(subgroups), seen2_in_train=set()
    )
    assert train == []
    assert {k: sorted(v) for k, v in labelled.items()} == {
        k: sorted(subgroups[k]) for k in SUBGROUPS
    }


def test_split_invariants_on_a_norman_like_condition_list(shared_data):
    lists = published(shared_data, "norman")
    conditions = sorted({c for part in lists.values() for cs in part.values() for c in cs})
    split = simulation_split(
        conditions, seed=1, train_gene_set_size=0.75, combo_seen2_train_frac=0.75
    )
    assert sorted(split.train + split.val + split.test) == conditions
    train_single_genes = {
        condition_genes(c)[0] for c in split.train + split.val if len(condition_genes(c)) == 1
    }
    for condition in split.test_subgroups["unseen_single"]:
        assert condition_genes(condition)[0] not in train_single_genes
    assert split == simulation_split(
        list(reversed(conditions)), seed=1, train_gene_set_size=0.75, combo_seen2_train_frac=0.75
    )
