"""The in-silico screen: requests parsed and refused by name, the screen's numbers by hand, and the
genes stage refusing a made-up symbol. The screen on the real demo run is in test_workflow.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dygenept.data.screen_requests import parse_requests, read_request_file, requested_genes
from dygenept.data.symbols import UnmappedGenesError
from dygenept.errors import InputError
from dygenept.evaluation.screen import (
    NOISE_COLUMNS,
    effect_size,
    nearest,
    noise_columns,
    noise_floor,
    sampling_error,
    screen_ranks,
    tie_groups,
    top_changes,
    top_facets,
)
from dygenept.stages.genes import run as genes_run

from conftest import DEMO_H5AD, ROOT, section_params


def test_requests_become_gears_conditions_in_the_users_gene_order():
    requests = parse_requests(["TP53", " GATA1 + KLF1 ", "MYC+ctrl"], "test")
    assert [r.condition for r in requests] == ["TP53+ctrl", "GATA1+KLF1", "MYC+ctrl"]
    assert requested_genes(requests) == ["GATA1", "KLF1", "MYC", "TP53"]


@pytest.mark.parametrize(
    "entries, named",
    [
        ([], "no perturbation to predict"),
        (["A+A"], "entry 1 'A+A' pairs a gene with itself"),
        (["A+B+C"], "entry 1 'A+B+C' names 3 genes"),
        (["A+B", "B+A"], "entry 2 'B+A' repeats entry 1 'A+B'"),
        (["TP53", "tp53"], "entry 2 'tp53' repeats entry 1 'TP53'"),
        (["", "X"], "entry 1 '' names no gene"),
    ],
)
def test_bad_requests_are_refused_by_entry_with_the_fix(entries, named):
    with pytest.raises(InputError, match="Fix") as error:
        parse_requests(entries, "config 'predict'")
    assert named in str(error.value) and str(error.value).startswith("config 'predict'")


def test_every_bad_entry_is_named_at_once():
    with pytest.raises(InputError) as error:
        parse_requests(["A+A", "B", "B", "C+D+E"], "f.txt")
    message = str(error.value)
    assert "entry 1 'A+A'" in message and "entry 3 'B'" in message and "entry 4 'C+D+E'" in message


def test_request_file_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "screen.txt"
    path.write_text("# candidates\nTP53\n\n  GATA1+KLF1  \n# MYC\n")
    assert read_request_file(path) == ["TP53", "GATA1+KLF1"]
    with pytest.raises(InputError, match="predict.file"):
        read_request_file(tmp_path / "absent.txt")


def test_screen_numbers_by_hand():
    delta = np.array([0.6, -0.2, 0.0, -0.9, 0.1])
    norm, changed = effect_size(delta, threshold=0.5)
    assert norm == pytest.approx(np.sqrt(0.36 + 0.04 + 0.81 + 0.01)) and changed == 2
    up, down = top_changes(delta, ["a", "b", "c", "d", "e"], k=2)
    assert up == ["a", "e"] and down == ["d", "b"]
    references = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    assert nearest(np.array([1.0, 0.1]), references, ["x", "y", "xy", "zero"], k=2) == [
        ("x", 0.995),
        ("xy", 0.774),  # (1 + 0.1) / (√1.01 · √2)
    ]
    weights = np.array([0.0, 0.7, 0.3, 0.0])
    assert top_facets(weights, np.array([True, True, True, False]), k=3) == [1, 2]


def test_the_noise_floor_by_hand():
    cells = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])  # variances (ddof 1): 4 and 3
    assert sampling_error(cells) == pytest.approx(np.sqrt((4 + 3) / 3))
    assert np.isnan(sampling_error(cells[:1]))  # one cell: no spread to measure
    assert noise_floor([0.2, np.nan, 0.4, 0.3]) == pytest.approx(0.3)


def test_entries_within_the_floor_share_a_rank_and_those_near_the_training_mean_get_none():
    reference = np.zeros(2)
    predicted = np.array(
        [
            [1.0, 0.0],  # A: 1.0 from the training mean
            [1.1, 0.0],  # B: within 0.3 of A
            [1.3, 0.0],  # C: within 0.3 of B (not of A): one group through the chain
            [0.0, 2.0],  # D: apart from all, the farthest
            [0.1, 0.1],  # E: within the floor of the training mean
        ]
    )
    floor = 0.3
    assert tie_groups(predicted, floor) == [0, 0, 0, 3, 4]
    specific = list(np.linalg.norm(predicted - reference, axis=1))
    assert screen_ranks(specific, tie_groups(predicted, floor), floor) == [2, 2, 2, 1, None]
    columns = noise_columns(list("ABCDE"), predicted, reference, floor)
    assert columns.columns.tolist() == NOISE_COLUMNS
    assert columns["rank"].tolist() == [2, 2, 2, 1, pd.NA]
    assert columns.loc["A", "same_as"] == "B;C" and columns.loc["D", "same_as"] == ""
    assert columns.loc["D", "effect_over_noise"] == pytest.approx(2.0 / 0.3, abs=0.01)


def test_the_genes_stage_refuses_a_made_up_screen_gene_by_name(tmp_path, org_db):
    params = section_params("genes", screen=["TP53", "NOTAGENE1"])
    inputs = {
        "h5ad": DEMO_H5AD,
        "org_db": org_db,
        "previous_symbols": ROOT / "resources/previous_symbols.tsv",
    }
    with pytest.raises(UnmappedGenesError, match="NOTAGENE1: not a symbol or alias") as error:
        genes_run(inputs, {"genes": tmp_path / "genes.tsv"}, params)
    assert "predict.perturbations" in str(error.value) and not (tmp_path / "genes.tsv").exists()
