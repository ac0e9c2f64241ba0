"""The host name reliactl records (runs, lock holders, breaker events, alerts): one owner.

``RELIACTL_HOSTNAME`` overrides the kernel's node name. Containers and cloud images often
share one node name across a fleet, and tests simulate several hosts on one machine; both need
every record to say which "host" wrote it. Read on every call (cheap: no socket import).
"""

from __future__ import annotations

import os

ENV_VAR = "RELIACTL_HOSTNAME"


def hostname() -> str:
    """``$RELIACTL_HOSTNAME`` when set and not blank, else the kernel's node name."""
    override = os.environ.get(ENV_VAR, "").strip()
    return override or os.uname().nodename
