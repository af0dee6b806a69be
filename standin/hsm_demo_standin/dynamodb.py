"""Makes moto's DynamoDB transactions isolated under concurrent requests.

moto 5.2.5's `transact_write_items` applies its actions one by one and, when one condition fails,
restores a deep copy of each table taken when *it* started (`self.tables[name] = backup`). Its
threaded server runs requests concurrently, so (a) readers see half-applied transactions, and
(b) a cancelled transaction silently reverts writes that other requests committed meanwhile —
e.g. two runners recording the same certificate: the loser's cancellation wiped part of the
winner's record. AWS serialises transactions against every other write and read of their items.
Here every data-plane call of the backend runs under one lock (moto is GIL-bound anyway).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()

_METHODS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _METHODS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None or getattr(original, "_standin", False):
            continue

        def make(orig: Any) -> Any:
            @functools.wraps(orig)
            def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
                with _LOCK:
                    return orig(self, *args, **kwargs)

            locked._standin = True  # type: ignore[attr-defined]
            return locked

        setattr(DynamoDBBackend, name, make(original))
