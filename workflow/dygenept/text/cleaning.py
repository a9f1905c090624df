"""Cleaning gene function text of citation and method noise, one sentence at a time (pure functions).

Handles the shapes NCBI Gene (RefSeq) and UniProtKB text takes: ``[provided by RefSeq, Jul 2008]``,
``(PubMed:123, PubMed:456)``, ``(Ref.3)``, ``{ECO:0000269|PubMed:123}`` and bare ECO codes,
``(By similarity)``, ``(Probable)``; a leading ``(Microbial infection)`` becomes "During microbial
infection," so that a virus receptor is not read as the protein's normal function.
"""

from __future__ import annotations

import re
import unicodedata

_CITATIONS = [
    re.compile(r"\s*\[(?:provided|supplied) by [^\]]*\]", re.I),  # RefSeq / OMIM provenance suffix
    re.compile(r"\s*\{ECO:[^}]*\}"),  # UniProt evidence codes
    re.compile(r"\s*\bECO:\d{7}(?:\|[A-Za-z]+:[\w-]+)?"),  # a bare evidence code
    re.compile(
        r"\s*\((?:[^()]*?\bPubMed(?:\s*IDs?)?\s*:?\s*\d[^()]*)\)", re.I
    ),  # (PubMed:123), (Smith et al., PubMed: 1)
    re.compile(r"\s*\((?:Ref\.\s*\d+(?:,\s*)?)+\)"),  # (Ref.3), (Ref.3, Ref.5)
    re.compile(r"\s*\(By similarity\)", re.I),
    re.compile(r"\s*\(Probable\)", re.I),
]
_MICROBIAL = re.compile(r"\(Microbial infection\)\s*", re.I)
# Sentences about transcripts, isoforms and pseudogenes describe the annotation, not the gene's function.
_METHOD_NOISE = re.compile(
    r"(transcript variants?|alternative(?:ly)? splic|pseudogenes? (?:of|for) this gene|"
    r"^this gene has (?:multiple|several) (?:transcript|isoform)|readthrough|"
    r"^sequence note|^\[isoform|^publication note)",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Unicode NFKC, plain spaces, no doubled whitespace or space before punctuation."""
    text = unicodedata.normalize("NFKC", text).replace("\u00a0", " ")
    text = _SPACE.sub(" ", text).strip()
    return re.sub(r"\s+([.,;:])", r"\1", text)


def strip_citations(text: str) -> str:
    for pattern in _CITATIONS:
        text = pattern.sub("", text)
    return text


def _lower_first_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return (
        word.lower() if len(word) == 1 or word[1:].islower() else word
    )  # "Acts" -> "acts"; "ACE2", "SARS-CoV-2" stay


def microbial_infection(sentence: str) -> str:
    """'(Microbial infection) Acts as ...' -> 'During microbial infection, acts as ...'; elsewhere dropped."""
    if _MICROBIAL.match(sentence):
        rest = re.sub(r"^[A-Za-z]+", _lower_first_word, _MICROBIAL.sub("", sentence, count=1))
        return f"During microbial infection, {rest}"
    return _MICROBIAL.sub("", sentence)


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def is_method_noise(sentence: str) -> bool:
    return bool(_METHOD_NOISE.search(sentence))


def clean_sentences(text: str) -> list[str]:
    """Citation-free, normalised sentences of ``text``, method-noise sentences dropped, each ending in a stop."""
    sentences = []
    for sentence in split_sentences(normalise(strip_citations(text))):
        sentence = normalise(microbial_infection(sentence))
        if len(sentence) < 3 or is_method_noise(sentence):
            continue
        sentences.append(sentence if sentence[-1] in ".!?" else sentence + ".")
    return sentences
