"""pytest fixtures of the conformance kit: enable with ``pytest_plugins = ["guardchain.testing.fixtures"]``.

Scopes: the registry factory lives for the session and the registry for a test module, so that a module-scoped
fixture (a model loaded once) can depend on them; run contexts are per test unless named ``*_model_context``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings

RegistryFactory = Callable[..., Registry]


@pytest.fixture(scope="session")
def guardchain_registry_factory() -> RegistryFactory:
    """Build isolated registries: from plugin objects in memory, or from (injected) entry points.

    ``make(plugins={"name": module})`` registers objects; ``make()`` discovers installed entry points;
    ``make(entry_points=[...])`` loads exactly those; ``settings=`` sets allow/block lists and tracing (default:
    none, whatever the environment says).
    """

    def make(
        plugins: Mapping[str, object] | None = None,
        *,
        entry_points: Iterable[EntryPoint] | None = None,
        settings: RegistrySettings | None = None,
    ) -> Registry:
        settings = settings or RegistrySettings()
        if plugins is not None:
            return Registry.from_plugins(plugins, settings)
        if entry_points is not None:
            eps = list(entry_points)
            return Registry.discover(settings, entry_points_source=lambda: eps)
        return Registry.discover(settings)

    return make


@pytest.fixture(scope="module")
def guardchain_registry(guardchain_registry_factory: RegistryFactory) -> Registry:
    """The registry of every installed plugin, ignoring ``GUARDCHAIN_*`` allow/block variables (one per test
    module, so that module-scoped fixtures, such as one loading a model, may use it)."""
    return guardchain_registry_factory()


@pytest.fixture(scope="module")
def guardchain_model_context(guardchain_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """A run context (seed 0) for module-scoped fixtures that load a model once."""
    out_dir = tmp_path_factory.mktemp("guardchain-model")
    return RunContext(run_id="contract-model", seed=0, out_dir=out_dir, registry=guardchain_registry)


@pytest.fixture
def guardchain_run_context(tmp_path: Path) -> RunContext:
    """A run context with seed 0 writing under a temporary directory."""
    return RunContext(run_id="contract-test", seed=0, out_dir=tmp_path / "run")
