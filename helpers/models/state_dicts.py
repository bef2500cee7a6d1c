"""Reading published state dicts: shared by the Galileo-nano and Presto re-implementations.

Both load weights that come from outside the study, so both read them the same inert way and refuse a file whose
keys or shapes do not match the network, naming what differs.
"""

from __future__ import annotations

import os

import torch
from torch import nn


def load(path: str | os.PathLike) -> dict:
    """A state dict read inertly (``weights_only=True``): a file from outside never runs code when loaded.

    Raises:
        ValueError: The file is not a torch state dict (named, with what was found).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises RuntimeError / UnpicklingError / EOFError / zipfile errors
        raise ValueError(f"{path}: not a readable torch state dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), found {type(state).__name__}")
    return state


def check_and_load(model: nn.Module, state: dict, path: str | os.PathLike) -> None:
    """Load ``state`` into ``model`` strictly, first naming every missing, unexpected or mis-shaped key.

    A published checkpoint that does not match our re-implementation must fail loudly with what differs, never
    load half its weights; ``path`` names the file in the message.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"wrong shapes for {wrong[:3]}")
        raise ValueError(f"{path}: not a {type(model).__name__} checkpoint: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
