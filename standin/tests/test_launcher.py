"""The launcher `python -m hsm_demo_standin`: one-line start-up errors, pid file, parent watch.

STANDIN_TEST_STOCK=1 runs stock `python -m moto.server` with the same options instead: it knows
neither --pidfile nor --parent-pid and prints multi-line usage/tracebacks, so these tests fail.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from hsm_demo_standin import testing

STOCK = os.environ.get("STANDIN_TEST_STOCK") == "1"
MODULE = "moto.server" if STOCK else "hsm_demo_standin"


def launch(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(testing.STANDIN_DIR))
    return subprocess.Popen([sys.executable, "-m", MODULE, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_port_taken_by_something_else_is_a_one_line_error():
    """A port held by a non-AWS listener -> exit 2 and exactly one line `error: … not an AWS endpoint`.
    Stock moto prints werkzeug's multi-line message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]

        def refuse():  # answer nothing useful: accept and close
            for _ in range(3):
                try:
                    c, _ = s.accept()
                    c.close()
                except OSError:
                    return

        threading.Thread(target=refuse, daemon=True).start()
        p = launch("--host", "127.0.0.1", "--port", str(port))
        out, err = p.communicate(timeout=30)
    assert p.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not an AWS endpoint" in lines[0], err


def test_port_taken_by_an_aws_endpoint_says_so(endpoint):
    """Launching on the port of a running stand-in -> one line naming it as an AWS endpoint."""
    port = endpoint.rsplit(":", 1)[1]
    p = launch("--host", "127.0.0.1", "--port", port)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "already serves an AWS endpoint" in lines[0], err


def test_exits_when_parent_dies_even_by_sigkill(tmp_path: Path):
    """--parent-pid P: when P is SIGKILLed the stand-in exits by itself and removes its pid file.
    Stock moto has no such option and would outlive its test."""
    parent = subprocess.Popen(["sleep", "300"])
    pidfile = tmp_path / "standin.pid"
    p = launch("--host", "127.0.0.1", "--port", "0", "--quiet", "--parent-pid", str(parent.pid),
               "--pidfile", str(pidfile))
    try:
        line = p.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + p.stderr.read()
        url = line.rsplit("listening on ", 1)[1].strip()
        testing.wait_ready(url, deadline_s=20, proc=p)
        assert pidfile.read_text().strip() == str(p.pid)
        parent.kill()
        parent.wait()
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        parent.kill()
        parent.wait()


def test_sigterm_stops_and_removes_pidfile(tmp_path: Path):
    """SIGTERM (what `make aws-down` sends) stops the server and removes its pid file."""
    pidfile = tmp_path / "standin.pid"
    p = launch("--host", "127.0.0.1", "--port", "0", "--quiet", "--pidfile", str(pidfile))
    try:
        line = p.stdout.readline()
        assert "listening on" in line, line + p.stderr.read()
        testing.wait_ready(line.rsplit("listening on ", 1)[1].strip(), deadline_s=20, proc=p)
        assert pidfile.exists()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        assert not pidfile.exists()
    finally:
        if p.poll() is None:
            p.kill()


def _ctl_up(port, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(testing.STANDIN_DIR))
    return subprocess.run([sys.executable, "-m", "hsm_demo_standin.ctl", "--host", "127.0.0.1", "--port", str(port),
                           "--pidfile", str(tmp_path / "pid"), "--log", str(tmp_path / "log"), "up"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_aws_up_uses_a_current_standin_silently(endpoint, tmp_path):
    """`aws-up` on a port where a stand-in of this tree's code answers: used as is, no warning, nothing started."""
    r = _ctl_up(endpoint.rsplit(":", 1)[1], tmp_path)
    assert r.returncode == 0 and "using it as is" in r.stdout, r.stdout + r.stderr
    assert r.stderr == "" and not (tmp_path / "pid").exists()


def test_aws_up_warns_about_a_standin_running_older_code(tmp_path):
    """A stand-in started before a change to standin/ (its /_standin/info reports another source
    digest): `aws-up` still uses it but says on stderr that `make aws-down aws-up` restarts it."""
    import http.server

    class Old(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"standin": "hsm-demo", "version": "0.1.0", "source": "older"}'
            self.send_response(200 if self.path == "/_standin/info" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Old)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = _ctl_up(srv.server_address[1], tmp_path)
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 0, r.stderr
    assert "runs older plugin code" in r.stderr and "make aws-down aws-up" in r.stderr
    assert not (tmp_path / "pid").exists()


def test_moto_version_has_one_source_and_install_refuses_another(monkeypatch):
    """requirements.txt pins moto; the package reads the pin from there, the venv has exactly it,
    and install() (like the launcher) refuses any other version before patching anything."""
    import re

    import moto

    import hsm_demo_standin as standin

    pins = [l for l in standin.REQUIREMENTS.read_text().splitlines() if re.match(r"moto(\[|==)", l)]
    assert pins == [f"moto[server]=={standin.moto_version()}"], pins
    assert moto.__version__ == standin.moto_version()
    monkeypatch.setattr(moto, "__version__", "0.0.1")
    try:
        standin.check_moto_version()
    except RuntimeError as e:
        assert "moto 0.0.1 is installed" in str(e) and standin.moto_version() in str(e), e
    else:
        raise AssertionError("another moto version was accepted")


def test_speedups_switch_is_reported(endpoint):
    """STANDIN_NO_SPEEDUPS=1 turns the CPU-only patches off; the info endpoint says which is running."""
    import json
    import urllib.request

    def info(url):
        with urllib.request.urlopen(f"{url}/_standin/info", timeout=10) as r:
            return json.loads(r.read())

    expected = os.environ.get("STANDIN_TEST_NO_SPEEDUPS") != "1"
    assert info(endpoint)["speedups"] is expected
    other = testing.start_server(extra_env={"STANDIN_NO_SPEEDUPS": "1" if expected else "0"})
    try:
        assert info(other.url)["speedups"] is (not expected)
    finally:
        other.stop()
