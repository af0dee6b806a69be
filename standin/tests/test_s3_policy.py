"""Bucket policies with conditions (the DenyInsecureTransport statement of infra/'s buckets).

Stock moto 5.2.5 treats a statement whose Condition does not hold as an explicit Deny: there the
first two tests fail with AccessDenied (403) on PutObject/GetObject and on DeleteObjects.
"""

import itertools
import json
import time

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing

_n = itertools.count(1)


@pytest.fixture(scope="module")
def s3(endpoint):
    return testing.client(endpoint, "s3")


def bucket_with_policy(s3, *statements):
    name = f"policy-test-{next(_n)}-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=name)
    arn = f"arn:aws:s3:::{name}"
    for st in statements:
        st["Resource"] = [arn, f"{arn}/*"]
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return name


def deny_insecure_transport():
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_deny_insecure_transport_does_not_deny_requests_of_the_sdk(s3):
    b = bucket_with_policy(s3, deny_insecure_transport())
    s3.put_object(Bucket=b, Key="crl/x.crl", Body=b"crl")
    assert s3.get_object(Bucket=b, Key="crl/x.crl")["Body"].read() == b"crl"


def test_objects_of_such_a_bucket_can_be_deleted(s3):
    b = bucket_with_policy(s3, deny_insecure_transport())
    s3.put_object(Bucket=b, Key="a", Body=b"1")
    out = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "a"}]})
    assert not out.get("Errors") and [d["Key"] for d in out["Deleted"]] == ["a"]
    s3.delete_bucket(Bucket=b)


def test_a_deny_whose_condition_holds_still_denies(s3):
    """Control: the plugin keeps Deny statements that apply (condition true, or none)."""
    b = bucket_with_policy(s3, {"Sid": "DenyOverTls", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                "Condition": {"Bool": {"aws:SecureTransport": "true"}}})
    s3.put_object(Bucket=b, Key="k", Body=b"v")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    b2 = bucket_with_policy(s3, {"Sid": "DenyAll", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject"})
    s3.put_object(Bucket=b2, Key="k", Body=b"v")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b2, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
