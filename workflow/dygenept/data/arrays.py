"""Small array helpers shared by the stages."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)
