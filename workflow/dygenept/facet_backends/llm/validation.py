"""Every model answer is checked before it counts: it parses as one JSON object, names exactly the facet
ids, each value is a paragraph within the length limit or the NONE marker (variants such as "none",
"N/A", "" or "Not applicable" become the marker), no paragraph is repeated across facets, and no
paragraph restates the prompt (its instructions or a worked example) instead of the gene's text.

An invalid answer raises ``InvalidAnswer`` with a message written for the model: the runner shows it
in the retry turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from ..base import NONE_MARKER

NONE_VARIANTS = {
    "",
    "none",
    "n/a",
    "na",
    "not applicable",
    "null",
    "nil",
    "no role",
    "not mentioned",
    "not stated",
    "unknown",
    "-",
}
WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
SHINGLE = 8  # words in a row that, shared with the prompt but not with the gene's text, count as restating it


class InvalidAnswer(ValueError):
    pass


def normalise_none(value: str) -> str:
    stripped = value.strip().strip(".").strip()
    return NONE_MARKER if stripped.casefold() in NONE_VARIANTS or stripped == NONE_MARKER else value


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def shingles(text: str, size: int = SHINGLE) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def extract_json(raw: str) -> object:
    """The JSON object in ``raw``; tolerates a code fence or prose around one object."""
    text = raw.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    if fence:
        text = fence.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                pass
    raise InvalidAnswer(
        f"the answer is not one complete JSON object (it has {len(raw)} characters"
        f"{', and ends mid-way' if raw.strip() and not raw.strip().endswith('}') else ''})"
    )


def validate_answer(
    raw: str,
    facet_ids: Sequence[str],
    max_chars: int,
    min_chars: int,
    prompt_shingles: set[tuple[str, ...]],
    source_text: str,
) -> dict[str, str]:
    """The answer as {facet id: paragraph or NONE}; raises ``InvalidAnswer`` naming every problem.

    ``prompt_shingles`` are the word 8-grams of the rendered instructions and worked examples; a
    paragraph that shares one with them and not with ``source_text`` restates the prompt.
    """
    parsed = extract_json(raw)
    if not isinstance(parsed, dict):
        raise InvalidAnswer(f"the answer is a JSON {type(parsed).__name__}, not an object")
    problems = []
    missing = [fid for fid in facet_ids if fid not in parsed]
    extra = sorted(set(parsed) - set(facet_ids))
    if missing:
        problems.append(f"missing facets {missing}")
    if extra:
        problems.append(f"unknown keys {extra} (the facet ids are {list(facet_ids)})")
    answer: dict[str, str] = {}
    for fid in facet_ids:
        if fid not in parsed:
            continue
        value = parsed[fid]
        if value is None:
            value = NONE_MARKER
        if not isinstance(value, str):
            problems.append(f"{fid} is a {type(value).__name__}, not a string")
            continue
        value = normalise_none(value)
        if value != NONE_MARKER:
            value = " ".join(value.split())
            if len(value) > max_chars:
                problems.append(f"{fid} has {len(value)} characters (at most {max_chars})")
            elif len(value) < min_chars:
                problems.append(f"{fid} is too short to be a paragraph ({value!r})")
        answer[fid] = value
    paragraphs: dict[str, list[str]] = {}
    for fid, value in answer.items():
        if value != NONE_MARKER:
            paragraphs.setdefault(value.casefold(), []).append(fid)
    for fids in paragraphs.values():
        if len(fids) > 1:
            problems.append(f"the same paragraph is written for {fids}; write each statement once")
    own = shingles(source_text)
    for fid, value in answer.items():
        if value != NONE_MARKER and (shingles(value) & prompt_shingles) - own:
            problems.append(
                f"{fid} restates the instructions or an example instead of this gene's text"
            )
    if problems:
        raise InvalidAnswer("; ".join(problems))
    return answer


def retry_message(error: InvalidAnswer) -> str:
    return (
        f"Your answer was invalid: {error}. Answer again with only the JSON object, "
        f"one key per facet id, each value a paragraph or exactly {NONE_MARKER}."
    )
