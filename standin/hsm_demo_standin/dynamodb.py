"""Makes moto's DynamoDB transactions isolated under concurrent requests.

moto 5.2.5's `transact_write_items` applies its actions one by one and, when one condition fails,
restores a deep copy of each table taken when *it* started (`self.tables[name] = backup`). Its
threaded server runs requests concurrently, so (a) readers see half-applied transactions, and
(b) a cancelled transaction silently reverts writes that other requests committed meanwhile —
e.g. two runners recording the same certificate: the loser's cancellation wiped part of the
winner's record. AWS serialises transactions against every other write and read of their items.
Here every data-plane call of the backend runs under one lock (moto is GIL-bound anyway).

Two more costs of stock moto grow with the table, and hsm-demo pays both for every device:

* `transact_write_items` takes its rollback copy with `copy.deepcopy(self.tables[name])` — the
  WHOLE table, every item — at the start of every transaction, committed or not. hsm-demo records
  each certificate in one TransactWriteItems, so device n costs O(n) time and allocates a copy of
  the n-1 devices before it (stand-in RSS 2.6 GiB after 200 devices, 6.9 GiB after 800). Here the
  transaction keeps an undo log instead: before any action is applied it deep-copies only the items
  its actions name (at most 100) or notes their absence, applies the actions as moto does, and on
  cancellation puts exactly those items back (same position in their partition; stream records the
  transaction appended are dropped, as stock moto's table restore dropped them). Untouched items —
  and so anything other requests wrote — are never reverted. The conditions, their order, and the
  CancellationReasons are moto's own code, unchanged.
* `Table.query` on the base table builds a list of ALL items (`all_items()`) and keeps those whose
  hash key matches. Here a base-table Query reads only its partition (`table.items[hash_key]`);
  the sort, paging, filters and projections after that are moto's. (Index queries stay a scan of
  the table, as in moto.)

GetItem, PutItem, UpdateItem and DeleteItem are dictionary look-ups in moto (O(1)); Scan is O(table)
by nature; DescribeTable counts the partitions (hsm-demo calls it once per run).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import threading
import time
from typing import Any

_LOCK = threading.RLock()

# Test-only (tests/test_dynamodb_isolation.py): seconds to pause after each action of a
# TransactWriteItems, so that without `_LOCK` a concurrent request lands inside a transaction on
# every run instead of by luck. 0 (the default) in every other use.
_TX_ACTION_PAUSE = float(os.environ.get("STANDIN_TEST_TX_ACTION_PAUSE", "0") or 0)

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


def _table_for(backend: Any, name: Any) -> Any:
    from moto.dynamodb.exceptions import ResourceNotFoundException

    if not isinstance(name, str):
        return None
    try:
        return backend.get_table(name)
    except ResourceNotFoundException:
        return None


def _touched_key(table: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any] | None:
    """(hash, range) of the item a transaction action names, as moto will look it up; None when the
    action names no well-formed key (moto then fails that action before it writes anything)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    src = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(src, dict) or table.hash_key_attr not in src:
        return None
    try:
        hash_key = DynamoType(src[table.hash_key_attr])
        range_key = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in src:
                return None
            range_key = DynamoType(src[table.range_key_attr])
        hash(hash_key)
        hash(range_key)
    except Exception:  # noqa: BLE001 - malformed value: moto rejects the action itself
        return None
    return hash_key, range_key


def _reorder(d: dict[Any, Any], order: list[Any]) -> None:
    """Puts the keys of `d` back in `order` (keys not in it last), in place; no-op when they are."""
    keys = list(d.keys())
    known = set(order)
    want = [k for k in order if k in d] + [k for k in keys if k not in known]
    if keys == want:
        return
    entries = [(k, d[k]) for k in want]
    d.clear()
    d.update(entries)


class _UndoLog:
    """The items one transaction may write, as they were before it started."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        # (id(table), hash, range) -> (table, hash, range, deep copy of the item or None if absent)
        self.items: dict[tuple[int, Any, Any], tuple[Any, Any, Any, Any]] = {}
        self.bucket_existed: dict[tuple[int, Any], bool] = {}
        self.bucket_order: dict[tuple[int, Any], list[Any]] = {}
        self.top_order: dict[int, list[Any]] = {}
        self.stream_len: dict[int, int] = {}

    def remember(self, op_type: str, op: dict[str, Any]) -> None:
        name = op.get("TableName")
        table = _table_for(self.backend, name)
        key = _touched_key(table, op_type, op) if table is not None else None
        if key is None:
            # No table, or no well-formed key: moto fails this action in its key look-up
            # (get_keys_value / attrs[hash_key_attr]) before it can write anything.
            return
        hash_key, range_key = key
        tid = id(table)
        if table.stream_shard is not None:
            self.stream_len.setdefault(tid, len(table.stream_shard.items))
        if (tid, hash_key, range_key) in self.items:
            return
        if range_key is None:
            current = table.items.get(hash_key)
            if op_type == "Delete" and current is not None and tid not in self.top_order:
                self.top_order[tid] = list(table.items.keys())
        else:
            bucket = table.items.get(hash_key)
            if (tid, hash_key) not in self.bucket_existed:
                self.bucket_existed[(tid, hash_key)] = bucket is not None
                self.bucket_order[(tid, hash_key)] = list(bucket.keys()) if bucket is not None else []
            current = bucket.get(range_key) if bucket is not None else None
        saved = copy.deepcopy(current) if current is not None else None
        self.items[(tid, hash_key, range_key)] = (table, hash_key, range_key, saved)

    def restore(self) -> None:
        tables: dict[int, Any] = {}
        for (tid, hash_key, range_key), (table, _, _, saved) in self.items.items():
            if self.backend.tables.get(table.name) is not table:
                continue  # deleted meanwhile (cannot happen under _LOCK)
            tables[tid] = table
            if range_key is None:
                if saved is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = saved
                continue
            bucket = table.items.get(hash_key)
            if saved is None:
                if bucket is not None:
                    bucket.pop(range_key, None)
            else:
                table.items[hash_key][range_key] = saved
        for (tid, hash_key), existed in self.bucket_existed.items():
            table = tables.get(tid)
            if table is None:
                continue
            bucket = table.items.get(hash_key)
            if bucket is None:
                continue
            if not bucket and not existed:
                del table.items[hash_key]
            else:
                _reorder(bucket, self.bucket_order[(tid, hash_key)])
        for tid, order in self.top_order.items():
            if tid in tables:
                _reorder(tables[tid].items, order)
        for tid, n in self.stream_len.items():
            table = tables.get(tid)
            if table is not None and table.stream_shard is not None:
                del table.stream_shard.items[n:]


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's DynamoDBBackend.transact_write_items with an undo log of the touched items in
    place of its `copy.deepcopy` of every table the transaction names (see the module docstring).
    Everything else — the unicity check, the order in which actions are checked and applied, the
    errors collected per action, the cancellation — is moto's code."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    # The rollback record: only the items the actions name.
    undo = _UndoLog(self)
    for item in transact_items:
        if not isinstance(item, dict) or len(item) != 1:
            continue  # moto's loop below raises TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type in {"ConditionCheck", "Put", "Delete", "Update"} and isinstance(op, dict):
            undo.remember(op_type, op)

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException

        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")

            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]

            check_unicity(table_name, key)

            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type == "Put":
                attrs = op["Item"]
                self.put_item(
                    table_name,
                    attrs,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                update_expression = op["UpdateExpression"]
                self.update_item(
                    table_name,
                    key,
                    update_expression=update_expression,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
            if _TX_ACTION_PAUSE:
                time.sleep(_TX_ACTION_PAUSE)
        except (MultipleTransactionsException, MockValidationException):
            undo.restore()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - moto collects every other error as a reason
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]

    if any(code is not None for code, _, _ in errors):
        undo.restore()
        raise TransactionCanceledException(errors)


def _install_query_partition() -> None:
    """Base-table Query reads its partition only (stock moto walks every item of the table)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_standin", False):
        return
    orig_all_items = Table.all_items
    orig_query = Table.query
    sig = inspect.signature(orig_query)

    def all_items(self: Any) -> Any:
        only = self.__dict__.get("_standin_partition")
        if only is None:
            return orig_all_items(self)
        bucket = self.items.get(only[0])
        if bucket is None:
            return []
        return list(bucket.values()) if self.range_key_attr else [bucket]

    @functools.wraps(orig_query)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        if bound.arguments.get("index_name") or hash_key is None:
            return orig_query(self, *args, **kwargs)
        try:
            hash(hash_key)
        except TypeError:
            return orig_query(self, *args, **kwargs)
        self.__dict__["_standin_partition"] = (hash_key,)
        try:
            return orig_query(self, *args, **kwargs)
        finally:
            self.__dict__.pop("_standin_partition", None)

    all_items._standin = True  # type: ignore[attr-defined]
    query._standin = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


def install(speedups: bool = True) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    from . import dynamodb_fast, dynamodb_tokens

    if speedups:
        dynamodb_fast.install()
    dynamodb_tokens.install()
    _install_query_partition()
    current = DynamoDBBackend.transact_write_items
    if not getattr(current, "_standin", False) and not getattr(current, "_standin_undo", False):
        transact_write_items._standin_undo = True  # type: ignore[attr-defined]
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

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
