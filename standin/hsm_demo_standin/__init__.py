"""hsm-demo's local AWS stand-in: moto's server plus a plugin that makes ACM PCA faithful.

`install()` applies the plugin to the moto modules of this process; the launcher
(`python -m hsm_demo_standin`) calls it before it starts moto's threaded server.
"""

__version__ = "0.1.0"

_installed = False


def install() -> None:
    """Patch moto's ACM PCA backend, register our CloudFormation types, fix its CloudFormation engine (idempotent)."""
    global _installed
    if _installed:
        return
    from . import acmpca, cfn, cfn_fixes, config

    acmpca.install()
    cfn.install()
    cfn_fixes.install()
    config.install_reset_hook()
    _installed = True
