"""hsm-demo's local AWS stand-in: moto's server plus a plugin that makes ACM PCA faithful.

`install()` applies the plugin to the moto modules of this process; the launcher
(`python -m hsm_demo_standin`) calls it before it starts moto's threaded server.
"""

import os
import re
from pathlib import Path

__version__ = "0.1.0"

# The one place moto's version is pinned: the repository's requirements.txt, which `make deps-py`
# installs. The launcher and `install()` both refuse another version.
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"

_installed = False
_digest: str | None = None


def moto_version() -> str:
    """The moto version requirements.txt pins (`moto[server]==X`)."""
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.fullmatch(r"moto(\[[a-z,]+\])?==([0-9][0-9A-Za-z.]*)", line.split("#", 1)[0].strip())
        if m:
            return m.group(2)
    raise RuntimeError(f"{REQUIREMENTS} pins no moto version (a line `moto[server]==X`)")


def speedups_enabled() -> bool:
    """False with STANDIN_NO_SPEEDUPS=1: the patches that only save CPU (moto_fast, dynamodb_fast,
    the middleware's routing cache) stay off, and moto answers through its own code paths. The
    stand-in's tests pass both ways (`make test-standin` runs them both ways)."""
    return os.environ.get("STANDIN_NO_SPEEDUPS", "") not in ("1", "true")


def check_moto_version() -> None:
    """Refuses a moto other than the pinned one: every patch here is written against its code."""
    import moto

    pinned = moto_version()
    if moto.__version__ != pinned:
        raise RuntimeError(
            f"moto {moto.__version__} is installed; the stand-in is written for moto {pinned} "
            f"(requirements.txt): run `make deps-py`"
        )


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
    isolate DynamoDB transactions, evaluate S3 bucket-policy conditions, cache per-request work moto repeats
    (unless STANDIN_NO_SPEEDUPS=1); refuses a moto other than the pinned one (idempotent)."""
    global _installed
    if _installed:
        return
    from . import acmpca, audit, cfn, cfn_fixes, config, dynamodb, lifecycle, moto_fast, s3_policy

    check_moto_version()
    fast = speedups_enabled()
    if fast:
        moto_fast.install()
    acmpca.install()
    lifecycle.install()
    audit.install()
    s3_policy.install()
    dynamodb.install(speedups=fast)
    cfn.install()
    cfn_fixes.install()
    config.install_reset_hook()
    _installed = True
