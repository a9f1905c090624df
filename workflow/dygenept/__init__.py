"""DyGenePT: context-dependent gene representations for predicting single-cell perturbation responses."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``dygenept.load_run``, imported on first use. By name, not by an import statement: the notebook API
    is no stage's code (the workflow reads stages' imports to decide what a code edit reruns)."""
    if name == "load_run":
        import importlib

        return importlib.import_module(f"{__name__}.notebook").load_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
