#!/usr/bin/env python3
"""Deploy, inspect, check and destroy the hsm-demo PKI stack (infra/templates/hierarchy.yaml) with boto3.

  stack.py deploy  --stack S [--param K=V | --param K=@file]...   create, or update if it exists; wait
  stack.py output  --stack S --key K                              print one output value
  stack.py check   --stack S --out FILE                           CAs ACTIVE, pathLen via openssl; write outputs
  stack.py destroy --stack S [--local-registry-cleanup]           delete the stack; wait
  stack.py ca-certificate --arn ARN                               print a CA's certificate (PEM)

The endpoint is AWS_ENDPOINT_URL (boto3 reads it); against the local stand-in (127.0.0.1/localhost)
dummy credentials and us-east-1 are filled in when none are set. Errors: one `error: …` line, exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(INFRA / "lib"))

import cfn_params  # noqa: E402
import cfn_yaml  # noqa: E402

TEMPLATE = INFRA / "templates" / "hierarchy.yaml"
WAIT = {"Delay": 1, "MaxAttempts": 600}  # at most 10 minutes per wait


class Fail(Exception):
    pass


def _is_local(endpoint: str) -> bool:
    return bool(re.match(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/?$", endpoint))


def session():
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint and _is_local(endpoint):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.session.Session()


def _err(e: Exception) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        return f"{resp['Error'].get('Code')}: {resp['Error'].get('Message')}"
    return str(e).splitlines()[0]


def find_stack(cfn, name: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as e:
        if "does not exist" in _err(e):
            return None
        raise
    return stacks[0] if stacks else None


def outputs_of(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def _failure_reasons(cfn, name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except Exception:  # noqa: BLE001 - best effort for the message
        return ""
    bad = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events
           if e.get("ResourceStatus", "").endswith("FAILED") and e.get("ResourceStatusReason")]
    return "; ".join(bad[:3])


def parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise Fail(f"--param {item!r}: expected KEY=VALUE or KEY=@FILE")
        key, value = item.split("=", 1)
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file() or path.stat().st_size == 0:
                raise Fail(f"parameter {key}: file {path} is missing or empty")
            value = path.read_text()
        params[key] = value
    return params


def deploy(stack_name: str, raw_params: list[str]) -> dict[str, str]:
    template_text = TEMPLATE.read_text()
    given = parse_params(raw_params)
    try:
        values = cfn_params.resolve(cfn_yaml.load_text(template_text), given)  # CloudFormation's own validation
    except cfn_params.ParameterError as e:
        raise Fail(str(e)) from None
    from botocore.exceptions import ClientError, WaiterError

    cfn = session().client("cloudformation")
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()]
    existing = find_stack(cfn, stack_name)
    if existing and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        raise Fail(f"stack {stack_name} is ROLLBACK_COMPLETE (a failed first create): run `make infra-destroy` first")
    if existing is None:
        _table_must_not_exist(values["RegistryTableName"])
    try:
        if existing is None:
            cfn.create_stack(StackName=stack_name, TemplateBody=template_text, Parameters=params,
                             Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "project", "Value": "hsm-demo"}])
            waiter, verb = "stack_create_complete", "created"
        else:
            # Parameters not given keep their defaults (not their previous values): every deploy states
            # the whole configuration. The same stack is updated in place - never a second hierarchy.
            cfn.update_stack(StackName=stack_name, TemplateBody=template_text, Parameters=params,
                             Capabilities=["CAPABILITY_IAM"])
            waiter, verb = "stack_update_complete", "updated"
    except ClientError as e:
        if "No updates are to be performed" in _err(e):
            print(f"stack {stack_name}: no changes (already deployed with these parameters)", file=sys.stderr)
            return outputs_of(find_stack(cfn, stack_name) or {})
        raise Fail(f"stack {stack_name}: {_err(e)}") from None
    try:
        cfn.get_waiter(waiter).wait(StackName=stack_name, WaiterConfig=WAIT)
    except WaiterError:
        stack = find_stack(cfn, stack_name) or {}
        status = stack.get("StackStatus", "GONE")
        reasons = _failure_reasons(cfn, stack_name) or stack.get("StackStatusReason", "")
        raise Fail(f"stack {stack_name}: {status}: {reasons}") from None
    resources = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    stack = find_stack(cfn, stack_name) or {}
    print(f"stack {stack_name}: {verb}, {stack.get('StackStatus')}, {len(resources)} resources", file=sys.stderr)
    return outputs_of(stack)


def _table_must_not_exist(table: str) -> None:
    """A new stack creates the registry table; one retained from an earlier stack would fail the create."""
    ddb = session().client("dynamodb")
    try:
        ddb.describe_table(TableName=table)
    except ddb.exceptions.ResourceNotFoundException:
        return
    raise Fail(f"parameter RegistryTableName: table {table} already exists (retained from an earlier stack?); "
               "choose another name or delete it")


def destroy(stack_name: str, local_registry_cleanup: bool) -> None:
    from botocore.exceptions import WaiterError

    sess = session()
    cfn = sess.client("cloudformation")
    stack = find_stack(cfn, stack_name)
    if stack is None:
        print(f"stack {stack_name}: not deployed, nothing to delete", file=sys.stderr)
        return
    outs = outputs_of(stack)
    s3 = sess.client("s3")
    resources = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    for r in resources:  # CloudFormation cannot delete non-empty buckets (versioned: every version)
        if r["ResourceType"] == "AWS::S3::Bucket" and r.get("PhysicalResourceId"):
            _empty_bucket(s3, r["PhysicalResourceId"])
    cfn.delete_stack(StackName=stack_name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(StackName=stack_name, WaiterConfig=WAIT)
    except WaiterError:
        raise Fail(f"stack {stack_name}: delete failed: {_failure_reasons(cfn, stack_name)}") from None
    print(f"stack {stack_name}: deleted", file=sys.stderr)
    table = outs.get("TableName")
    reports = outs.get("AuditReportBucket")
    if (table or reports) and local_registry_cleanup:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        if not _is_local(endpoint):
            print(f"registry table {table} and audit-report bucket {reports} retained (DeletionPolicy Retain; "
                  "endpoint is not the local stand-in)", file=sys.stderr)
            return
        if reports:  # emptied above
            try:
                s3.delete_bucket(Bucket=reports)
                print(f"audit-report bucket {reports}: deleted (local stand-in)", file=sys.stderr)
            except s3.exceptions.NoSuchBucket:
                pass
    if table and local_registry_cleanup:
        ddb = sess.client("dynamodb")
        try:
            ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
            ddb.delete_table(TableName=table)
            ddb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig=WAIT)
            print(f"registry table {table}: deletion protection lifted and deleted (local stand-in)", file=sys.stderr)
        except ddb.exceptions.ResourceNotFoundException:
            pass


def _empty_bucket(s3, bucket: str) -> None:
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
            if objs:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})
    except s3.exceptions.NoSuchBucket:
        pass


def _openssl_text(pem: str) -> str:
    proc = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Fail(f"openssl x509 could not read a CA certificate: {proc.stderr.strip()[:200]}")
    return proc.stdout


def _path_len(text: str) -> str:
    """'CA:TRUE, pathlen:N' → 'N', 'CA:TRUE' → 'none', no basicConstraints CA → 'not-a-ca'."""
    m = re.search(r"X509v3 Basic Constraints:.*?\n\s*(CA:[A-Z]+(?:, pathlen:(\d+))?)", text)
    if not m or not m.group(1).startswith("CA:TRUE"):
        return "not-a-ca"
    return m.group(2) if m.group(2) is not None else "none"


def _split_pem(bundle: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", bundle, re.S)


def check(stack_name: str, out: Path) -> None:
    sess = session()
    cfn = sess.client("cloudformation")
    stack = find_stack(cfn, stack_name)
    if stack is None:
        raise Fail(f"stack {stack_name} is not deployed (run `make infra-deploy`)")
    outs = outputs_of(stack)
    if "IssuingCaArn" not in outs:
        raise Fail(f"stack {stack_name} has no IssuingCaArn output: offline mode phase 2 has not run")
    pca = sess.client("acm-pca")
    tiers = [("issuing", outs["IssuingCaArn"], "0"), ("intermediate", outs["IntermediateCaArn"], "1")]
    if "RootCaArn" in outs:
        tiers.append(("root", outs["RootCaArn"], "any"))
    chain_pem = ""
    for tier, arn, want in tiers:
        status = pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]["Status"]
        if status != "ACTIVE":
            raise Fail(f"{tier} CA {arn} is {status}, not ACTIVE")
        got = pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)
        have = _path_len(_openssl_text(got["Certificate"]))
        if want != "any" and have != want:
            raise Fail(f"{tier} CA certificate has pathLen {have}, expected {want} (openssl x509 -text)")
        if tier == "issuing":
            chain_pem = got["Certificate"].strip() + "\n" + got.get("CertificateChain", "").strip() + "\n"
        print(f"{tier} CA: ACTIVE, pathLen {have}", file=sys.stderr)
    certs = _split_pem(chain_pem)
    if len(certs) != 3:
        raise Fail(f"issuing CA chain has {len(certs)} certificates, expected 3 (issuing, intermediate, root)")
    with tempfile.TemporaryDirectory() as tmp:
        root, untrusted, leaf = Path(tmp, "root.pem"), Path(tmp, "mid.pem"), Path(tmp, "issuing.pem")
        root.write_text(certs[2])
        untrusted.write_text(certs[1])
        leaf.write_text(certs[0])
        proc = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(root), "-untrusted",
                               str(untrusted), str(leaf)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise Fail(f"openssl verify of the issuing CA chain failed: {(proc.stdout + proc.stderr).strip()[:300]}")
    print("openssl verify: issuing -> intermediate -> root OK", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    chain_file = out.with_name(out.stem + "-chain.pem")
    _atomic_write(chain_file, "".join(c if c.endswith("\n") else c + "\n" for c in certs))
    doc = {"stack": stack_name, "endpoint": os.environ.get("AWS_ENDPOINT_URL", ""),
           "region": sess.region_name, **outs, "IssuingCaChainFile": str(chain_file)}
    _atomic_write(out, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"outputs written to {out}", file=sys.stderr)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(prog="stack.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy")
    d.add_argument("--stack", required=True)
    d.add_argument("--param", action="append", default=[])
    o = sub.add_parser("output")
    o.add_argument("--stack", required=True)
    o.add_argument("--key", required=True)
    c = sub.add_parser("check")
    c.add_argument("--stack", required=True)
    c.add_argument("--out", type=Path, required=True)
    a = sub.add_parser("ca-certificate")
    a.add_argument("--arn", required=True)
    x = sub.add_parser("destroy")
    x.add_argument("--stack", required=True)
    x.add_argument("--local-registry-cleanup", action="store_true")
    args = ap.parse_args()
    try:
        if args.cmd == "deploy":
            outs = deploy(args.stack, args.param)
            print(json.dumps(outs, indent=2, sort_keys=True))
        elif args.cmd == "output":
            stack = find_stack(session().client("cloudformation"), args.stack)
            if stack is None:
                raise Fail(f"stack {args.stack} is not deployed")
            outs = outputs_of(stack)
            if args.key not in outs:
                raise Fail(f"stack {args.stack} has no output {args.key} (has: {', '.join(sorted(outs))})")
            sys.stdout.write(outs[args.key] if outs[args.key].endswith("\n") else outs[args.key] + "\n")
        elif args.cmd == "ca-certificate":
            got = session().client("acm-pca").get_certificate_authority_certificate(CertificateAuthorityArn=args.arn)
            sys.stdout.write(got["Certificate"].strip() + "\n")
        elif args.cmd == "check":
            check(args.stack, args.out)
        else:
            destroy(args.stack, args.local_registry_cleanup)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - botocore errors: one line, not a traceback
        print(f"error: {type(e).__name__}: {_err(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
