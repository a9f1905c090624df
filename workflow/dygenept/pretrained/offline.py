"""The Hugging Face libraries' offline switches, on while a compute stage loads a local model directory:
a missing file is then an error at once, never a download attempt on a compute node."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@contextlib.contextmanager
def hubs_offline() -> Iterator[None]:
    """The Hugging Face libraries' offline switches on (environment and an imported huggingface_hub),
    restored on exit: loading a local directory can never turn into a download."""
    saved = {name: os.environ.get(name) for name in OFFLINE_SWITCHES}
    os.environ.update({name: "1" for name in OFFLINE_SWITCHES})
    constants = _hub_constants()
    was_offline = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if constants is not None:
            constants.HF_HUB_OFFLINE = was_offline


def _hub_constants():
    try:
        from huggingface_hub import constants
    except ImportError:  # an env without the Hub client has nothing to switch off
        return None
    return constants
