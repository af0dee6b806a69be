"""`python -m hsm_demo_standin.ctl up|down|reset|probe` — what `make aws-up/aws-down/aws-reset` run.

up     start the stand-in in the background (pid file, log), wait until it answers; if an AWS
       endpoint (this stand-in, moto or LocalStack) already answers there, use it as is.
down   stop only the stand-in that `up` started (by its pid file).
reset  clear the state of whatever answers (moto: POST /moto-api/reset; LocalStack:
       POST /_localstack/state/reset).
probe  print what answers: standin, moto, localstack, other or none.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import source_digest
from .launcher import probe


def fail(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _alive_standin(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"hsm_demo_standin" in cmdline


def _running_source(url: str) -> str | None:
    """The plugin source digest the stand-in at url reports (None if it reports none)."""
    try:
        with urllib.request.urlopen(f"{url}/_standin/info", timeout=2) as r:
            return json.loads(r.read()).get("source")
    except (OSError, ValueError):
        return None


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def up(args: argparse.Namespace) -> None:
    url = f"http://{args.host}:{args.port}"
    what = probe(args.host, args.port)
    if what in ("standin", "moto", "localstack"):
        print(f"aws-up: an AWS endpoint ({what}) already answers on {url}; using it as is")
        if what == "standin" and _running_source(url) != source_digest():
            print(f"aws-up: warning: the stand-in on {url} runs older plugin code than standin/ "
                  "(started before a change); `make aws-down aws-up` restarts it", file=sys.stderr)
        return
    if what == "other":
        fail(f"{args.host}:{args.port} is taken by something that is not an AWS endpoint")
    pidfile, log = Path(args.pidfile), Path(args.log)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    old = _read_pid(pidfile)
    if old is not None and not _alive_standin(old):
        pidfile.unlink(missing_ok=True)
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hsm_demo_standin", "--host", args.host, "--port", str(args.port),
             "--pidfile", str(pidfile)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env, start_new_session=True,
        )
    deadline = time.monotonic() + args.timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            fail(f"the stand-in did not start: {reason.removeprefix('error: ')} (log: {log})")
        if probe(args.host, args.port) == "standin" and pidfile.exists():
            print(f"aws-up: stand-in (moto + hsm-demo plugin) answers on {url} (pid {proc.pid}, log {log})")
            return
        time.sleep(delay)  # polling back-off with a bounded deadline
        delay = min(delay * 2, 0.25)
    proc.terminate()
    fail(f"the stand-in did not answer on {url} within {args.timeout:.0f}s (log: {log})")


def down(args: argparse.Namespace) -> None:
    pidfile = Path(args.pidfile)
    pid = _read_pid(pidfile)
    if pid is None:
        print(f"aws-down: no stand-in started by aws-up (no pid file {pidfile}); nothing to stop")
        return
    if not _alive_standin(pid):
        pidfile.unlink(missing_ok=True)
        print(f"aws-down: stand-in pid {pid} is not running; removed the stale pid file")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive_standin(pid):
        time.sleep(0.05)
    if _alive_standin(pid):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    print(f"aws-down: stopped the stand-in (pid {pid})")


def reset(args: argparse.Namespace) -> None:
    url = f"http://{args.host}:{args.port}"
    what = probe(args.host, args.port)
    if what in ("standin", "moto"):
        path = "/moto-api/reset"
    elif what == "localstack":
        path = "/_localstack/state/reset"
    elif what is None:
        fail(f"nothing answers on {url}; run `make aws-up` first")
    else:
        fail(f"{url} is not an AWS endpoint this target knows how to reset")
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data=b"", method="POST"), timeout=30):
            pass
    except (urllib.error.URLError, OSError) as e:
        fail(f"POST {url}{path} failed: {e}")
    print(f"aws-reset: {what} on {url} reset ({path})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hsm_demo_standin.ctl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["up", "down", "reset", "probe"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4566)
    p.add_argument("--pidfile", default=".run/standin.pid")
    p.add_argument("--log", default=".run/standin.log")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.command == "probe":
        print(probe(args.host, args.port) or "none")
        return
    {"up": up, "down": down, "reset": reset}[args.command](args)


if __name__ == "__main__":
    main()
