"""Registered name -> intervention class and config model: how a saved config is turned back into objects.

Saved configs name interventions by their registered plugin name (never by a Python type string), so a module
move never breaks a saved directory; a test keeps this table equal to the registration module's.
"""

from __future__ import annotations

from pydantic import BaseModel

from guardchain.interventions import config as cfg
from guardchain.interventions.base import Intervention
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.static import Add, Collect, Interchange, Noise, Replace, Scale, Zero
from guardchain.interventions.trainable import BoundlessRotatedSpace, LowRankRotatedSpace, RotatedSpace

CATALOG: dict[str, tuple[type[Intervention], type[BaseModel]]] = {
    "collect": (Collect, cfg.CollectConfig),
    "zero": (Zero, cfg.ZeroConfig),
    "add": (Add, cfg.AddConfig),
    "scale": (Scale, cfg.ScaleConfig),
    "replace": (Replace, cfg.ReplaceConfig),
    "noise": (Noise, cfg.NoiseConfig),
    "interchange": (Interchange, cfg.InterchangeConfig),
    "rotated": (RotatedSpace, cfg.RotatedConfig),
    "low_rank_rotated": (LowRankRotatedSpace, cfg.LowRankRotatedConfig),
    "boundless": (BoundlessRotatedSpace, cfg.BoundlessConfig),
}


def lookup(name: str) -> tuple[type[Intervention], type[BaseModel]]:
    """The class and config model registered as ``name``.

    :raises GuardchainError: ``GC-INTERVENTION-LOAD`` for a name this member does not register.
    """
    found = CATALOG.get(name)
    if found is None:
        raise intervention_error(
            InterventionErrorCode.LOAD,
            f"{name!r} is not an intervention of guardchain-interventions",
            expected=", ".join(CATALOG),
        )
    return found
