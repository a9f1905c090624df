"""DyGenePT: context-dependent gene representations for predicting single-cell perturbation responses."""

__version__ = "0.1.0"
