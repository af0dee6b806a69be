"""Holds (`POST /_standin/hold`, `GET /_standin/held`, `POST /_standin/release`): one request of an
access key is stopped at a named point until the test releases it, so crash tests can kill the
client exactly while a request is in flight. Stock moto has none of these endpoints (HTTP 404).
"""

import json
import threading
import urllib.parse
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from hsm_demo_standin import testing
from hsm_demo_standin.testing import make_csr

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60)


def _post(endpoint, path, body):
    return testing.control(endpoint, body, path=path)


def _held(endpoint, akid, wait):
    q = urllib.parse.urlencode({"access_key_id": akid, "wait": wait})
    with urllib.request.urlopen(f"{endpoint}/_standin/held?{q}", timeout=wait + 10) as r:
        return json.loads(r.read())


def _client(endpoint, akid):
    import boto3

    return boto3.client(
        "acm-pca", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=akid,
        aws_secret_access_key="test", config=NO_RETRY,
    )


def _issue_in_thread(pca, ca, cn):
    """Starts an IssueCertificate in a thread; returns (thread, outcome dict)."""
    out = {}

    def run():
        try:
            out["arn"] = pca.issue_certificate(
                CertificateAuthorityArn=ca, Csr=make_csr(cn)[0], SigningAlgorithm="SHA256WITHECDSA",
                Validity={"Type": "DAYS", "Value": 1},
            )["CertificateArn"]
        except (ClientError, ConnectionClosedError, EndpointConnectionError, OSError) as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _issued(endpoint, ca):
    return testing.stats(endpoint, ca)["IssueCertificate"]["issued"]


def test_request_held_before_the_backend_then_dropped(scoped, hierarchy, endpoint):
    akid, _, _ = scoped
    ca = hierarchy["issuing_arn"]
    pca = _client(endpoint, akid)
    before = _issued(endpoint, ca)
    _post(endpoint, "/_standin/hold", {"access_key_id": akid, "operation": "IssueCertificate", "stage": "request"})
    t, out = _issue_in_thread(pca, ca, "held-request")
    got = _held(endpoint, akid, 30)
    assert [h["operation"] for h in got["held"]] == ["IssueCertificate"], got
    assert got["held"][0]["stage"] == "request"
    # Held before the backend: nothing issued while the client waits.
    assert t.is_alive()
    assert _issued(endpoint, ca) == before
    rel = _post(endpoint, "/_standin/release", {"access_key_id": akid, "action": "drop"})
    assert rel["finished"] is True and len(rel["released"]) == 1, rel
    t.join(30)
    assert "error" in out and "arn" not in out, out
    assert _issued(endpoint, ca) == before, "a dropped request never reaches the backend"
    # The hold is spent: the next request runs freely.
    t, out = _issue_in_thread(pca, ca, "after-the-hold")
    t.join(30)
    assert "arn" in out, out


def test_answer_held_after_the_backend_acted_then_sent(scoped, hierarchy, endpoint):
    akid, _, _ = scoped
    ca = hierarchy["issuing_arn"]
    pca = _client(endpoint, akid)
    before = _issued(endpoint, ca)
    _post(endpoint, "/_standin/hold", {"access_key_id": akid, "operation": "IssueCertificate", "stage": "answer"})
    t, out = _issue_in_thread(pca, ca, "held-answer")
    got = _held(endpoint, akid, 30)
    assert got["held"][0]["stage"] == "answer", got
    # The backend has issued; the client has not heard of it.
    assert _issued(endpoint, ca) == before + 1
    assert t.is_alive() and not out
    _post(endpoint, "/_standin/release", {"access_key_id": akid, "action": "proceed"})
    t.join(30)
    assert out.get("arn", "").startswith(ca), out


def test_hold_after_another_operation_catches_the_next_request_only(scoped, hierarchy, endpoint):
    akid, _, _ = scoped
    ca = hierarchy["issuing_arn"]
    pca = _client(endpoint, akid)
    _post(endpoint, "/_standin/hold", {"access_key_id": akid, "operation": "GetCertificate", "after": "IssueCertificate"})
    # Before any IssueCertificate was answered, GetCertificate runs freely (here: an unknown ARN).
    with pytest.raises(ClientError):
        pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=ca + "/certificate/00")
    assert _held(endpoint, akid, 0)["held"] == []
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr("after")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Type": "DAYS", "Value": 1},
    )["CertificateArn"]
    out = {}

    def get():
        out["pem"] = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]

    t = threading.Thread(target=get, daemon=True)
    t.start()
    got = _held(endpoint, akid, 30)
    assert [h["operation"] for h in got["held"]] == ["GetCertificate"], got
    assert got["armed"] is None, "a hold holds one request"
    _post(endpoint, "/_standin/release", {"access_key_id": akid, "action": "proceed"})
    t.join(30)
    assert out["pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_holds_are_per_access_key_and_validated(scoped, hierarchy, endpoint, pca):
    akid, _, _ = scoped
    ca = hierarchy["issuing_arn"]
    _post(endpoint, "/_standin/hold", {"access_key_id": akid, "operation": "IssueCertificate"})
    # Another key's request is not held.
    pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr("other-key")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Type": "DAYS", "Value": 1},
    )
    assert _held(endpoint, akid, 0)["armed"]["operation"] == "IssueCertificate"
    for bad in (
        {"operation": "IssueCertificate"},
        {"access_key_id": akid, "operation": "IssueCertificate", "stage": "later"},
        {"access_key_id": akid, "operation": "IssueCertificate", "bogus": 1},
    ):
        with pytest.raises(urllib.error.HTTPError) as e:
            _post(endpoint, "/_standin/hold", bad)
        assert e.value.code == 400
    _post(endpoint, "/_standin/holds/reset", {})
    assert _held(endpoint, akid, 0)["armed"] is None


def test_body_held_after_the_headers_were_sent(scoped, hierarchy, endpoint):
    """Stage "body": status line and headers go out, the body waits for the release (a stalled
    transfer, as the client's stalled-stream protection sees it)."""
    import http.client

    akid, _, _ = scoped
    _post(endpoint, "/_standin/hold", {"access_key_id": akid, "operation": "ListCertificateAuthorities", "stage": "body"})
    host, port = urllib.parse.urlsplit(endpoint).netloc.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(
        "POST", "/", body=b"{}",
        headers={
            "X-Amz-Target": "ACMPrivateCA.ListCertificateAuthorities",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={akid}/20260101/us-east-1/acm-pca/aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    resp = conn.getresponse()  # returns once the headers arrived
    assert resp.status == 200
    length = int(resp.getheader("Content-Length"))
    assert length > 0
    got = _held(endpoint, akid, 30)
    assert [(h["operation"], h["stage"]) for h in got["held"]] == [("ListCertificateAuthorities", "body")], got
    body = {}
    reader = threading.Thread(target=lambda: body.setdefault("data", resp.read()), daemon=True)
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the body arrived before the release"
    rel = _post(endpoint, "/_standin/release", {"access_key_id": akid, "action": "proceed"})
    assert rel["finished"] is True, rel
    reader.join(30)
    assert len(body["data"]) == length and "CertificateAuthorities" in json.loads(body["data"])
