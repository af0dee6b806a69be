#!/usr/bin/env python3
"""The read capacity a full Scan of a registry table consumes on DynamoDB, computed from its items.

  ddb-read-cost.py ENDPOINT TABLE     (the project venv's python: boto3)

hsm-demo does not ask DynamoDB for ConsumedCapacity, and the stand-in (moto) would not compute it
faithfully anyway, so this reads every item of the table (a Scan of its own, full items) and
applies DynamoDB's published rules:
  - item size = the sum over attributes of the name's UTF-8 length + the value's size (S: UTF-8
    length; B: bytes; N: one byte per two significant digits (rounded up) + 1; BOOL/NULL: 1; M/L: 3 + one
    byte per element + the elements; sets: the sum of their members);
  - a Scan page reads up to 1 MB of items (before any filter or projection: both save transfer,
    not capacity); a page costs its items' total size rounded up to 4 KB, 0.5 read request unit
    per 4 KB eventually consistent (hsm-demo's Scans do not ask for strong consistency), 1 if
    strongly consistent.
Pages are simulated in the order the stand-in returns the items (DynamoDB's order differs; the
total moves by at most one 4 KB round-up per page).

Prints key=value: items, current_items, bytes, pages, rru (eventually consistent), rru_strong,
and bytes_by_kind (CURRENT, CERT, INTENT, SERIAL, else the partition key's prefix such as KEY)
as kind:bytes:count lists.
"""
import math
import sys
from decimal import Decimal

import boto3

PAGE = 1024 * 1024
UNIT = 4096


def num_size(v: str) -> int:
    d = Decimal(v).normalize()
    digits = len(d.as_tuple().digits)
    return (digits + 1) // 2 + 1


def value_size(v: dict) -> int:
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "B":
        return len(x)
    if t == "N":
        return num_size(x)
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(s.encode()) for s in x)
    if t == "NS":
        return sum(num_size(s) for s in x)
    if t == "BS":
        return sum(len(b) for b in x)
    if t == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    raise ValueError(f"attribute type {t}")


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def kind(item: dict) -> str:
    sk = item.get("sk", {}).get("S", "")
    pk = item.get("pk", {}).get("S", "")
    if sk == "CURRENT":
        return "CURRENT"
    for p in ("CERT#", "INTENT#", "CA#"):
        if sk.startswith(p):
            return {"CA#": "SERIAL"}.get(p, p.rstrip("#"))
    return pk.split("#", 1)[0] or "other"


def main() -> None:
    endpoint, table = sys.argv[1], sys.argv[2]
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    sizes: list[int] = []
    kinds: dict[str, list[int]] = {}
    kwargs = {"TableName": table}
    while True:
        r = ddb.scan(**kwargs)
        for it in r["Items"]:
            s = item_size(it)
            sizes.append(s)
            k = kinds.setdefault(kind(it), [0, 0])
            k[0] += s
            k[1] += 1
        if "LastEvaluatedKey" not in r:
            break
        kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    pages, units, page_bytes = 0, 0, 0
    for s in sizes:
        page_bytes += s
        if page_bytes >= PAGE:
            pages += 1
            units += math.ceil(page_bytes / UNIT)
            page_bytes = 0
    if page_bytes or not pages:
        pages += 1
        units += math.ceil(page_bytes / UNIT)
    by_kind = ",".join(f"{k}:{v[0]}:{v[1]}" for k, v in sorted(kinds.items()))
    print(
        f"items={len(sizes)} current_items={kinds.get('CURRENT', [0, 0])[1]} bytes={sum(sizes)} "
        f"pages={pages} rru={units * 0.5} rru_strong={units} bytes_by_kind={by_kind}"
    )


if __name__ == "__main__":
    main()
