"""Throughput driver for the stand-in: replays hsm-demo's per-device request mix.

    PYTHONPATH=standin .venv/bin/python standin/bench_throughput.py --devices 300 --threads 8

Starts a fresh stand-in (unless --endpoint/--pid name a running one), creates a CA hierarchy and a
pk/sk table, then for each device sends the 7 requests `hsm-demo provision` sends (same
expressions as src/pca/registry.rs): Query, PutItem (intent), UpdateItem (intent params),
IssueCertificate, UpdateItem (ISSUING + cert ARN), GetCertificate, TransactWriteItems (serial
marker + history + CURRENT + intent -> ISSUED). Every response is checked (a failed condition is a
benchmark error). Prints requests/s (wall) and the stand-in's CPU seconds per request from
/proc/PID/stat — the figure to compare when other work shares the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hsm_demo_standin import testing  # noqa: E402

TABLE = "bench"
EE = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime/stime are fields 14/15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def S(v: str) -> dict[str, str]:
    return {"S": v}


def N(v: int) -> dict[str, str]:
    return {"N": str(v)}


def device(ddb, pca, ca: str, csr: bytes, dev: str, owner: str) -> None:
    pk = f"DEVICE#{dev}"
    now = "2026-01-01T00:00:00Z"
    ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": S(pk)},
        ConsistentRead=True,
    )
    ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": S(pk), "sk": S("INTENT#0001"), "device_id": S(dev), "generation": N(1),
            "state": S("PENDING"), "ca_arn": S(ca), "owner": S(owner), "lease_until": N(2**40),
            "created_at": S(now), "created_epoch": N(1), "updated_at": S(now),
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    key = {"pk": S(pk), "sk": S("INTENT#0001")}
    token = uuid.uuid4().hex
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET #token = :token, csr_sha256 = :csr, template_arn = :tpl, signing_algorithm = :alg, "
        "validity_type = :vt, validity_value = :vv, updated_at = :now",
        ConditionExpression="#owner = :me AND #state = :pending AND attribute_not_exists(#token)",
        ExpressionAttributeNames={"#owner": "owner", "#state": "state", "#token": "token"},
        ExpressionAttributeValues={
            ":me": S(owner), ":pending": S("PENDING"), ":token": S(token), ":csr": S("00" * 32),
            ":tpl": S(EE), ":alg": S("SHA256WITHECDSA"), ":vt": S("DAYS"), ":vv": N(30), ":now": S(now),
        },
    )
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr,
        SigningAlgorithm="SHA256WITHECDSA",
        TemplateArn=EE,
        Validity={"Type": "DAYS", "Value": 30},
        IdempotencyToken=token[:36],
    )["CertificateArn"]
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET #state = :issuing, cert_arn = :arn, updated_at = :now",
        ConditionExpression="#token = :token AND (#state = :pending OR (#state = :issuing AND cert_arn = :arn))",
        ExpressionAttributeNames={"#state": "state", "#token": "token"},
        ExpressionAttributeValues={
            ":issuing": S("ISSUING"), ":pending": S("PENDING"), ":arn": S(arn), ":token": S(token), ":now": S(now),
        },
    )
    cert = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    serial = arn.rsplit("/", 1)[1]
    rec = {
        "device_id": S(dev), "generation": N(1), "serial": S(serial), "ca_arn": S(ca), "cert_arn": S(arn),
        "status": S("ISSUED"), "not_before": S(now), "not_after": S(now), "issued_at": S(now),
        "token": S(token), "template_arn": S(EE),
    }
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**rec, "pk": S(f"SERIAL#{serial}"), "sk": S(f"CA#{ca}")},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": TABLE, "Item": {**rec, "pk": S(pk), "sk": S("CERT#0001"), "cert_pem": S(cert)},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": TABLE, "Item": {**rec, "pk": S(pk), "sk": S("CURRENT")},
                     "ConditionExpression": "attribute_not_exists(pk) OR (generation < :gen AND #st = :revoked)",
                     "ExpressionAttributeNames": {"#st": "status"},
                     "ExpressionAttributeValues": {":gen": N(1), ":revoked": S("REVOKED")}}},
            {"Update": {"TableName": TABLE, "Key": key,
                        "UpdateExpression": "SET #state = :issued, serial = :serial, cert_arn = :arn, "
                        "updated_at = :now REMOVE lease_until",
                        "ConditionExpression": "#token = :token AND (#state = :pending OR #state = :issuing)",
                        "ExpressionAttributeNames": {"#state": "state", "#token": "token"},
                        "ExpressionAttributeValues": {
                            ":issued": S("ISSUED"), ":pending": S("PENDING"), ":issuing": S("ISSUING"),
                            ":serial": S(serial), ":arn": S(arn), ":token": S(token), ":now": S(now)}}},
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--endpoint", help="use this running stand-in (then --pid for its CPU time)")
    p.add_argument("--pid", type=int)
    a = p.parse_args()

    server = None
    if a.endpoint:
        endpoint, pid = a.endpoint, a.pid
    else:
        server = testing.start_server()
        endpoint, pid = server.url, server.proc.pid
    try:
        pca0 = testing.client(endpoint)
        ca = testing.create_active_hierarchy(pca0, "bench")["issuing_arn"]
        ddb0 = testing.client(endpoint, "dynamodb")
        run = uuid.uuid4().hex[:8]
        try:
            ddb0.create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
            )
        except ddb0.exceptions.ResourceInUseException:
            pass
        csrs = [testing.make_csr(f"dev-{i}")[0] for i in range(8)]
        local = threading.local()

        def one(i: int) -> None:
            if not hasattr(local, "ddb"):
                local.ddb = testing.client(endpoint, "dynamodb")
                local.pca = testing.client(endpoint)
            device(local.ddb, local.pca, ca, csrs[i % len(csrs)], f"{run}-{i:06d}", f"owner-{run}")

        # warm-up (imports, first-use caches) outside the measurement
        with ThreadPoolExecutor(a.threads) as ex:
            list(ex.map(one, range(-a.threads, 0)))
        c0 = cpu_seconds(pid) if pid else None
        t0 = time.monotonic()
        with ThreadPoolExecutor(a.threads) as ex:
            list(ex.map(one, range(a.devices)))
        wall = time.monotonic() - t0
        c1 = cpu_seconds(pid) if pid else None
        reqs = a.devices * 7
        line = f"devices={a.devices} threads={a.threads} requests={reqs} wall={wall:.2f}s req/s={reqs / wall:.1f} dev/s={a.devices / wall:.1f}"
        if c0 is not None and c1 is not None:
            cpu = c1 - c0
            line += f" standin_cpu={cpu:.2f}s cpu_ms/req={1000 * cpu / reqs:.3f} req/cpu_s={reqs / cpu:.1f}"
        print(line, flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
