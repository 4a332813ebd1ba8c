"""Registered name -> intervention class and config model: how a saved config is turned back into objects.

Derived from the one table (:mod:`guardchain.interventions.table`). Saved configs name interventions by their
registered name (never by a Python type string), so a module move never breaks a saved directory.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from pydantic import BaseModel

from guardchain.interventions.base import Intervention
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.table import BY_NAME, CONFIG_MODULE, TABLE, Entry, entry_for_config


def _load(reference: str) -> Any:
    module, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module), attr)


@cache
def resolve(entry: Entry) -> tuple[type[Intervention], type[BaseModel]]:
    """The class and config model of a table row (imported on first use)."""
    return _load(entry.implementation), _load(f"{CONFIG_MODULE}:{entry.config}")


def catalog() -> dict[str, tuple[type[Intervention], type[BaseModel]]]:
    """Every registered name -> (class, config model), in table order."""
    return {entry.name: resolve(entry) for entry in TABLE}


def lookup(name: str) -> tuple[type[Intervention], type[BaseModel]]:
    """The class and config model registered as ``name``.

    :raises GuardchainError: ``GC-INTERVENTION-LOAD`` for a name this member does not register.
    """
    entry = BY_NAME.get(name) if isinstance(name, str) else None
    if entry is None:
        raise intervention_error(
            InterventionErrorCode.LOAD,
            f"{name!r} is not an intervention of guardchain-interventions",
            expected=", ".join(BY_NAME),
        )
    return resolve(entry)


def class_for_config(config: BaseModel) -> type[Intervention]:
    """The intervention class whose registered config model ``config`` is an instance of.

    :raises GuardchainError: ``GC-INTERVENTION-LOAD`` for a config model that no row names.
    """
    kind = type(config)
    entry = entry_for_config(kind.__module__, kind.__qualname__)
    if entry is None:
        raise intervention_error(
            InterventionErrorCode.LOAD, f"{kind.__qualname__} is not the config model of a registered intervention"
        )
    return resolve(entry)[0]
