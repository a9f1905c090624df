"""Cleaning real-shaped RefSeq and UniProt text."""

import pytest

from dygenept.text.cleaning import (
    clean_sentences,
    is_method_noise,
    microbial_infection,
    normalise,
    split_sentences,
    strip_citations,
)

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


@pytest.mark.parametrize(
    "text",
    [
        "(Parfitt et al., PubMed: 19208651)",
        "(PubMed IDs: 16344562 and 17623810)",
        "(PubMed:1, PubMed:2)",
    ],
)
def test_citation_shapes_seen_in_refseq(text):
    assert strip_citations(f"It binds DNA {text}.") == "It binds DNA."


def test_normalise_unicode_and_spaces():
    assert normalise("Ca\u00b2\u207a\u00a0 binding  ,\n and ﬁbres .") == "Ca2+ binding, and fibres."


def test_sentence_split_keeps_abbreviations_inside():
    assert split_sentences("It acts on e.g. p53 targets. It is nuclear.") == [
        "It acts on e.g. p53 targets.",
        "It is nuclear.",
    ]


def test_method_noise():
    assert is_method_noise("Alternative splicing results in multiple transcript variants.")
    assert is_method_noise("Pseudogenes of this gene are found on chromosome 4.")
    assert not is_method_noise("This kinase regulates the splicing factor SRSF1.")


# UniProtKB function comment of ACE2 (flat-file shape, evidence codes inline) and an NCBI Gene summary as
# MyGene.info returns it (with the RefSeq provenance suffix and a non-breaking space).
UNIPROT_ACE2 = (
    "Essential counter-regulatory carboxypeptidase of the renin-angiotensin hormone system that is a critical "
    "regulator of blood volume {ECO:0000269|PubMed:10969042, ECO:0000269|PubMed:11815627}. (Microbial infection) "
    "Acts as a receptor for human coronavirus SARS-CoV and SARS-CoV-2 (PubMed:14647384, PubMed:32142651). "
    "(Microbial infection) ACE2 binding to the spike protein is enhanced by TMPRSS2 (Probable)."
)
MYGENE_KLF6 = (
    "This gene encodes a member of the Kruppel-like family of transcription factors. The zinc finger protein is a "
    "transcriptional activator, and functions as a tumor suppressor.\u00a0Multiple transcript variants encoding "
    "different isoforms have been found for this gene, some of which are implicated in carcinogenesis. "
    "[provided by RefSeq, Jul 2008]"
)


def test_microbial_infection_prefix_is_kept_as_context_not_as_normal_function():
    sentences = clean_sentences(UNIPROT_ACE2)
    assert sentences == [
        "Essential counter-regulatory carboxypeptidase of the renin-angiotensin hormone system that is a critical "
        "regulator of blood volume.",
        "During microbial infection, acts as a receptor for human coronavirus SARS-CoV and SARS-CoV-2.",
        "During microbial infection, ACE2 binding to the spike protein is enhanced by TMPRSS2.",
    ]
    assert microbial_infection("It binds (Microbial infection) virus.") == "It binds virus."


def test_mygene_summary_loses_provenance_and_variant_note():
    assert clean_sentences(MYGENE_KLF6) == [
        "This gene encodes a member of the Kruppel-like family of transcription factors.",
        "The zinc finger protein is a transcriptional activator, and functions as a tumor suppressor.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "ECO:0000250|UniProtKB:P04637",
        "(Ref.3)",
        "(Ref.3, Ref.5)",
        "[supplied by OMIM, Mar 2008]",
        "{ECO:0000305}",
    ],
)
def test_more_citation_shapes(text):
    assert strip_citations(f"It binds DNA {text}.") == "It binds DNA."


def test_publication_note_is_method_noise():
    assert is_method_noise(
        "Publication Note: This RefSeq record includes a subset of the publications that are available."
    )
