"""DynamoDB transactions and base-table queries cost O(items touched), not O(table size).

Stock moto 5.2.5's `transact_write_items` deep-copies every table the transaction names (its
rollback copy) at the start of every transaction, and `Table.query` walks every item of the table
to find one partition. hsm-demo records each device in one TransactWriteItems and reads it with a
Query, so the stand-in slowed down and grew with every device (6.9 GiB after 800 devices). The
stand-in keeps an undo log of only the touched items and reads only the queried partition.

The first tests drive moto's backend in-process (deterministic counts instead of timings); with
STANDIN_TEST_STOCK=1 they run against stock moto, where they fail. The last one goes over HTTP.
"""

import copy

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing

from .conftest import STOCK


@pytest.fixture
def backend():
    from moto.dynamodb.models import DynamoDBBackend

    if not STOCK:
        from hsm_demo_standin import dynamodb

        dynamodb.install()
    b = DynamoDBBackend("us-east-1", "123456789012")
    return b


def S(v):
    return {"S": v}


def make_table(backend, name, devices):
    backend.create_table(
        name,
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    for i in range(devices):
        for sk in ("CURRENT", "CERT#1", "INTENT#1"):
            backend.put_item(name, {"pk": S(f"DEVICE#{i}"), "sk": S(sk), "v": S("x" * 50)})
    return backend.get_table(name)


def record(table, dev):
    """The shape of hsm-demo's record_issued: 3 conditional Puts + 1 conditional Update."""
    put = {"ConditionExpression": "attribute_not_exists(pk)", "TableName": table}
    return [
        {"Put": {**put, "Item": {"pk": S(f"SERIAL#{dev}"), "sk": S("CA#1")}}},
        {"Put": {**put, "Item": {"pk": S(f"DEVICE#{dev}"), "sk": S("CERT#1")}}},
        {"Put": {**put, "Item": {"pk": S(f"DEVICE#{dev}"), "sk": S("CURRENT")}}},
        {"Update": {"TableName": table, "Key": {"pk": S(f"DEVICE#{dev}"), "sk": S("INTENT#1")},
                    "UpdateExpression": "SET #s = :issued", "ConditionExpression": "#s = :pending",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {":issued": S("ISSUED"), ":pending": S("PENDING")}}},
    ]


def test_transactions_never_deep_copy_the_table(backend, monkeypatch):
    from moto.dynamodb.models.table import Table

    counts = {}
    for name, devices in (("small", 3), ("large", 2000)):
        make_table(backend, name, devices)
        calls = {"table": 0, "all": 0}
        real = copy.deepcopy

        def counting(obj, *a, _calls=calls, _real=real, **k):
            if not a and not k:  # top-level calls only (deepcopy recurses with a memo)
                _calls["all"] += 1
                if isinstance(obj, Table):
                    _calls["table"] += 1
            return _real(obj, *a, **k)

        monkeypatch.setattr(copy, "deepcopy", counting)
        for n in range(5):
            backend.put_item(name, {"pk": S(f"DEVICE#new{n}"), "sk": S("INTENT#1"), "state": S("PENDING")})
            backend.transact_write_items(record(name, f"new{n}"))
        with pytest.raises(Exception) as e:  # a cancelled one takes the same rollback record
            backend.transact_write_items(record(name, "new0"))
        assert type(e.value).__name__ == "TransactionCanceledException"
        monkeypatch.setattr(copy, "deepcopy", real)
        assert calls["table"] == 0, f"{name}: {calls['table']} whole-table deep copies"
        counts[name] = calls["all"]
    # Per-item copies only: the same number whatever the table holds.
    assert counts["small"] == counts["large"], counts


def test_base_table_query_reads_only_its_partition(backend, monkeypatch):
    from moto.dynamodb.models.dynamo_type import DynamoType

    make_table(backend, "q", 2000)
    real_eq = DynamoType.__eq__
    calls = [0]

    def counting_eq(self, other):
        calls[0] += 1
        return real_eq(self, other)

    monkeypatch.setattr(DynamoType, "__eq__", counting_eq)
    items, _, _ = backend.query("q", S("DEVICE#1234"), None, [], None, None, True, None, consistent_read=True)
    monkeypatch.setattr(DynamoType, "__eq__", real_eq)
    assert sorted(i.attrs["sk"].value for i in items) == ["CERT#1", "CURRENT", "INTENT#1"]
    assert all(i.attrs["pk"].value == "DEVICE#1234" for i in items)
    # Stock moto compares the key of each of the 6,000 items; one partition is a handful.
    assert calls[0] < 50, f"{calls[0]} key comparisons for one partition"
    # Pages and sort order as before: Limit 2 then the rest, descending.
    page, _, last = backend.query("q", S("DEVICE#7"), None, [], 2, None, False, None)
    assert [i.attrs["sk"].value for i in page] == ["INTENT#1", "CURRENT"] and last is not None
    rest, _, last2 = backend.query("q", S("DEVICE#7"), None, [], 2, last, False, None)
    assert [i.attrs["sk"].value for i in rest] == ["CERT#1"] and last2 is None
    none, _, _ = backend.query("q", S("DEVICE#absent"), None, [], None, None, True, None)
    assert none == []


def snapshot(table):
    return [(i.hash_key.value, i.range_key.value, i.to_json()) for i in table.all_items()]


def test_cancelled_transaction_restores_exactly_the_touched_items(backend, monkeypatch):
    table = make_table(backend, "undo", 0)
    for pk, sk, v in (("a", "1", "1"), ("a", "2", "1"), ("a", "3", "1"), ("c", "1", "1"), ("d", "1", "1")):
        backend.put_item("undo", {"pk": S(pk), "sk": S(sk), "v": S(v)})
    before = snapshot(table)
    before_a = list(table.items[DynamoType_S("a")].keys())

    # A writer that gets in between the transaction's actions (what stock moto's threaded server
    # allows; under the stand-in's lock it cannot happen, but a rollback must not revert it anyway).
    real_update = type(backend).update_item
    interleaved = []

    def update_then_other_write(self, *a, **k):
        out = real_update(self, *a, **k)
        if not interleaved:
            interleaved.append(self.put_item("undo", {"pk": S("z"), "sk": S("1"), "v": S("other")}))
        return out

    monkeypatch.setattr(type(backend), "update_item", update_then_other_write)
    # Update a/2, Put b/1 (new partition), Delete a/1, Put a/0, a failing ConditionCheck, Delete c/1:
    # moto applies all but the failing one, then cancels.
    actions = [
        {"Update": {"TableName": "undo", "Key": {"pk": S("a"), "sk": S("2")},
                    "UpdateExpression": "SET v = :two, w = :two", "ExpressionAttributeValues": {":two": S("2")}}},
        {"Put": {"TableName": "undo", "Item": {"pk": S("b"), "sk": S("1"), "v": S("new")}}},
        {"Delete": {"TableName": "undo", "Key": {"pk": S("a"), "sk": S("1")}}},
        {"Put": {"TableName": "undo", "Item": {"pk": S("a"), "sk": S("0"), "v": S("new")}}},
        {"ConditionCheck": {"TableName": "undo", "Key": {"pk": S("d"), "sk": S("1")},
                            "ConditionExpression": "v = :no", "ExpressionAttributeValues": {":no": S("99")},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        {"Delete": {"TableName": "undo", "Key": {"pk": S("c"), "sk": S("1")}}},
    ]
    with pytest.raises(Exception) as e:
        backend.transact_write_items(actions)
    monkeypatch.setattr(type(backend), "update_item", real_update)
    assert type(e.value).__name__ == "TransactionCanceledException"
    reasons = __import__("json").loads(e.value.description)["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None"] * 4 + ["ConditionalCheckFailed", "None"], reasons
    assert reasons[4]["Item"] == {"pk": S("d"), "sk": S("1"), "v": S("1")}

    assert interleaved, "the interleaved write did not happen"
    after = snapshot(backend.get_table("undo"))
    z = ("z", "1", {"Attributes": {"pk": S("z"), "sk": S("1"), "v": S("other")}})
    assert z in after, "the rollback reverted a write it did not make"
    assert backend.get_table("undo") is table, "the rollback replaced the table object"
    after.remove(z)
    assert after == before  # same items, same attributes, same order (the deleted a/1 back first)
    assert list(table.items[DynamoType_S("a")].keys()) == before_a
    assert DynamoType_S("b") not in table.items, "the partition the rolled-back Put created is left behind"

    # A committed transaction after the cancelled one still writes (the table object is the same).
    backend.transact_write_items(actions[:4])
    assert backend.get_item("undo", {"pk": S("a"), "sk": S("2")}).attrs["w"].value == "2"
    assert backend.get_item("undo", {"pk": S("a"), "sk": S("1")}) is None


def DynamoType_S(v):
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType(S(v))


def test_cancellation_over_http_restores_items_and_reports_reasons(endpoint):
    ddb = testing.client(endpoint, service="dynamodb")
    t = "undo-http"
    ddb.create_table(
        TableName=t,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=t, Item={"pk": S("dev"), "sk": S("INTENT#1"), "state": S("PENDING")})
    ddb.put_item(TableName=t, Item={"pk": S("dev"), "sk": S("CURRENT"), "gen": {"N": "1"}})
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": t, "Key": {"pk": S("dev"), "sk": S("INTENT#1")},
                        "UpdateExpression": "SET #s = :i", "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": {":i": S("ISSUED")}}},
            {"Put": {"TableName": t, "Item": {"pk": S("SERIAL#1"), "sk": S("CA")}}},
            {"Put": {"TableName": t, "Item": {"pk": S("dev"), "sk": S("CURRENT"), "gen": {"N": "2"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    codes = [r["Code"] for r in e.value.response["CancellationReasons"]]
    assert codes == ["None", "None", "ConditionalCheckFailed"], codes
    items = ddb.query(TableName=t, KeyConditionExpression="pk = :p", ConsistentRead=True,
                      ExpressionAttributeValues={":p": S("dev")})["Items"]
    assert sorted((i["sk"]["S"], i.get("state", i.get("gen"))) for i in items) == [
        ("CURRENT", {"N": "1"}), ("INTENT#1", {"S": "PENDING"})]
    gone = ddb.get_item(TableName=t, Key={"pk": S("SERIAL#1"), "sk": S("CA")}, ConsistentRead=True)
    assert "Item" not in gone
