"""Shards of genes (config 'shards'): which shard a gene is in, and the gathering of shards' outputs into
what one job writes. The workflow runs them on the demo (tests/test_workflow.py: byte for byte), the LLM
stage against the loopback chat server (tests/test_facets_llm.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dygenept.data.shards import in_shard, part_inputs, shard_of
from dygenept.errors import InputError
from dygenept.facet_backends.base import FacetSet, GeneText
from dygenept.facet_backends.table import facet_sets_of, facet_table
from dygenept.formats.facet_spec import FacetSpec
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.text_encoders.facet_embedding import gather_tensors


def test_a_genes_shard_never_depends_on_the_other_genes_and_shards_are_even():
    genes = [str(entrez) for entrez in range(1, 20_001)]
    shards = [in_shard(genes, str, shard, 8) for shard in range(8)]
    assert sorted(sum(shards, [])) == sorted(genes)  # each gene in exactly one
    assert max(map(len, shards)) - min(map(len, shards)) < 0.1 * len(genes) / 8
    grown = genes + ["999999"]
    assert [in_shard(grown, str, shard, 8) for shard in range(8)] == [
        part + (["999999"] if shard == shard_of("999999", 8) else [])
        for shard, part in enumerate(shards)
    ]
    with pytest.raises(ValueError):
        in_shard(genes, str, 8, 8)


def test_parts_are_read_in_shard_order_and_a_missing_one_is_named():
    inputs = {"facets": Path("f"), "part_1": Path("b"), "part_0": Path("a"), "part_2": Path("c")}
    assert part_inputs(inputs) == [Path("a"), Path("b"), Path("c")]
    assert part_inputs({"facets": Path("f")}) == []
    with pytest.raises(ValueError, match="missing"):
        part_inputs({"part_0": Path("a"), "part_2": Path("c")})


def test_a_facet_table_reads_back_as_its_facet_sets():
    specs = [FacetSpec(f"f{k}", f"facet {k}", "", ()) for k in range(3)]
    genes = [GeneText(str(i), f"G{i}", "", "") for i in range(4)]
    sets = [
        FacetSet("0", ("a", None, "c"), (("GO:1",), (), ("GO:2", "GO:3"))),
        FacetSet("1", (None, None, None), ((), (), ())),
        FacetSet("2", ("x", "y", "z"), ((), (), ())),
        FacetSet("3", ("t", None, None), (("llm_failure",), (), ())),
    ]
    table = facet_table(genes, sets, specs)
    assert facet_sets_of(table) == sets
    assert facet_table(genes, facet_sets_of(table), specs).equals(table)


def tensor(entrez: list[str], k: int = 2, dim: int = 4) -> FacetTensor:
    rng = np.random.default_rng(len(entrez))
    return FacetTensor(
        rng.standard_normal((len(entrez), k, dim)).astype(np.float16),
        rng.random((len(entrez), k)) < 0.5,
        entrez,
        [f"G{e}" for e in entrez],
        [f"f{i}" for i in range(k)],
    )


def test_shards_tensors_gather_in_the_tables_gene_order():
    import pandas as pd

    whole = tensor(["5", "1", "9", "3"])
    table = pd.DataFrame({"entrez_id": ["5", "5", "1", "1", "9", "9", "3", "3"]})
    parts = [
        FacetTensor(whole.embeddings[rows], whole.mask[rows], ids, syms, whole.facet_ids)
        for rows, ids, syms in [
            ([1, 3], ["1", "3"], ["G1", "G3"]),
            ([], [], []),
            ([0, 2], ["5", "9"], ["G5", "G9"]),
        ]
    ]
    gathered = gather_tensors(parts, table)
    assert gathered.entrez_ids == whole.entrez_ids and gathered.symbols == whole.symbols
    assert np.array_equal(gathered.embeddings, whole.embeddings)
    assert np.array_equal(gathered.mask, whole.mask)
    with pytest.raises(InputError, match="shards of another facet table"):
        gather_tensors(parts[:2], table)
