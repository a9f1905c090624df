"""The facet prompt, rendered from ``resources/facets.yaml`` and the prompt files, and the answer schema.

Pure functions: the same files and settings give the same messages, byte for byte, so the cache key
(``cache.cache_key``) changes exactly when what the model reads changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from ...errors import InputError
from ...formats.facet_spec import FacetSpec
from ..base import NONE_MARKER, GeneText

Message = dict[str, str]


@dataclass(frozen=True)
class Example:
    symbol: str
    name: str
    text: str
    answers: dict[str, str]


@dataclass(frozen=True)
class PromptTemplates:
    system: str
    user: str
    examples: tuple[Example, ...]


def load_templates(system: str | Path, user: str | Path, examples: str | Path) -> PromptTemplates:
    """Read the three prompt files; an example must name only facet ids and carry its text."""
    try:
        system_text = Path(system).read_text(encoding="utf-8")
        user_text = Path(user).read_text(encoding="utf-8")
        document = yaml.safe_load(Path(examples).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise InputError(
            f"{error.filename}: cannot read the prompt file ({error.strerror}). "
            "Fix: config 'facets.llm.prompts'."
        ) from error
    entries = document.get("examples") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise InputError(
            f"{examples}: expected a list under 'examples'. Fix: see the shipped file."
        )
    parsed = []
    for position, entry in enumerate(entries):
        missing = [k for k in ("symbol", "name", "text", "answers") if not entry.get(k)]
        if missing:
            raise InputError(f"{examples}: examples[{position}] lacks {missing}.")
        parsed.append(
            Example(entry["symbol"], entry["name"], entry["text"].strip(), dict(entry["answers"]))
        )
    return PromptTemplates(system_text.strip(), user_text.strip(), tuple(parsed))


def facet_block(facets: Sequence[FacetSpec]) -> str:
    return "\n".join(f"- {f.id}: {f.name}. {f.description}" for f in facets)


def render_system(templates: PromptTemplates, facets: Sequence[FacetSpec], max_chars: int) -> str:
    try:
        return Template(templates.system).substitute(
            facets=facet_block(facets),
            facet_ids=", ".join(f.id for f in facets),
            none=NONE_MARKER,
            max_chars=max_chars,
        )
    except (KeyError, ValueError) as error:
        raise InputError(
            f"system prompt: unknown or malformed placeholder {error}. "
            "Fix: use only $facets, $facet_ids, $none, $max_chars."
        ) from error


def render_user(templates: PromptTemplates, symbol: str, name: str, text: str) -> str:
    try:
        return Template(templates.user).substitute(symbol=symbol, name=name, text=text.strip())
    except (KeyError, ValueError) as error:
        raise InputError(
            f"user prompt: unknown or malformed placeholder {error}. "
            "Fix: use only $symbol, $name, $text."
        ) from error


def example_answer(example: Example, facets: Sequence[FacetSpec]) -> dict[str, str]:
    """The example's answer over every facet: the facets it names, NONE for the others."""
    ids = [f.id for f in facets]
    unknown = sorted(set(example.answers) - set(ids))
    if unknown:
        raise InputError(
            f"prompt example {example.symbol} answers facets {unknown} that facets.yaml lacks. "
            f"Fix: rename them to one of {ids} or drop them."
        )
    return {fid: " ".join(example.answers.get(fid, NONE_MARKER).split()) for fid in ids}


def answer_json(answer: dict[str, str]) -> str:
    return json.dumps(answer, ensure_ascii=False)


def render_messages(
    templates: PromptTemplates,
    facets: Sequence[FacetSpec],
    gene: GeneText,
    max_chars: int,
    system_role: bool,
) -> list[Message]:
    """System prompt, the worked examples as user/assistant turns, then the gene.

    ``system_role=False`` puts the system prompt at the head of the first user turn, for chat templates
    that reject a system role (Mistral's, and so BioMistral's).
    """
    system = render_system(templates, facets, max_chars)
    turns: list[Message] = []
    for example in templates.examples:
        turns.append(
            {
                "role": "user",
                "content": render_user(templates, example.symbol, example.name, example.text),
            }
        )
        turns.append({"role": "assistant", "content": answer_json(example_answer(example, facets))})
    turns.append(
        {"role": "user", "content": render_user(templates, gene.symbol, gene.name, gene.text)}
    )
    if system_role:
        return [{"role": "system", "content": system}, *turns]
    first = {"role": "user", "content": f"{system}\n\n{turns[0]['content']}"}
    return [first, *turns[1:]]


def answer_schema(facets: Sequence[FacetSpec], max_chars: int, min_chars: int) -> dict:
    """JSON schema of an answer: every facet id, each a paragraph of bounded length or exactly NONE."""
    paragraph = {"type": "string", "minLength": min_chars, "maxLength": max_chars}
    value = {"anyOf": [{"type": "string", "enum": [NONE_MARKER]}, paragraph]}
    return {
        "type": "object",
        "properties": {f.id: value for f in facets},
        "required": [f.id for f in facets],
        "additionalProperties": False,
    }
