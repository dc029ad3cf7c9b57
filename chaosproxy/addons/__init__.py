"""The chaos proxy's mitmproxy addons, one concern each.

Chain order matters: `Scheduler` (matches a fault) → fault addons (apply it) →
`Recorder` (stamps and records) → `ControlApi` → `Lifecycle` (ready / done, last).
"""

from chaosproxy.addons.control import ControlApi as ControlApi
from chaosproxy.addons.faults import FAULT_ADDONS as FAULT_ADDONS
from chaosproxy.addons.faults import HttpErrorFault as HttpErrorFault
from chaosproxy.addons.faults import ResetFault as ResetFault
from chaosproxy.addons.lifecycle import Lifecycle as Lifecycle
from chaosproxy.addons.recorder import Recorder as Recorder
from chaosproxy.addons.scheduler import Scheduler as Scheduler
from chaosproxy.addons.state import Providers as Providers

__all__ = [
    "FAULT_ADDONS",
    "ControlApi",
    "HttpErrorFault",
    "Lifecycle",
    "Providers",
    "Recorder",
    "ResetFault",
    "Scheduler",
]
