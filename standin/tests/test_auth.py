"""Signature time and expired credentials refused as AWS refuses them (auth.py); stock moto
accepts any signature time and any credentials, so these tests fail there."""

from email.utils import parsedate_to_datetime
import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hsm_demo_standin import testing


def _client(endpoint, service, akid):
    c = testing.client(endpoint, service=service, access_key=akid)
    if service == "s3":
        import boto3

        c = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=akid,
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        )
    return c


def _refused(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["Error"].get("Message", ""), r["ResponseMetadata"]


def _server_offset(meta):
    return parsedate_to_datetime(meta["HTTPHeaders"]["date"]).timestamp() - time.time()


@pytest.mark.parametrize("offset,words", [(900, "Signature expired: "), (-900, "Signature not yet current: ")])
def test_json_services_refuse_a_signature_more_than_5_minutes_off(scoped, endpoint, offset, words):
    akid, pca, set_switches = scoped
    set_switches(clock_offset_seconds=offset)
    ddb = _client(endpoint, "dynamodb", akid)
    for call in (pca.list_certificate_authorities, ddb.list_tables):
        code, msg, meta = _refused(call)
        assert code == "InvalidSignatureException", code
        assert msg.startswith(words), msg
        assert meta["HTTPStatusCode"] == 400
        # The answer's Date is the stand-in's clock: the client can see how far off it is.
        assert abs(_server_offset(meta) - offset) < 5, meta["HTTPHeaders"]["date"]


def test_a_small_offset_is_accepted_and_shown_in_date(scoped):
    _, pca, set_switches = scoped
    set_switches(clock_offset_seconds=120)
    r = pca.list_certificate_authorities()
    assert abs(_server_offset(r["ResponseMetadata"]) - 120) < 5


def test_s3_allows_15_minutes_then_answers_request_time_too_skewed(scoped, endpoint):
    akid, _, set_switches = scoped
    s3 = _client(endpoint, "s3", akid)
    set_switches(clock_offset_seconds=600)
    s3.list_buckets()
    set_switches(clock_offset_seconds=1000)
    code, msg, meta = _refused(s3.list_buckets)
    assert code == "RequestTimeTooSkewed" and meta["HTTPStatusCode"] == 403, (code, meta)


def test_expired_credentials_are_refused_by_every_service(scoped, endpoint):
    akid, pca, set_switches = scoped
    set_switches(expired_credentials=True)
    assert _refused(pca.list_certificate_authorities)[0] == "ExpiredTokenException"
    assert _refused(_client(endpoint, "dynamodb", akid).list_tables)[0] == "ExpiredTokenException"
    assert _refused(_client(endpoint, "s3", akid).list_buckets)[0] == "ExpiredToken"
    set_switches(expired_credentials=False)
    pca.list_certificate_authorities()


def test_bad_clock_switches_are_rejected(endpoint):
    for bad in ({"clock_offset_seconds": "5"}, {"clock_offset_seconds": 1e12}, {"expired_credentials": 1}):
        with pytest.raises(Exception) as e:
            testing.control(endpoint, bad)
        assert "400" in str(e.value) or "must" in str(e.value), e.value
