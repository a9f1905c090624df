"""Cleaning gene function text of citation and method noise, one sentence at a time (pure functions)."""

from __future__ import annotations

import re
import unicodedata

_CITATIONS = [
    re.compile(r"\s*\[provided by [^\]]*\]", re.I),            # RefSeq provenance suffix
    re.compile(r"\s*\{ECO:[^}]*\}"),                           # UniProt evidence codes
    re.compile(r"\s*\((?:[^()]*?\bPubMed(?:\s*IDs?)?\s*:?\s*\d[^()]*)\)", re.I),  # (PubMed:123), (Smith et al., PubMed: 1)
    re.compile(r"\s*\(By similarity\)", re.I),
    re.compile(r"\s*\(Probable\)", re.I),
    re.compile(r"\s*\(Microbial infection\)", re.I),
]
# Sentences about transcripts, isoforms and pseudogenes describe the annotation, not the gene's function.
_METHOD_NOISE = re.compile(
    r"(transcript variants?|alternative(?:ly)? splic|pseudogenes? (?:of|for) this gene|"
    r"^this gene has (?:multiple|several) (?:transcript|isoform)|readthrough|"
    r"^sequence note|^\[isoform)",
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


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def is_method_noise(sentence: str) -> bool:
    return bool(_METHOD_NOISE.search(sentence))


def clean_sentences(text: str) -> list[str]:
    """Citation-free, normalised sentences of ``text``, method-noise sentences dropped, each ending in a stop."""
    sentences = []
    for sentence in split_sentences(normalise(strip_citations(text))):
        sentence = normalise(sentence)
        if len(sentence) < 3 or is_method_noise(sentence):
            continue
        sentences.append(sentence if sentence[-1] in ".!?" else sentence + ".")
    return sentences
