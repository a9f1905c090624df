"""Token-budget batching: texts of one padded length together, each batch under a padded-token budget.

Pure functions of the token lengths. A text is padded to a length that depends on it alone (its token
count rounded up to a multiple of ``PAD_MULTIPLE``), never on the texts it is batched with: the same text
meets the same computation in any batch, so on the CPU its vector is the same bit for bit whatever else
is encoded with it (a grown gene list, a cache that holds some texts, another token budget). Batches
depend only on the set of texts, never on the order they arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Padding noise: the same text padded to 8 more positions gives vectors ~1e-7 apart, enough to cross a
# float16 rounding edge; the multiple bounds the padding at 7 tokens a text.
PAD_MULTIPLE = 8


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]  # positions in the encoder's input
    padded_length: int  # every member's padded length

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.padded_length


def padded_length(tokens: int, max_length: int) -> int:
    """``tokens`` rounded up to a multiple of ``PAD_MULTIPLE``, at most ``max_length``."""
    return min(-(-tokens // PAD_MULTIPLE) * PAD_MULTIPLE, max_length)


def plan_batches(
    lengths: Sequence[int],
    tokens_per_batch: int,
    max_length: int,
    keys: Sequence[str] | None = None,
) -> list[Batch]:
    """Batches of one padded length each, in descending length, each of at most ``tokens_per_batch``
    padded tokens (``lengths``: token counts, each at most ``max_length``).

    Ties in length are broken by ``keys`` (the texts), so the plan is deterministic. The longest batch
    comes first: a batch that does not fit in memory fails at once, not at the end. A text longer than
    the budget gets a batch of its own.
    """
    padded = [padded_length(length, max_length) for length in lengths]
    order = sorted(
        range(len(lengths)),
        key=lambda i: (-padded[i], keys[i] if keys is not None else i),
    )
    batches: list[Batch] = []
    current: list[int] = []
    for index in order:
        if current and (
            padded[index] != padded[current[0]]
            or (len(current) + 1) * padded[index] > tokens_per_batch
        ):
            batches.append(Batch(tuple(current), padded[current[0]]))
            current = []
        current.append(index)
    if current:
        batches.append(Batch(tuple(current), padded[current[0]]))
    return batches
