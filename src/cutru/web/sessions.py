"""Who is visiting, and what they have declared during their session.

The session itself is the guard's: the cookie holds the token of ``Guard.login`` and every
request is authenticated by ``Guard.caller`` (so expiry and logout are the guard's). This
module keeps, in memory and keyed by the token's hash, what the web adds to a session: the
purposes declared in it (per case, newest first) and one-time notices. A restart forgets them;
the next page that needs personal data asks for the purpose again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cutru.access.decision import Declaration

MAX_SESSIONS = 10_000
MAX_DECLARED = 8


@dataclass(frozen=True)
class Declared:
    """A purpose declared in a session: its name and, as it requires, basis and case."""

    kind: str
    legal_basis: str = ""
    case_number: str = ""

    @property
    def label(self) -> str:
        return " · ".join(p for p in (self.kind, self.legal_basis, self.case_number) if p)


@dataclass
class SessionState:
    declared: list[Declared] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def declare(self, item: Declared) -> None:
        """Remember a declaration; declaring the same case again makes it current."""
        self.declared = [item, *(d for d in self.declared if d != item)][:MAX_DECLARED]


class SessionStore:
    """The web's part of each live session, bounded in size (oldest forgotten first)."""

    def __init__(self) -> None:
        self._states: OrderedDict[str, SessionState] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> SessionState:
        key = self._key(token)
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = SessionState()
                while len(self._states) > MAX_SESSIONS:
                    self._states.popitem(last=False)
            self._states.move_to_end(key)
            return state

    def drop(self, token: str) -> None:
        with self._lock:
            self._states.pop(self._key(token), None)


class PurposeNeeded(Exception):
    """The page needs a declared purpose that allows ``action``: ask for it, then return."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


def choose(state: SessionState, purposes: list[dict[str, Any]], action: str) -> Declared:
    """The newest declaration of this session whose purpose allows ``action``. A principal
    with exactly one such purpose that requires nothing (a citizen's own information) has it
    declared for them; otherwise :class:`PurposeNeeded`."""
    allowing = {p["name"]: p for p in purposes if action in p["actions"]}
    for item in state.declared:
        if item.kind in allowing:
            return item
    if len(allowing) == 1:
        only = next(iter(allowing.values()))
        if not only["requires"]:
            item = Declared(only["name"])
            state.declare(item)
            return item
    raise PurposeNeeded(action)


def declaration(guard_declare: Any, item: Declared) -> Declaration:
    """The guard's declaration of a remembered purpose."""
    result = guard_declare(item.kind, legal_basis=item.legal_basis or None,
                           case_number=item.case_number or None)
    assert isinstance(result, Declaration)
    return result
