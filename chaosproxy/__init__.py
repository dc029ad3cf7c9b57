"""The chaos proxy: one mitmproxy process with a reverse listener per provider, faults
applied on a schedule, every exchange recorded in the run directory's shards.

Layout: `faults` (the fault vocabulary and fault-file parsing, pure), `presets` (real
provider failures by name), `matching` (matchers, token bucket, pure), `schedule` (the
timeline and composition, pure), `rewrite` (bodies the faults send, pure), `exchange`
(JSON-RPC parsing and outcome classification, pure), `config` (the listeners and
`Config`, pure), `addons/` (one mitmproxy addon per concern), `mitm_internals` (the
only use of non-public mitmproxy names), `app` (the lean Master), `cli` (`python -m
chaosproxy`).
"""

from chaosproxy.cli import main as main
from chaosproxy.cli import parse_args as parse_args
from chaosproxy.config import Config as Config
from chaosproxy.config import Listener as Listener
from chaosproxy.errors import ChaosProxyError as ChaosProxyError
from chaosproxy.errors import ConfigError as ConfigError
from chaosproxy.faults import FaultSpec as FaultSpec
from chaosproxy.faults import load_faults as load_faults
from chaosproxy.faults import parse_faults as parse_faults
from chaosproxy.schedule import Timeline as Timeline

__all__ = [
    "ChaosProxyError",
    "Config",
    "ConfigError",
    "FaultSpec",
    "Listener",
    "Timeline",
    "load_faults",
    "main",
    "parse_args",
    "parse_faults",
]
