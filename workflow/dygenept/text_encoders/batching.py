"""Token-budget batching: texts of similar token length together, each batch under a padded-token budget.

Pure functions of the token lengths, so the batches (and with them every vector) depend only on the set
of texts, never on the order they arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]  # positions in the encoder's input
    padded_length: int  # the longest member's token count

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.padded_length


def plan_batches(
    lengths: Sequence[int], tokens_per_batch: int, keys: Sequence[str] | None = None
) -> list[Batch]:
    """Batches in descending token length, each holding at most ``tokens_per_batch`` padded tokens.

    Ties in length are broken by ``keys`` (the texts), so the plan is deterministic. The longest batch
    comes first: a batch that does not fit in memory fails at once, not at the end. A text longer than
    the budget gets a batch of its own.
    """
    order = sorted(
        range(len(lengths)),
        key=lambda i: (-lengths[i], keys[i] if keys is not None else i),
    )
    batches: list[Batch] = []
    current: list[int] = []
    padded = 0
    for index in order:
        # Descending order: the first member of a batch is its longest.
        padded = padded or lengths[index]
        if current and (len(current) + 1) * padded > tokens_per_batch:
            batches.append(Batch(tuple(current), padded))
            current, padded = [], lengths[index]
        current.append(index)
    if current:
        batches.append(Batch(tuple(current), padded))
    return batches
