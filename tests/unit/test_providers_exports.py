"""Pins the public surface of providers: what scenarios and the CLI may use."""

import types

import providers


def test_the_package_exports_exactly_its_public_names():
    public = {
        n
        for n in dir(providers)
        if not n.startswith("_") and not isinstance(getattr(providers, n), types.ModuleType)
    }
    assert public == set(providers.__all__)


def test_running_a_provider_module_does_not_import_it_twice():
    # `python -m providers.anvil` warns if the package __init__ already imported it.
    import subprocess
    import sys

    for module in ("providers.anvil", "providers.mock"):
        r = subprocess.run(
            [sys.executable, "-W", "error", "-m", module, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0 and "RuntimeWarning" not in r.stderr, (module, r.stderr)
