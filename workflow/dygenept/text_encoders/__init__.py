"""Frozen text encoders for the facet texts: any Hugging Face encoder, pinned and hashed.

``model_dir`` finds and verifies the weights (a path, an installed package, or a Hub id at a pinned
revision; sha256 of the weights), ``batching`` plans token-budget batches (pure functions), and
``encoder`` runs the forward pass (device, autocast, pooling, a prefetching collator).
"""

from .batching import Batch, plan_batches
from .encoder import EncodeReport, TextEncoder, TextEncoderSettings
from .model_dir import EncoderError, EncoderModelSettings, ModelFiles, resolve_model_files

__all__ = [
    "Batch",
    "EncodeReport",
    "EncoderError",
    "EncoderModelSettings",
    "ModelFiles",
    "TextEncoder",
    "TextEncoderSettings",
    "plan_batches",
    "resolve_model_files",
]
