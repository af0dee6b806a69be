"""Holds: stop one request of an access key at a named point until the test releases it.

A crash test arms a hold (`POST /_standin/hold`), waits for the stand-in's signal that a request
was held (`GET /_standin/held?access_key_id=…&wait=S`, a long poll), SIGKILLs the client at that
exact moment, and releases the request (`POST /_standin/release`). The kill then lands at a known
point of the client's flow instead of at a random moment.

A hold is `{"access_key_id", "operation", "stage", "after"}`:
- `operation`: the API operation to hold (`IssueCertificate`, `GetCertificate`, `PutItem`, …).
- `stage`: `"request"` holds it before it reaches the backend (AWS has not seen it);
  `"answer"` lets the backend process it and holds the answer (AWS acted, the client does not
  know yet);
  `"body"` lets the backend process it, sends the answer's status line and headers, and holds
  its body (a stalled transfer: the client sees the answer begin, then no byte for as long as
  the hold lasts).
- `after` (optional): hold only a request that comes after an answered request of this
  operation, e.g. `{"operation": "UpdateItem", "after": "IssueCertificate"}` holds the first
  UpdateItem sent once IssueCertificate was answered.
A hold is one-shot: it holds one request, then it is spent, so the client's rerun runs freely.
Release actions: `"proceed"` (the request goes on: reaches the backend, or its answer is sent)
or `"drop"` (the connection is closed without an answer, or mid-answer for `"body"`; a request
held at `"request"` never reaches the backend). `POST /moto-api/reset` and `POST /_standin/holds/reset` drop every held
request and disarm every hold.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .config import ConfigError

STAGES = ("request", "answer", "body")
ACTIONS = ("proceed", "drop")


class Held:
    """One held request: its thread waits on `released` and reports `done` when it went on."""

    def __init__(self, hid: int, akid: str, operation: str, stage: str) -> None:
        self.id = hid
        self.akid = akid
        self.operation = operation
        self.stage = stage
        self.action = "drop"
        self.released = threading.Event()
        self.done = threading.Event()

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "access_key_id": self.akid, "operation": self.operation, "stage": self.stage}


class Holds:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._armed: dict[str, dict[str, Any]] = {}  # akid -> hold (one per key)
        self._seen_after: set[str] = set()  # keys whose `after` operation was answered since arming
        self._held: dict[str, list[Held]] = {}  # akid -> held requests not yet released
        self._log: dict[str, list[dict[str, Any]]] = {}  # akid -> every request held since arming
        self._pending: list[Held] = []  # held at "answer"/"body", the backend not done yet

    def arm(self, body: dict[str, Any]) -> dict[str, Any]:
        akid = body.get("access_key_id")
        op = body.get("operation")
        stage = body.get("stage", "request")
        after = body.get("after")
        unknown = set(body) - {"access_key_id", "operation", "stage", "after"}
        if unknown:
            raise ConfigError(f"unknown hold field(s) {sorted(unknown)}")
        if not isinstance(akid, str) or not akid:
            raise ConfigError("a hold needs an access_key_id (holds are per access key)")
        if not isinstance(op, str) or not op:
            raise ConfigError("a hold needs an operation")
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}")
        if after is not None and (not isinstance(after, str) or not after):
            raise ConfigError("after must be an operation name or null")
        hold = {"operation": op, "stage": stage, "after": after}
        with self._cond:
            self._armed[akid] = hold
            self._seen_after.discard(akid)
            self._log[akid] = []
        return {"armed": {"access_key_id": akid, **hold}}

    def take(self, akid: str | None, operation: str | None) -> Held | None:
        """The hold this request falls under (it is then spent), or None."""
        if akid is None or operation is None or not self._armed:
            return None
        with self._cond:
            hold = self._armed.get(akid)
            if hold is None or hold["operation"] != operation:
                return None
            if hold["after"] is not None and akid not in self._seen_after:
                return None
            del self._armed[akid]
            held = Held(next(self._ids), akid, operation, hold["stage"])
            if held.stage == "request":
                self._publish(held)
            else:
                self._pending.append(held)
            return held

    def _publish(self, held: Held) -> None:
        """Makes `held` visible to `held()` and `release()` (the caller holds the lock)."""
        self._held.setdefault(held.akid, []).append(held)
        self._log.setdefault(held.akid, []).append(held.view())
        self._cond.notify_all()

    def acted(self, held: Held) -> None:
        """The backend has acted on a request held at "answer" or "body": only now does the test
        see it held, so what the backend holds is settled when `GET /held` answers."""
        with self._cond:
            if held in self._pending:
                self._pending.remove(held)
                self._publish(held)

    def answered(self, akid: str | None, operation: str | None) -> None:
        """A request was answered: satisfies an armed hold's `after` condition."""
        if akid is None or operation is None or not self._armed:
            return
        with self._cond:
            hold = self._armed.get(akid)
            if hold is not None and hold["after"] == operation:
                self._seen_after.add(akid)

    def wait_released(self, held: Held) -> str:
        """Blocks the request's thread until the test releases it; returns the action."""
        held.released.wait()
        return held.action

    def held(self, akid: str, wait: float) -> dict[str, Any]:
        """The requests of `akid` held now, waiting up to `wait` seconds for one to be held."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._held.get(akid)), timeout=max(0.0, wait))
            return {
                "held": [h.view() for h in self._held.get(akid, [])],
                "armed": self._armed.get(akid),
                "history": list(self._log.get(akid, [])),
            }

    def release(self, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        akid = body.get("access_key_id")
        action = body.get("action", "proceed")
        if not isinstance(akid, str) or not akid:
            raise ConfigError("release needs an access_key_id")
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {', '.join(ACTIONS)}")
        with self._cond:
            held = self._held.pop(akid, [])
        for h in held:
            h.action = action
            h.released.set()
        # Answer once each released request went on (reached the backend, or its answer or drop
        # was written), so the caller can rely on what the backend holds.
        finished = all(h.done.wait(timeout) for h in held)
        return {"released": [h.view() for h in held], "action": action, "finished": finished}

    def reset(self) -> None:
        with self._cond:
            held = [h for hs in self._held.values() for h in hs] + self._pending
            self._pending = []
            self._armed.clear()
            self._seen_after.clear()
            self._held.clear()
            self._log.clear()
        for h in held:
            h.action = "drop"
            h.released.set()


HOLDS = Holds()
