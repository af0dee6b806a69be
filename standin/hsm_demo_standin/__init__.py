"""hsm-demo's local AWS stand-in: moto's server plus a plugin that makes ACM PCA faithful.

`install()` applies the plugin to the moto modules of this process; the launcher
(`python -m hsm_demo_standin`) calls it before it starts moto's threaded server.
"""

__version__ = "0.1.0"

_installed = False
_digest: str | None = None


def source_digest() -> str:
    """sha256 of this package's Python sources: tells a stand-in started from older code apart."""
    global _digest
    if _digest is None:
        import hashlib
        from pathlib import Path

        h = hashlib.sha256()
        for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        _digest = h.hexdigest()
    return _digest


def install() -> None:
    """Patch moto's ACM PCA backend, register our CloudFormation types, fix its CloudFormation engine,
    isolate DynamoDB transactions, evaluate S3 bucket-policy conditions, cache per-request work moto repeats (idempotent)."""
    global _installed
    if _installed:
        return
    from . import acmpca, audit, cfn, cfn_fixes, config, dynamodb, lifecycle, moto_fast, s3_policy

    moto_fast.install()
    acmpca.install()
    lifecycle.install()
    audit.install()
    s3_policy.install()
    dynamodb.install()
    cfn.install()
    cfn_fixes.install()
    config.install_reset_hook()
    _installed = True
