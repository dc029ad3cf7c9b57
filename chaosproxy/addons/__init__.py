"""The chaos proxy's mitmproxy addons, one concern each.

Chain order matters: `UpstreamPaths` (only when a listener's upstream has a path) →
`Scheduler` (selects faults) → `HttpFaults` (applies them) → `Recorder` (stamps and
records) → `WsFaults` (with `WsCalls`: calls over WebSockets) → `RefuseListeners` →
`Health` → `ControlApi` → `Lifecycle` (ready / done, last).
"""

from chaosproxy.addons.control import ControlApi as ControlApi
from chaosproxy.addons.faults import HttpFaults as HttpFaults
from chaosproxy.addons.health import Health as Health
from chaosproxy.addons.lifecycle import Lifecycle as Lifecycle
from chaosproxy.addons.listener import RefuseListeners as RefuseListeners
from chaosproxy.addons.recorder import Recorder as Recorder
from chaosproxy.addons.scheduler import Scheduler as Scheduler
from chaosproxy.addons.state import Providers as Providers
from chaosproxy.addons.websocket import WsFaults as WsFaults

__all__ = [
    "ControlApi",
    "Health",
    "HttpFaults",
    "Lifecycle",
    "Providers",
    "Recorder",
    "RefuseListeners",
    "Scheduler",
    "WsFaults",
]
