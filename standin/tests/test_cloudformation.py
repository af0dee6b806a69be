"""CloudFormation types the infra needs, on moto's own ACM PCA and S3 backends.

Stock moto has no AWS::ACMPCA::* nor AWS::S3::BucketPolicy: it skips them with a log line and the
stack still reports CREATE_COMPLETE, so no CA exists (and GetAtt on them fails).
"""

import json
import subprocess

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm_demo_standin import testing

T = "arn:aws:acm-pca:::template/"


def template(policy_sid="ReadCrl", sub_tags=None, with_policy=True):
    sub_props = {
        "Type": "SUBORDINATE",
        "KeyAlgorithm": "EC_prime256v1",
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Subject": {"CommonName": "cfn issuing", "Organization": "hsm-demo"},
    }
    if sub_tags:
        sub_props["Tags"] = sub_tags
    resources = {
        "RootCA": {
            "Type": "AWS::ACMPCA::CertificateAuthority",
            "Properties": {
                "Type": "ROOT",
                "KeyAlgorithm": "EC_secp384r1",
                "SigningAlgorithm": "SHA384WITHECDSA",
                "Subject": {"CommonName": "cfn root", "Organization": "hsm-demo"},
            },
        },
        "RootCert": {
            "Type": "AWS::ACMPCA::Certificate",
            "Properties": {
                "CertificateAuthorityArn": {"Fn::GetAtt": ["RootCA", "Arn"]},
                "CertificateSigningRequest": {"Fn::GetAtt": ["RootCA", "CertificateSigningRequest"]},
                "SigningAlgorithm": "SHA384WITHECDSA",
                "TemplateArn": T + "RootCACertificate/V1",
                "Validity": {"Type": "YEARS", "Value": 10},
            },
        },
        "RootActivation": {
            "Type": "AWS::ACMPCA::CertificateAuthorityActivation",
            "Properties": {
                "CertificateAuthorityArn": {"Ref": "RootCA"},
                "Certificate": {"Fn::GetAtt": ["RootCert", "Certificate"]},
                "Status": "ACTIVE",
            },
        },
        "SubCA": {"Type": "AWS::ACMPCA::CertificateAuthority", "Properties": sub_props},
        "SubCert": {
            "Type": "AWS::ACMPCA::Certificate",
            "DependsOn": "RootActivation",
            "Properties": {
                "CertificateAuthorityArn": {"Ref": "RootCA"},
                "CertificateSigningRequest": {"Fn::GetAtt": ["SubCA", "CertificateSigningRequest"]},
                "SigningAlgorithm": "SHA384WITHECDSA",
                "TemplateArn": T + "SubordinateCACertificate_PathLen0/V1",
                "Validity": {"Type": "YEARS", "Value": 5},
            },
        },
        "SubActivation": {
            "Type": "AWS::ACMPCA::CertificateAuthorityActivation",
            "Properties": {
                "CertificateAuthorityArn": {"Fn::GetAtt": ["SubCA", "Arn"]},
                "Certificate": {"Fn::GetAtt": ["SubCert", "Certificate"]},
                "CertificateChain": {"Fn::GetAtt": ["RootActivation", "CompleteCertificateChain"]},
            },
        },
        "CrlBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "hsm-demo-cfn-crl"}},
    }
    if with_policy:
        resources["CrlBucketPolicy"] = {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "CrlBucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": policy_sid,
                        "Effect": "Allow",
                        "Principal": {"Service": "acm-pca.amazonaws.com"},
                        "Action": ["s3:PutObject", "s3:GetBucketAcl"],
                        "Resource": ["arn:aws:s3:::hsm-demo-cfn-crl", "arn:aws:s3:::hsm-demo-cfn-crl/*"],
                    }],
                },
            },
        }
    return json.dumps({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": resources,
        "Outputs": {
            "RootArn": {"Value": {"Fn::GetAtt": ["RootCA", "Arn"]}},
            "IssuingArn": {"Value": {"Ref": "SubCA"}},
            "IssuingChain": {"Value": {"Fn::GetAtt": ["SubActivation", "CompleteCertificateChain"]}},
        },
    })


def test_stack_creates_active_ca_hierarchy_and_bucket_policy(endpoint, tmp_path):
    """A stack with AWS::ACMPCA::CertificateAuthority/Certificate/CertificateAuthorityActivation and
    AWS::S3::BucketPolicy really creates both CAs (ACTIVE, right key algorithms), the issuing CA
    issues a leaf that openssl verifies against the stack's root, and the bucket has the policy;
    an update changes the policy and tags in place; removing the policy resource deletes it;
    deleting the stack deletes the CAs.
    Stock moto skips every one of these types (no CA, GetAtt fails)."""
    cfn = testing.client(endpoint, "cloudformation")
    pca = testing.client(endpoint)
    s3 = testing.client(endpoint, "s3")
    cfn.create_stack(StackName="hsm-demo-pca", TemplateBody=template())
    stack = cfn.describe_stacks(StackName="hsm-demo-pca")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    root = pca.describe_certificate_authority(CertificateAuthorityArn=out["RootArn"])["CertificateAuthority"]
    issuing = pca.describe_certificate_authority(CertificateAuthorityArn=out["IssuingArn"])["CertificateAuthority"]
    assert root["Status"] == "ACTIVE" and root["Type"] == "ROOT"
    assert issuing["Status"] == "ACTIVE" and issuing["Type"] == "SUBORDINATE"
    root_cert = x509.load_pem_x509_certificate(
        pca.get_certificate_authority_certificate(CertificateAuthorityArn=out["RootArn"])["Certificate"].encode())
    assert root_cert.public_key().curve.name == "secp384r1"
    assert x509.load_pem_x509_certificates(out["IssuingChain"].encode())[-1] == root_cert

    got = testing.issue_and_get(pca, out["IssuingArn"], testing.make_csr("cfn-leaf")[0],
                                "EndEntityClientAuthCertificate/V1")
    chain = x509.load_pem_x509_certificates(got["chain"].encode())
    (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "mid.pem").write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_text(got["cert"] + "\n")
    v = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(tmp_path / "root.pem"),
                        "-untrusted", str(tmp_path / "mid.pem"), str(tmp_path / "leaf.pem")], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr

    policy = json.loads(s3.get_bucket_policy(Bucket="hsm-demo-cfn-crl")["Policy"])
    assert policy["Statement"][0]["Sid"] == "ReadCrl"

    # update: policy changed, tags added to the issuing CA (in place, same ARN)
    cfn.update_stack(StackName="hsm-demo-pca",
                     TemplateBody=template(policy_sid="ReadCrlV2", sub_tags=[{"Key": "env", "Value": "test"}]))
    policy = json.loads(s3.get_bucket_policy(Bucket="hsm-demo-cfn-crl")["Policy"])
    assert policy["Statement"][0]["Sid"] == "ReadCrlV2"
    tags = pca.list_tags(CertificateAuthorityArn=out["IssuingArn"])["Tags"]
    assert {"Key": "env", "Value": "test"} in tags
    out2 = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="hsm-demo-pca")["Stacks"][0]["Outputs"]}
    assert out2["IssuingArn"] == out["IssuingArn"]

    # update: the policy resource removed -> the bucket has no policy any more
    cfn.update_stack(StackName="hsm-demo-pca", TemplateBody=template(with_policy=False))
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket="hsm-demo-cfn-crl")
    assert e.value.response["Error"]["Code"] == "NoSuchBucketPolicy"

    cfn.delete_stack(StackName="hsm-demo-pca")
    for arn in (out["RootArn"], out["IssuingArn"]):
        status = pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]["Status"]
        assert status == "DELETED"


def test_table_gets_point_in_time_recovery_and_ttl_from_the_template(endpoint):
    """AWS::DynamoDB::Table's PointInTimeRecoverySpecification and TimeToLiveSpecification are
    applied (the registry template enables PITR; doctor checks it). Stock moto ignores both."""
    cfn = testing.client(endpoint, "cloudformation")
    ddb = testing.client(endpoint, "dynamodb")
    body = json.dumps({
        "Parameters": {"Pitr": {"Type": "String", "Default": "true"}},
        "Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": "hsm-demo-cfn-pitr",
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": {"Ref": "Pitr"}},
            "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
        }}},
    })
    cfn.create_stack(StackName="hsm-demo-pitr", TemplateBody=body)
    try:
        d = ddb.describe_continuous_backups(TableName="hsm-demo-cfn-pitr")["ContinuousBackupsDescription"]
        assert d["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", d
        t = ddb.describe_time_to_live(TableName="hsm-demo-cfn-pitr")["TimeToLiveDescription"]
        assert t == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}, t
    finally:
        cfn.delete_stack(StackName="hsm-demo-pitr")
