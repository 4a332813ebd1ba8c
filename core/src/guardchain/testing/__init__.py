"""guardchain's conformance kit, for first-party and third-party plugins alike.

Enable the fixtures in a plugin's test suite with ``pytest_plugins = ["guardchain.testing.fixtures"]`` and
subclass one contract class per capability::

    from guardchain.testing import GuardContract

    class TestAcmeGuard(GuardContract):
        name = "acme_guard"

        @pytest.fixture
        def baseline(self, ...):
            ...  # a ModelHandle from your adapter

Every ``test_*`` method of the contract then runs against your capability. Requires pytest
(``pip install guardchain-core[testing]``).
"""

from guardchain.testing.contracts import (
    AdapterContract,
    CapabilityContract,
    DatasetContract,
    EditContract,
    GuardContract,
    InterventionContract,
    MetricContract,
    PluginContract,
)

__all__ = [
    "AdapterContract",
    "CapabilityContract",
    "DatasetContract",
    "EditContract",
    "GuardContract",
    "InterventionContract",
    "MetricContract",
    "PluginContract",
]
