"""Cleaning real-shaped RefSeq and UniProt text."""

import pytest

from dygenept.text_cleaning import clean_sentences, is_method_noise, normalise, split_sentences, strip_citations

REFSEQ_PLK4 = (
    "This gene encodes a member of the polo family of serine/threonine protein kinases. The protein localizes to "
    "centrioles, complex microtubule-based structures found in centrosomes, and regulates centriole duplication "
    "during the cell cycle. Three alternatively spliced transcript variants that encode different protein isoforms "
    "have been found for this gene. [provided by RefSeq, Sep 2009]"
)
UNIPROT_MAPK1 = (
    "Serine/threonine kinase which acts as an essential component of the MAP kinase signal transduction pathway "
    "(PubMed:19565474, PubMed:35216969). MAPK1/ERK2 and MAPK3/ERK1 are the 2 MAPKs which play an important role "
    "{ECO:0000269|PubMed:19565474}. Phosphorylates EIF4EBP1 (By similarity)."
)


def test_refseq_summary_keeps_function_drops_isoform_note_and_provenance():
    sentences = clean_sentences(REFSEQ_PLK4)
    assert sentences == [
        "This gene encodes a member of the polo family of serine/threonine protein kinases.",
        "The protein localizes to centrioles, complex microtubule-based structures found in centrosomes, and "
        "regulates centriole duplication during the cell cycle.",
    ]


def test_uniprot_citations_and_evidence_codes_are_stripped():
    sentences = clean_sentences(UNIPROT_MAPK1)
    assert sentences[0].endswith("MAP kinase signal transduction pathway.")
    assert not any("PubMed" in s or "ECO:" in s or "similarity" in s for s in sentences)
    assert sentences[-1] == "Phosphorylates EIF4EBP1."


@pytest.mark.parametrize("text", ["(Parfitt et al., PubMed: 19208651)", "(PubMed IDs: 16344562 and 17623810)", "(PubMed:1, PubMed:2)"])
def test_citation_shapes_seen_in_refseq(text):
    assert strip_citations(f"It binds DNA {text}.") == "It binds DNA."


def test_normalise_unicode_and_spaces():
    assert normalise("Ca\u00b2\u207a\u00a0 binding  ,\n and ﬁbres .") == "Ca2+ binding, and fibres."


def test_sentence_split_keeps_abbreviations_inside():
    assert split_sentences("It acts on e.g. p53 targets. It is nuclear.") == ["It acts on e.g. p53 targets.", "It is nuclear."]


def test_method_noise():
    assert is_method_noise("Alternative splicing results in multiple transcript variants.")
    assert is_method_noise("Pseudogenes of this gene are found on chromosome 4.")
    assert not is_method_noise("This kinase regulates the splicing factor SRSF1.")
