"""`python -m chaosproxy`; see `chaosproxy.cli`."""

import sys

from chaosproxy.cli import main

sys.exit(main())
