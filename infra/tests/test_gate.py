"""The gate itself: a 'broken' template that passes its check must make the gate fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1]
GOOD = INFRA / "templates" / "hierarchy.yaml"
CHECKOV = INFRA.parent / ".venv-checkov" / "bin" / "checkov"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True)


def test_guard_gate_fails_when_a_broken_template_passes(tmp_path: Path) -> None:
    shutil.copy(GOOD, tmp_path / "exactly_one_root_ca__not_really_broken.yaml")
    proc = run(str(INFRA / "tools" / "run_guard.py"), "--broken", str(tmp_path))
    assert proc.returncode == 1
    assert "PASSES guard rule exactly_one_root_ca (must be rejected)" in proc.stderr


def test_checkov_gate_fails_when_a_broken_template_passes(tmp_path: Path) -> None:
    shutil.copy(GOOD, tmp_path / "CKV_HSM_4__not_really_broken.yaml")
    proc = run(str(INFRA / "tools" / "run_checkov.py"), "--checkov", str(CHECKOV), "--broken", str(tmp_path))
    assert proc.returncode == 1
    assert "PASSES checkov CKV_HSM_4 (must be rejected)" in proc.stderr
