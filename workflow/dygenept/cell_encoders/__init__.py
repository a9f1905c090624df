"""Frozen cell-state encoders of the control cells; each writes ``formats.cell_embedding``.

``pca`` (the embedded default), ``scvi`` (scvi-tools, on raw counts) and ``scgpt`` (a pretrained scGPT
checkpoint's cell embedding): ``ENCODERS`` maps the names ``registry.CELL_ENCODERS`` gives (with each
encoder's GPU need and checkpoint files) to their functions. Every module is imported here by name, so a
stage's import closure (and with it its rerun tracking and conda env) includes every encoder; heavy
libraries load inside functions.
"""

from __future__ import annotations

from . import pca, scgpt, scvi
from .base import CellEncoder

ENCODERS: dict[str, CellEncoder] = {
    "pca": pca.encode,
    "scvi": scvi.encode,
    "scgpt": scgpt.encode,
}
