"""TransactWriteItems with ClientRequestToken, as DynamoDB answers it (10-minute window).

Stock moto 5.2.5 ignores the token: the retry below is applied a second time and cancelled by its
own condition (TransactionCanceledException), and a changed request under the same token is
simply executed — both tests fail there.
"""

import uuid

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing


@pytest.fixture(scope="module")
def ddb(endpoint):
    return testing.client(endpoint, service="dynamodb")


@pytest.fixture(scope="module")
def table(ddb):
    name = f"tokens-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def record(table, pk):
    """Records `pk` once (the put is conditional) and counts the records in a counter item."""
    return [
        {"Put": {"TableName": table, "Item": {"pk": {"S": pk}}, "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": table, "Key": {"pk": {"S": "counter-" + pk}}, "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ]


def count(ddb, table, pk):
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "counter-" + pk}}, ConsistentRead=True).get("Item")
    return int(item["n"]["N"]) if item else 0


def test_same_token_same_request_succeeds_without_applying_twice(ddb, table):
    """A retried transaction (same token, same items) whose first attempt committed succeeds and
    changes nothing; without the token the same items are cancelled by their own condition."""
    token = str(uuid.uuid4())
    ddb.transact_write_items(TransactItems=record(table, "dev-1"), ClientRequestToken=token)
    ddb.transact_write_items(TransactItems=record(table, "dev-1"), ClientRequestToken=token)
    assert count(ddb, table, "dev-1") == 1
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=record(table, "dev-1"), ClientRequestToken=str(uuid.uuid4()))
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert count(ddb, table, "dev-1") == 1


def test_same_token_other_request_is_idempotent_parameter_mismatch(ddb, table):
    """The same token with other items: HTTP 400 IdempotentParameterMismatchException (AWS's
    `__type` and message shape) and nothing applied; a token longer than 36 characters is a
    ValidationException."""
    token = str(uuid.uuid4())
    ddb.transact_write_items(TransactItems=record(table, "dev-2"), ClientRequestToken=token)
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=record(table, "dev-3"), ClientRequestToken=token)
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"]
    assert count(ddb, table, "dev-3") == 0
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "dev-3"}}, ConsistentRead=True)
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=record(table, "dev-4"), ClientRequestToken="x" * 37)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert count(ddb, table, "dev-4") == 0


def test_token_window_switch(scoped, endpoint, table):
    """Default window 600 s; with transact_token_window_seconds=0 (scoped) the token is forgotten and
    the retry is evaluated again (here: cancelled by its condition)."""
    akid, _, set_switches = scoped
    assert testing.control(endpoint)["global"]["transact_token_window_seconds"] == 600
    ddb = testing.client(endpoint, service="dynamodb", access_key=akid)
    set_switches(transact_token_window_seconds=0)
    token = str(uuid.uuid4())
    ddb.transact_write_items(TransactItems=record(table, "dev-5"), ClientRequestToken=token)
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=record(table, "dev-5"), ClientRequestToken=token)
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert count(ddb, table, "dev-5") == 1
