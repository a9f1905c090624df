"""Frozen cell-state encoders of the control cells; each writes ``formats.cell_embedding``.

``pca`` (the embedded default), ``scvi`` (scvi-tools, on raw counts) and ``scgpt`` (a pretrained scGPT
checkpoint's cell embedding): ``ENCODERS`` maps the names ``registry.CELL_ENCODERS`` gives (with each
encoder's GPU need and checkpoint files) to their settings and encode functions. Every module is imported here by name, so a
stage's import closure (and with it its rerun tracking and conda env) includes every encoder; heavy
libraries load inside functions.
"""

from __future__ import annotations

from typing import Any

from . import pca, scgpt, scvi
from .base import CellEncoder

ENCODERS: dict[str, CellEncoder[Any]] = {
    "pca": CellEncoder(pca.PcaSettings.from_params, pca.encode),
    "scvi": CellEncoder(scvi.ScviSettings.from_params, scvi.encode),
    "scgpt": CellEncoder(scgpt.ScgptSettings.from_params, scgpt.encode),
}
