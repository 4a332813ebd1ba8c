"""Right-padded batches of token sequences in the layout every adapter method takes.

A batch is ``{"input_ids": LongTensor[B, T], "attention_mask": LongTensor[B, T]}`` of content tokens (no special
tokens), right-padded: row ``b`` holds its tokens in columns ``0 .. len_b - 1`` with mask 1, then ``pad_id`` with
mask 0; ``T`` is the longest sequence of the batch (at least 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from guardchain.core.windows import right_padded


@dataclass(frozen=True)
class Batch:
    """One batch: the rows ``start .. start + B - 1`` of the sequence list.

    :ivar start: index of the first row in the full list.
    :ivar input_ids: shape ``(B, T)``, int64.
    :ivar attention_mask: shape ``(B, T)``, int64, 1 on tokens and 0 on padding.
    """

    start: int
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The mapping handed to the adapter."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def padded_batches(sequences: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Split ``sequences`` into consecutive right-padded batches of at most ``batch_size`` rows
    (:func:`guardchain.core.windows.right_padded`)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for start in range(0, len(sequences), batch_size):
        ids, mask = right_padded(sequences[start : start + batch_size], pad_id)
        yield Batch(start, torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64)))
