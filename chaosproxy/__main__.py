"""`python -m chaosproxy`; see `chaosproxy.cli`.

The proxy always runs under Python's ``-O``. mitmproxy type-checks every Request and
Response it builds (`MessageData.__post_init__`) and wraps each HTTP state handler in
an event-type assertion (`mitmproxy.proxy.utils.expect`) only while `__debug__` is
true; both are development checks. Without them one exchange costs about a quarter
less CPU (529 -> 395 µs per exchange under wrk, from /proc/PID/stat). The
module re-executes itself with ``-O`` before importing anything: `execv` keeps the
PID (and the parent-death signal a supervisor set), so its handle stays valid.
"""

import os
import sys

if sys.flags.optimize == 0:
    # orig_argv keeps the interpreter's own options (-X, -u, ...) and `-m chaosproxy`.
    os.execv(sys.executable, [sys.executable, "-O", *sys.orig_argv[1:]])

from chaosproxy.cli import main

sys.exit(main())
