"""The lock protocol beside StateStore: leases shared by a fleet of hosts.

A lease is an exclusive, expiring claim on a name: taken with an owner value (the holder's
record, which carries a random token), kept by renewing it before it expires, given back by
compare-and-delete (only the owner's value is deleted, never another owner's). Taking a lease
also draws a fencing token: an integer strictly increasing per lock name, which the holder
hands to what it writes so that a stale holder can be refused (see docs/DESIGN.md, "Fleet
locks").

Only shared backends implement it (Redis: ``state/redislease.py``); ``open_leases`` in
``reliactl.state`` is the one place that knows which. Nothing above ``state/`` knows the
backend: ``reliactl.locks`` turns a Lease into the lock ``run`` holds.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Protocol
else:  # without dataclasses and typing on a fleet lock's start (issue 21; see _records)
    from reliactl._records import dataclass

    Protocol = object  # the type checker reads the protocols below as typing.Protocol


@dataclass(frozen=True)
class LeaseBusy:
    """Someone else holds the lease: their record as stored, and how long it still runs."""

    holder: str  # the owner value (the holder's JSON line); "" when it vanished meanwhile
    expires_in: float | None  # seconds until the lease expires unless renewed (None: unknown)


class Lease(Protocol):
    """A lease this process holds."""

    @property
    def name(self) -> str:
        """The lock name."""

    @property
    def fencing_token(self) -> int:
        """Strictly increasing per lock name across every holder (and backend restarts)."""

    def renew(self, seconds: float) -> bool:
        """Extend the lease to ``seconds`` from now if it is still ours: True; False when it
        is gone (expired, deleted) or another owner's. Raises StateError when the backend
        cannot answer (within its timeouts)."""

    def release(self) -> bool:
        """Delete the lease if it is still ours (compare-and-delete): True if deleted.
        Raises StateError when the backend cannot answer."""


class LeaseService(Protocol):
    """Where leases live (one shared backend)."""

    @property
    def location(self) -> str:
        """Where the leases live (a URL without password)."""

    @property
    def call_bound(self) -> float:
        """The longest one call may take before it fails (connect + reply timeouts)."""

    def acquire(self, name: str, owner: str, seconds: float) -> Lease | LeaseBusy:
        """Take the lease ``name`` for ``seconds`` with the owner value ``owner`` (unique per
        attempt: it carries a random token; never sent twice) if nobody holds it; else say
        who does. Raises StateError when the backend cannot answer (within its timeouts),
        after giving back (best effort) what the unanswered call may have taken."""

    def close(self) -> None:
        """Release the connection."""
