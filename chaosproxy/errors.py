"""The chaos proxy's errors.

ChaosProxyError
 └── ConfigError   bad command line or fault file; the CLI prints it as one line, exit 2
"""

from __future__ import annotations

__all__ = ["ChaosProxyError", "ConfigError"]


class ChaosProxyError(Exception):
    """Base of the chaos proxy's own errors."""


class ConfigError(ChaosProxyError):
    """A command-line argument or fault-file field is invalid.

    The message names the field and the rule, e.g.
    ``faults[0].duration_s must be > 0, got -1``; the CLI prints it and exits 2.
    """
