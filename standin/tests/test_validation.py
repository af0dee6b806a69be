"""Server-side validation from botocore's service model (lengths, patterns, enums, ranges, required).

The requests go through clients with botocore's own checks off (the Rust SDK checks only required
members), so only the server can refuse them. Stock moto 5.2.5 takes all of them (creates the CA,
issues the certificate, answers the query): every test fails there.
"""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hsm_demo_standin import testing, validation


def unchecked(endpoint, service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))


def refused(call):
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Code"] == "ValidationException"
    return e.value.response["Error"]["Message"]


def test_pca_pattern_and_enum_violations_are_reported_together(endpoint, pca):
    """Country "USA" breaks its maximum length and its pattern, KeyAlgorithm its enum: one
    ValidationException naming the three, paths and constraints as the model states them; no CA."""
    shapes = validation.model("acm-pca", "2017-08-22")["shapes"]
    country_pattern = shapes["CountryCodeString"]["pattern"]
    cn = "validation pattern enum"
    msg = refused(lambda: unchecked(endpoint, "acm-pca").create_certificate_authority(
        CertificateAuthorityConfiguration={"KeyAlgorithm": "EC_bogus", "SigningAlgorithm": "SHA256WITHECDSA",
                                           "Subject": {"CommonName": cn, "Country": "USA"}},
        CertificateAuthorityType="ROOT"))
    assert msg.startswith("3 validation errors detected: ")
    assert "Value 'USA' at 'certificateAuthorityConfiguration.subject.country' failed to satisfy constraint: Member must have length less than or equal to 2" in msg
    assert ("Value 'USA' at 'certificateAuthorityConfiguration.subject.country' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {country_pattern}") in msg
    assert "at 'certificateAuthorityConfiguration.keyAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [" in msg
    cas = pca.list_certificate_authorities()["CertificateAuthorities"]
    assert not [c for c in cas if c["CertificateAuthorityConfiguration"]["Subject"].get("CommonName") == cn]


def test_pca_length_range_and_required(endpoint, hierarchy):
    """IdempotencyToken over its maximum length, Validity.Value below its minimum, and a missing
    required member are each refused before the CA acts."""
    client = unchecked(endpoint, "acm-pca")
    ca = hierarchy["issuing_arn"]
    csr = testing.make_csr("validation")[0]
    base = dict(CertificateAuthorityArn=ca, Csr=csr, SigningAlgorithm="SHA256WITHECDSA",
                Validity={"Type": "DAYS", "Value": 1})
    msg = refused(lambda: client.issue_certificate(**base, IdempotencyToken="t" * 37))
    assert "at 'idempotencyToken' failed to satisfy constraint: Member must have length less than or equal to 36" in msg
    msg = refused(lambda: client.issue_certificate(**{**base, "Validity": {"Type": "DAYS", "Value": 0}}))
    assert "Value '0' at 'validity.value' failed to satisfy constraint: Member must have value greater than or equal to 1" in msg
    msg = refused(lambda: client.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial="01"))
    assert msg == ("1 validation error detected: Value null at 'revocationReason' failed to satisfy constraint: "
                   "Member must not be null")


def test_dynamodb_range_and_enum(endpoint):
    """DynamoDB: Query Limit 0 (minimum 1) and an unknown ReturnConsumedCapacity, refused with
    DynamoDB's ValidationException."""
    ddb = unchecked(endpoint, "dynamodb")
    msg = refused(lambda: ddb.query(TableName="validation-table", KeyConditionExpression="pk = :v",
                                    ExpressionAttributeValues={":v": {"S": "x"}}, Limit=0,
                                    ReturnConsumedCapacity="EVERYTHING"))
    assert msg.startswith("2 validation errors detected: ")
    assert "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1" in msg
    assert "Value 'EVERYTHING' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [" in msg
