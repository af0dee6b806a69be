"""DynamoDB transactions isolated from concurrent requests (hsm-demo's registry records a
certificate with ONE TransactWriteItems while other runners read and write the same table).

Stock moto 5.2.5 applies a transaction's actions one by one and, when a condition fails, restores
a copy of the whole table taken when that transaction started: concurrent readers see half a
transaction, and a cancelled transaction wipes writes other requests committed meanwhile. This
test fails there (half-written keys seen, committed items lost).

It runs on a stand-in of its own that pauses 2 ms after each action of a transaction
(STANDIN_TEST_TX_ACTION_PAUSE): the pause releases the interpreter lock, so without the stand-in's
DynamoDB data-plane lock a reader or a competing writer runs inside a transaction on every run
(without the pause, transactions are too short for the race to show: it passed 8 of 8 runs with
the lock removed). With the lock, the pause only slows this server down.
"""

import os
import threading

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing

KEYS = 25
WRITERS = 6


@pytest.fixture
def paused_endpoint():
    server = testing.start_server(
        extra_env={"STANDIN_TEST_TX_ACTION_PAUSE": "0.002"},
        stock=os.environ.get("STANDIN_TEST_STOCK") == "1",
    )
    yield server.url
    server.stop()


def test_transactions_are_atomic_and_cancellations_lose_no_other_writes(paused_endpoint):
    endpoint = paused_endpoint
    ddb = testing.client(endpoint, service="dynamodb")
    table = "isolation-test"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    problems: list[str] = []
    winners = [0] * KEYS
    lock = threading.Lock()
    done = threading.Event()
    plain_written: list[str] = []

    def put(k: int, sk: str) -> dict:
        return {"Put": {"TableName": table, "Item": {"pk": {"S": f"k{k}"}, "sk": {"S": sk}},
                        "ConditionExpression": "attribute_not_exists(pk)"}}

    def writer() -> None:
        c = testing.client(endpoint, service="dynamodb")
        for k in range(KEYS):
            try:
                c.transact_write_items(TransactItems=[put(k, "A"), put(k, "B"), put(k, "C")])
                with lock:
                    winners[k] += 1
            except ClientError as e:
                if e.response["Error"]["Code"] != "TransactionCanceledException":
                    problems.append(f"k{k}: {e}")

    def reader() -> None:
        c = testing.client(endpoint, service="dynamodb")
        while not done.is_set():
            for k in range(KEYS):
                n = c.query(TableName=table, KeyConditionExpression="pk = :p",
                            ExpressionAttributeValues={":p": {"S": f"k{k}"}}, ConsistentRead=True)["Count"]
                if n not in (0, 3):
                    problems.append(f"k{k}: read half a transaction ({n} of 3 items)")

    def plain() -> None:
        c = testing.client(endpoint, service="dynamodb")
        i = 0
        while not done.is_set():
            c.put_item(TableName=table, Item={"pk": {"S": f"plain{i}"}, "sk": {"S": "x"}})
            plain_written.append(f"plain{i}")
            i += 1

    background = [threading.Thread(target=reader), threading.Thread(target=plain)]
    writers = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in background + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in background:
        t.join()

    assert winners == [1] * KEYS, winners
    for k in range(KEYS):
        n = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": f"k{k}"}}, ConsistentRead=True)["Count"]
        if n != 3:
            problems.append(f"k{k}: {n} of 3 committed items left")
    lost = [p for p in plain_written
            if "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": p}, "sk": {"S": "x"}}, ConsistentRead=True)]
    if lost:
        problems.append(f"{len(lost)} of {len(plain_written)} committed PutItems lost: {lost[:5]}")
    assert plain_written
    assert not problems, problems[:10]
