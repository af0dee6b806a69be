"""TransactWriteItems honours ClientRequestToken, as DynamoDB does (stock moto 5.2.5 ignores it).

The AWS SDKs fill the token in (a UUID) and resend it on every retry of the same call. DynamoDB
keeps it for 10 minutes after the call that used it completed (switch
`transact_token_window_seconds`, default 600):
- the same token with the same TransactItems: answered with success, nothing applied again (a retried
  transaction whose first attempt committed but whose answer was lost succeeds, as on AWS);
- the same token with other TransactItems: HTTP 400 IdempotentParameterMismatchException.
Only committed transactions are remembered: a cancelled one changed nothing, so its retry is
evaluated afresh. Tokens are per account and region (the DynamoDB backend) and cleared by
`POST /moto-api/reset` with the tables. A token outside 1..36 characters is a ValidationException
(the model's length constraint).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any

DEFAULT_WINDOW_SECONDS = 600.0


def _digest(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _store(backend: Any) -> OrderedDict[str, tuple[str, float]]:
    store = backend.__dict__.get("_standin_tokens")
    if store is None:
        store = backend.__dict__["_standin_tokens"] = OrderedDict()
    return store


def _prune(store: OrderedDict[str, tuple[str, float]], now: float, keep: float) -> None:
    """Drops tokens older than `keep` seconds (the store is in completion order)."""
    while store:
        token, (_, stamp) = next(iter(store.items()))
        if now - stamp < keep:
            return
        del store[token]


def install() -> None:
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException, MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    from .config import SWITCHES
    from .dynamodb import _LOCK

    class IdempotentParameterMismatchException(DynamodbException):
        error_type = ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException"

        def __init__(self, message: str):
            super().__init__(self.error_type, message=message)

    original = DynamoHandler.transact_write_items
    if getattr(original, "_standin", False):
        return

    @functools.wraps(original)
    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if token is None:
            return original(self)
        if not isinstance(token, str) or not 1 <= len(token) <= 36:
            raise MockValidationException(
                "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: "
                "Member must have length between 1 and 36"
            )
        digest = _digest(self.body.get("TransactItems"))
        window = float(SWITCHES.get()["transact_token_window_seconds"])
        store = _store(self.dynamodb_backend)
        with _LOCK:
            now = time.monotonic()
            _prune(store, now, max(window, DEFAULT_WINDOW_SECONDS))
            seen = store.get(token)
            if seen is not None and now - seen[1] < window:
                if seen[0] != digest:
                    raise IdempotentParameterMismatchException(
                        "Request parameters do not match the parameters of the request previously made with "
                        "the same client token."
                    )
                from moto.core.responses import ActionResult

                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
            result = original(self)
            store.pop(token, None)
            store[token] = (digest, time.monotonic())
            return result

    transact_write_items._standin = True  # type: ignore[attr-defined]
    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]
