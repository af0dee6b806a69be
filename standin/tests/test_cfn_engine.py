"""Where moto 5.2.5's CloudFormation engine differs from AWS (hsm_demo_standin/cfn_fixes.py).

Each docstring says what stock moto's engine does. The ACM PCA types are ours (cfn.py), so these
tests fail on stock `moto_server` anyway; they were also checked against our plugin with
cfn_fixes.install() left out, where each one fails for the reason its docstring gives.
"""

import itertools
import json

import pytest
from botocore.exceptions import ClientError, WaiterError

from hsm_demo_standin import testing

T = "arn:aws:acm-pca:::template/"
_n = itertools.count(1)
FAST_WAIT = {"Delay": 1, "MaxAttempts": 3}


def unique(prefix):
    return f"{prefix}-{next(_n)}"


@pytest.fixture(scope="module")
def cfn(endpoint):
    return testing.client(endpoint, "cloudformation")


@pytest.fixture(scope="module")
def s3(endpoint):
    return testing.client(endpoint, "s3")


def root_ca(cn="engine root", tags=None):
    props = {
        "Type": "ROOT",
        "KeyAlgorithm": "EC_prime256v1",
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Subject": {"CommonName": cn},
    }
    if tags is not None:
        props["Tags"] = tags
    return {"Type": "AWS::ACMPCA::CertificateAuthority", "Properties": props}


def root_cert(ca="CA", csr=None):
    return {
        "Type": "AWS::ACMPCA::Certificate",
        "Properties": {
            "CertificateAuthorityArn": {"Ref": ca},
            "CertificateSigningRequest": csr if csr is not None else {"Fn::GetAtt": [ca, "CertificateSigningRequest"]},
            "SigningAlgorithm": "SHA256WITHECDSA",
            "TemplateArn": T + "RootCACertificate/V1",
            "Validity": {"Type": "YEARS", "Value": 5},
        },
    }


def activation(ca="CA", cert="Cert"):
    return {
        "Type": "AWS::ACMPCA::CertificateAuthorityActivation",
        "Properties": {
            "CertificateAuthorityArn": {"Ref": ca},
            "Certificate": {"Fn::GetAtt": [cert, "Certificate"]},
            "Status": "ACTIVE",
        },
    }


def stack(cfn, name):
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def outputs(st):
    return {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs") or []}


def failed_events(cfn, name):
    return {e["LogicalResourceId"]: e.get("ResourceStatusReason", "")
            for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
            if e["ResourceStatus"].endswith("_FAILED")}


def ca_status(pca, arn):
    return pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]["Status"]


def cas_with_cn(pca, cn):
    return {c["Arn"]: c["Status"] for c in pca.list_certificate_authorities()["CertificateAuthorities"]
            if c["CertificateAuthorityConfiguration"]["Subject"].get("CommonName") == cn}


# --------------------------------------------------------------------------- 4: failed operations
def test_failed_create_rolls_back_and_stack_stays_describable(cfn, pca):
    """A resource failing during CreateStack: the call returns the StackId, the stack ends
    ROLLBACK_COMPLETE with the reason, the resource's CREATE_FAILED event carries ACM PCA's message,
    what was created is deleted, there are no outputs, the create waiter stops on the failure,
    UpdateStack is refused and DeleteStack works.
    Stock moto returns ACM PCA's MalformedCSRException (JSON, not CloudFormation's XML) from
    CreateStack and from every later DescribeStacks of that stack, and leaves the CA behind."""
    name, cn = unique("engine-fail"), unique("engine fail root")
    tpl = json.dumps({
        "Resources": {"CA": root_ca(cn), "Cert": root_cert(csr="not a CSR")},
        "Outputs": {"CertArn": {"Value": {"Fn::GetAtt": ["Cert", "Arn"]}}},
    })
    stack_id = cfn.create_stack(StackName=name, TemplateBody=tpl)["StackId"]
    with pytest.raises(WaiterError) as w:
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=FAST_WAIT)
    assert "terminal failure state" in str(w.value)
    for _ in range(2):  # every later call answers, in XML
        st = stack(cfn, name)
        assert st["StackId"] == stack_id
        assert st["StackStatus"] == "ROLLBACK_COMPLETE"
        assert st["StackStatusReason"] == ("The following resource(s) failed to create: [Cert]. "
                                           "Rollback requested by user.")
        assert "Outputs" not in st
    reasons = failed_events(cfn, name)
    assert list(reasons) == ["Cert"]
    assert "The certificate signing request is invalid." in reasons["Cert"]
    statuses = [e["ResourceStatus"] for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
                if e["LogicalResourceId"] == name]
    assert statuses[:2] == ["ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS"]  # newest first
    assert cfn.list_stack_resources(StackName=name)["StackResourceSummaries"] == []
    assert list(cas_with_cn(pca, cn).values()) == ["DELETED"]  # the CA made before the failure

    with pytest.raises(ClientError) as e:
        cfn.update_stack(StackName=name, TemplateBody=tpl.replace("not a CSR", "still not"))
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "ROLLBACK_COMPLETE" in e.value.response["Error"]["Message"]
    cfn.delete_stack(StackName=name)
    with pytest.raises(ClientError) as e:
        cfn.describe_stacks(StackName=name)
    assert "does not exist" in e.value.response["Error"]["Message"]


@pytest.mark.parametrize("how", ["DisableRollback", "DO_NOTHING", "DELETE"])
def test_failed_create_on_failure_modes(cfn, pca, how):
    """OnFailure=DO_NOTHING / DisableRollback: CREATE_FAILED, the CA made before the failure stays;
    OnFailure=DELETE: the stack is rolled back and deleted (by name it no longer exists).
    Stock moto ignores both parameters: the call fails with ACM PCA's JSON error."""
    name, cn = unique("engine-onfail"), unique("engine onfail root")
    tpl = json.dumps({"Resources": {"CA": root_ca(cn), "Cert": root_cert(csr="garbage")}})
    kw = {"DisableRollback": True} if how == "DisableRollback" else {"OnFailure": how}
    stack_id = cfn.create_stack(StackName=name, TemplateBody=tpl, **kw)["StackId"]
    (ca_arn, ca_st), = cas_with_cn(pca, cn).items()
    if how == "DELETE":
        with pytest.raises(ClientError) as e:
            cfn.describe_stacks(StackName=name)
        assert "does not exist" in e.value.response["Error"]["Message"]
        assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
        assert ca_st == "DELETED"
    else:
        st = stack(cfn, name)
        assert st["StackStatus"] == "CREATE_FAILED"
        assert "[Cert]" in st["StackStatusReason"]
        assert ca_st == "PENDING_CERTIFICATE"
        ids = {r["LogicalResourceId"]: r["PhysicalResourceId"]
               for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}
        assert ids == {"CA": ca_arn}
        cfn.delete_stack(StackName=name)
        assert ca_status(pca, ca_arn) == "DELETED"


def test_create_stack_onfailure_with_disable_rollback_is_rejected(cfn):
    """OnFailure together with DisableRollback is a ValidationError, and no stack is made.
    Stock moto ignores both."""
    name = unique("engine-both")
    tpl = json.dumps({"Resources": {"CA": root_ca(unique("x"))}})
    with pytest.raises(ClientError) as e:
        cfn.create_stack(StackName=name, TemplateBody=tpl, OnFailure="DELETE", DisableRollback=True)
    assert e.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError):
        cfn.describe_stacks(StackName=name)


def test_failed_update_rolls_back(cfn, pca):
    """A resource failing during UpdateStack: the call returns the StackId, the stack ends
    UPDATE_ROLLBACK_COMPLETE, what the update already changed (the CA's tags) is changed back, the
    outputs are the old ones and a later update works.
    Stock moto returns ACM PCA's JSON error from UpdateStack and leaves the stack half-updated
    (new tags) in UPDATE_IN_PROGRESS."""
    name, cn = unique("engine-upd"), unique("engine upd root")
    base = {"CA": root_ca(cn, tags=[{"Key": "v", "Value": "1"}]), "Cert": root_cert(), "Act": activation()}
    out = {"Arn": {"Value": {"Ref": "CA"}}}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": base, "Outputs": out}))
    arn = outputs(stack(cfn, name))["Arn"]
    bad = dict(base, CA=root_ca(cn, tags=[{"Key": "v", "Value": "2"}]), Leaf=root_cert(csr="garbage"))
    bad["Leaf"]["DependsOn"] = "Act"
    cfn.update_stack(StackName=name, TemplateBody=json.dumps({"Resources": bad, "Outputs": out}))
    with pytest.raises(WaiterError):
        cfn.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=FAST_WAIT)
    st = stack(cfn, name)
    assert st["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert outputs(st) == {"Arn": arn}
    assert "garbage" not in cfn.get_template(StackName=name)["TemplateBody"]
    assert "Leaf" in failed_events(cfn, name)
    assert pca.list_tags(CertificateAuthorityArn=arn)["Tags"] == [{"Key": "v", "Value": "1"}]
    assert ca_status(pca, arn) == "ACTIVE"

    good = dict(base, CA=root_ca(cn, tags=[{"Key": "v", "Value": "3"}]))
    cfn.update_stack(StackName=name, TemplateBody=json.dumps({"Resources": good, "Outputs": out}))
    assert stack(cfn, name)["StackStatus"] == "UPDATE_COMPLETE"
    assert pca.list_tags(CertificateAuthorityArn=arn)["Tags"] == [{"Key": "v", "Value": "3"}]
    cfn.delete_stack(StackName=name)


def test_update_with_bad_parameters_is_a_validation_error_and_changes_nothing(cfn):
    """UpdateStack without a required parameter is the call's ValidationError; the stack keeps its
    template and status. Stock moto answers with the error but has already stored the new template
    (GetTemplate returns it)."""
    name = unique("engine-param")
    tpl = {"Parameters": {"P": {"Type": "String"}}, "Resources": {"CA": root_ca(unique("p"))}}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(tpl), Parameters=[{"ParameterKey": "P", "ParameterValue": "a"}])
    tpl2 = dict(tpl, Parameters={"P": {"Type": "String"}, "Q": {"Type": "String"}})
    with pytest.raises(ClientError) as e:
        cfn.update_stack(StackName=name, TemplateBody=json.dumps(tpl2),
                         Parameters=[{"ParameterKey": "P", "ParameterValue": "a"}])
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "Q" in e.value.response["Error"]["Message"]
    st = stack(cfn, name)
    assert st["StackStatus"] == "CREATE_COMPLETE"
    assert '"Q"' not in json.dumps(cfn.get_template(StackName=name)["TemplateBody"])
    cfn.delete_stack(StackName=name)


# ----------------------------------------------------------------------- 3: replacement cascades
def test_replacement_cascades_to_certificate_and_activation(cfn, pca):
    """A parameter-only update that replaces the CA (its Subject changes) re-issues the Certificate
    (whose CSR is the CA's GetAtt) and re-activates the new CA (the activation Refs it): the new CA
    is ACTIVE with a certificate for the new subject, the old one DELETED.
    Stock moto replaces only the CA (the one resource whose properties Ref the parameter): the
    Certificate and the activation stay on the old CA and the new CA stays PENDING_CERTIFICATE."""
    name = unique("engine-repl")
    cn1, cn2 = unique("engine repl a"), unique("engine repl b")
    tpl = json.dumps({
        "Parameters": {"Cn": {"Type": "String"}},
        "Resources": {"CA": dict(root_ca(), Properties=dict(root_ca()["Properties"], Subject={"CommonName": {"Ref": "Cn"}})),
                      "Cert": root_cert(), "Act": activation()},
        "Outputs": {"Arn": {"Value": {"Ref": "CA"}},
                    "Chain": {"Value": {"Fn::GetAtt": ["Act", "CompleteCertificateChain"]}}},
    })
    cfn.create_stack(StackName=name, TemplateBody=tpl, Parameters=[{"ParameterKey": "Cn", "ParameterValue": cn1}])
    old = outputs(stack(cfn, name))["Arn"]
    assert ca_status(pca, old) == "ACTIVE"

    cfn.update_stack(StackName=name, TemplateBody=tpl, Parameters=[{"ParameterKey": "Cn", "ParameterValue": cn2}])
    new_cas = cas_with_cn(pca, cn2)
    assert list(new_cas.values()) == ["ACTIVE"]  # created and activated by the update itself
    st = stack(cfn, name)
    assert st["StackStatus"] == "UPDATE_COMPLETE"
    new = outputs(st)["Arn"]
    assert new != old and list(new_cas) == [new]
    assert ca_status(pca, old) == "DELETED"
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(
        pca.get_certificate_authority_certificate(CertificateAuthorityArn=new)["Certificate"].encode())
    assert cert.subject.rfc4514_string() == f"CN={cn2}"
    assert x509.load_pem_x509_certificates(outputs(st)["Chain"].encode())[0] == cert
    cfn.delete_stack(StackName=name)


def test_usage_mode_change_replaces_and_reactivates_the_ca(cfn, pca):
    """The infra's case: UsageMode (a parameter) changes, the CA is replaced with that UsageMode and
    the update re-issues its certificate and activates it (see the test above for stock moto)."""
    name = unique("engine-usage")
    ca = root_ca(unique("engine usage"))
    ca["Properties"]["UsageMode"] = {"Ref": "Usage"}
    tpl = json.dumps({
        "Parameters": {"Usage": {"Type": "String", "Default": "GENERAL_PURPOSE"}},
        "Resources": {"CA": ca, "Cert": root_cert(), "Act": activation()},
        "Outputs": {"Arn": {"Value": {"Ref": "CA"}}},
    })
    cfn.create_stack(StackName=name, TemplateBody=tpl)
    old = outputs(stack(cfn, name))["Arn"]
    cfn.update_stack(StackName=name, TemplateBody=tpl,
                     Parameters=[{"ParameterKey": "Usage", "ParameterValue": "SHORT_LIVED_CERTIFICATE"}])
    new = outputs(stack(cfn, name))["Arn"]
    assert new != old and ca_status(pca, old) == "DELETED"
    got = pca.describe_certificate_authority(CertificateAuthorityArn=new)["CertificateAuthority"]
    assert (got["Status"], got["UsageMode"]) == ("ACTIVE", "SHORT_LIVED_CERTIFICATE")
    cfn.delete_stack(StackName=name)


# ------------------------------------------------------------------ 2: parameter-only updates
COND_TPL = """
Parameters:
  Mode: {Type: String, AllowedValues: [A, B]}
  Bucket: {Type: String}
Conditions:
  IsB: !Equals [!Ref Mode, B]
Resources:
  Always:
    Type: AWS::S3::Bucket
    Properties: {BucketName: !Sub "${Bucket}-always"}
  OnlyB:
    Type: AWS::S3::Bucket
    Condition: IsB
    Properties: {BucketName: !Sub "${Bucket}-onlyb"}
  Policy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref Always
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Sid: !Sub "Read${Mode}"
            Effect: !If [IsB, Deny, Allow]
            Principal: {Service: acm-pca.amazonaws.com}
            Action: s3:GetBucketAcl
            Resource: !Sub "arn:aws:s3:::${Always}"
Outputs:
  OnlyB: {Condition: IsB, Value: !Ref OnlyB}
"""


def _bucket_exists(s3, bucket):
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchBucket")
        return False


def test_parameter_only_update_creates_deletes_and_updates(cfn, s3):
    """Same template, only the parameter changes. A→B: the Condition IsB turns true and UpdateStack
    itself creates the bucket (no read of the stack in between); the bucket policy, which sees the
    parameter only through Fn::Sub and Fn::If, is updated. B→A: the bucket is deleted, the policy
    changed back. Reads (DescribeStacks, ListStackResources) never create anything.
    Stock moto creates OnlyB only lazily on the next read of the stack, never deletes it, never
    updates the policy (it only notices parameters used by a direct Ref), and lists the resource
    whose Condition is false as a blank entry in ListStackResources."""
    name, bucket = unique("engine-cond"), unique("hsm-demo-engine")
    p = lambda mode: [{"ParameterKey": "Mode", "ParameterValue": mode},  # noqa: E731
                      {"ParameterKey": "Bucket", "ParameterValue": bucket}]

    def policy():
        return json.loads(s3.get_bucket_policy(Bucket=f"{bucket}-always")["Policy"])["Statement"][0]

    cfn.create_stack(StackName=name, TemplateBody=COND_TPL, Parameters=p("A"))
    assert (policy()["Sid"], policy()["Effect"]) == ("ReadA", "Allow")
    assert "OnlyB" not in outputs(stack(cfn, name))
    kinds = {r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}
    assert kinds == {"Always", "Policy"}
    assert not _bucket_exists(s3, f"{bucket}-onlyb")

    cfn.update_stack(StackName=name, TemplateBody=COND_TPL, Parameters=p("B"))
    assert _bucket_exists(s3, f"{bucket}-onlyb")  # before any read of the stack
    assert (policy()["Sid"], policy()["Effect"]) == ("ReadB", "Deny")
    assert outputs(stack(cfn, name))["OnlyB"] == f"{bucket}-onlyb"

    cfn.update_stack(StackName=name, TemplateBody=COND_TPL, Parameters=p("A"))
    assert not _bucket_exists(s3, f"{bucket}-onlyb")
    assert (policy()["Sid"], policy()["Effect"]) == ("ReadA", "Allow")
    st = stack(cfn, name)
    assert st["StackStatus"] == "UPDATE_COMPLETE" and "OnlyB" not in outputs(st)
    cfn.delete_stack(StackName=name)
    assert not _bucket_exists(s3, f"{bucket}-always")


def test_update_removing_a_resource_deletes_it_after_the_rest(cfn, s3):
    """A resource dropped from the template is deleted by the update; an unchanged one is left as
    it is (not re-created). Stock moto does the same: this guards our re-implemented update."""
    name, bucket = unique("engine-rm"), unique("hsm-demo-engine-rm")
    tpl = lambda names: json.dumps({"Resources": {  # noqa: E731
        n: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": f"{bucket}-{n.lower()}"}} for n in names}})
    cfn.create_stack(StackName=name, TemplateBody=tpl(["Keep", "Drop"]))
    s3.put_object(Bucket=f"{bucket}-keep", Key="k", Body=b"x")
    cfn.update_stack(StackName=name, TemplateBody=tpl(["Keep"]))
    assert not _bucket_exists(s3, f"{bucket}-drop")
    assert s3.get_object(Bucket=f"{bucket}-keep", Key="k")["Body"].read() == b"x"
    s3.delete_object(Bucket=f"{bucket}-keep", Key="k")
    cfn.delete_stack(StackName=name)


# ------------------------------------------------------------------------ 1: YAML !Condition
COND_SHORT = """
Parameters:
  Mode: {Type: String}
  Bucket: {Type: String}
Conditions:
  IsB: !Equals [!Ref Mode, B]
  NotB: !Not [!Condition IsB]
  BAndTrue: !And [!Condition IsB, !Equals [x, x]]
  BOrNever: !Or [!Condition IsB, !Equals [x, y]]
Resources:
  Marker:
    Type: AWS::S3::Bucket
    Properties: {BucketName: !Sub "${Bucket}-marker"}
  NotBBucket:
    Type: AWS::S3::Bucket
    Condition: NotB
    Properties: {BucketName: !Sub "${Bucket}-notb"}
  AndBucket:
    Type: AWS::S3::Bucket
    Condition: BAndTrue
    Properties: {BucketName: !Sub "${Bucket}-and"}
  OrBucket:
    Type: AWS::S3::Bucket
    Condition: BOrNever
    Properties: {BucketName: !Sub "${Bucket}-or"}
"""


@pytest.mark.parametrize("mode,present", [("A", {"notb"}), ("B", {"and", "or"})])
def test_yaml_short_form_condition(cfn, s3, mode, present):
    """`!Condition X` inside !Not/!And/!Or refers to condition X, as in AWS.
    Stock moto reads it as {"Fn::Condition": "X"} and evaluates it as a non-condition: !Not of it is
    always true, !And of it always false, so NotBBucket exists and AndBucket doesn't in both modes
    (mode A happens to come out right)."""
    name, bucket = unique("engine-yaml"), unique("hsm-demo-engine-yaml")
    cfn.create_stack(StackName=name, TemplateBody=COND_SHORT,
                     Parameters=[{"ParameterKey": "Mode", "ParameterValue": mode},
                                 {"ParameterKey": "Bucket", "ParameterValue": bucket}])
    assert stack(cfn, name)["StackStatus"] == "CREATE_COMPLETE"
    have = {s for s in ("notb", "and", "or") if _bucket_exists(s3, f"{bucket}-{s}")}
    assert have == present
    cfn.delete_stack(StackName=name)


# --------------------------------------------------------------------------- our types (cfn.py)
@pytest.mark.parametrize("ref", [["CA", "Certificate"], ["Act", "Arn"]])
def test_getatt_of_an_attribute_the_type_lacks_is_rejected(cfn, pca, ref):
    """Fn::GetAtt of an attribute the type does not have (the CA has no Certificate, the activation
    no Arn) fails CreateStack's validation, as in AWS, and no CA is created."""
    name, cn = unique("engine-attr"), unique("engine attr root")
    tpl = json.dumps({"Resources": {"CA": root_ca(cn), "Cert": root_cert(), "Act": activation()},
                      "Outputs": {"X": {"Value": {"Fn::GetAtt": ref}}}})
    with pytest.raises(ClientError) as e:
        cfn.create_stack(StackName=name, TemplateBody=tpl)
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert ref[1] in e.value.response["Error"]["Message"]
    assert cas_with_cn(pca, cn) == {}


def test_removing_the_activation_disables_the_ca(cfn, pca):
    """An update that drops the CertificateAuthorityActivation disables its CA (as AWS does) and
    leaves the CA and its certificate in place; DeleteStack then deletes the CA."""
    name, cn = unique("engine-deact"), unique("engine deact root")
    res = {"CA": root_ca(cn), "Cert": root_cert()}
    out = {"Arn": {"Value": {"Ref": "CA"}}}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": dict(res, Act=activation()), "Outputs": out}))
    arn = outputs(stack(cfn, name))["Arn"]
    assert ca_status(pca, arn) == "ACTIVE"

    cfn.update_stack(StackName=name, TemplateBody=json.dumps({"Resources": res, "Outputs": out}))
    assert stack(cfn, name)["StackStatus"] == "UPDATE_COMPLETE"
    assert ca_status(pca, arn) == "DISABLED"
    assert pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)["Certificate"]
    cfn.delete_stack(StackName=name)
    assert ca_status(pca, arn) == "DELETED"
