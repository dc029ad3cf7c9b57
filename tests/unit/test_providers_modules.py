"""Running a provider module as a program (its surface is pinned in test_exports.py)."""


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
