"""`python -m hsm_demo_standin`: moto's threaded server with our plugin, on a given address.

Start-up failures end with one line `error: …` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

EXIT_STARTUP = 2
LISTEN_BACKLOG = 4096


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_STARTUP)


def probe(host: str, port: int, timeout: float = 1.0) -> str | None:
    """What answers on host:port: 'standin', 'moto', 'localstack', 'other' or None (nothing)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/_standin/info")
        r = conn.getresponse()
        body = r.read()
        if r.status == 200 and b'"hsm-demo"' in body:
            return "standin"
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/moto-api/")
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            return "moto"
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/_localstack/health")
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            return "localstack"
        return "other"
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return "other"


def watch_parent(pid: int) -> None:
    """Exit this process as soon as process `pid` is gone (even if it was SIGKILLed)."""

    def gone() -> None:
        os._exit(0)

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        gone()
        return
    except (AttributeError, OSError):
        fd = None

    def wait_pidfd() -> None:
        assert fd is not None
        select.select([fd], [], [])
        gone()

    def poll() -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                gone()
            except PermissionError:
                pass
            time.sleep(0.2)

    threading.Thread(target=wait_pidfd if fd is not None else poll, daemon=True).start()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hsm_demo_standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4566, help="0 picks a free port (printed on stdout)")
    p.add_argument("--pidfile", help="write this process's pid here (removed at exit)")
    p.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    p.add_argument("--quiet", action="store_true", help="no request log")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.parent_pid is not None:
        watch_parent(args.parent_pid)

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        # Every request comes on a new connection (werkzeug answers "Connection: close"), so the
        # accept queue must hold a connection per request in flight: five runners with 50 devices
        # in flight each overflowed a queue of 128, and the dropped SYNs came back as 3 s connect
        # timeouts (3 % of the requests). The kernel caps the backlog at net.core.somaxconn.
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            what = probe(args.host, args.port)
            if what in ("standin", "moto", "localstack"):
                fail(f"{args.host}:{args.port} already serves an AWS endpoint ({what}); not starting a second one")
            fail(f"{args.host}:{args.port} is taken by something that is not an AWS endpoint")
        fail(f"cannot listen on {args.host}:{args.port}: {e.strerror}")
    port = sock.getsockname()[1]

    try:
        import moto  # noqa: F401
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as e:
        fail(f"moto[server] is not importable from {sys.executable} ({e}); run `make deps-py`")

    from . import check_moto_version, install

    try:
        check_moto_version()
    except (RuntimeError, OSError) as e:
        fail(f"{sys.executable}: {e}")
    from .middleware import StandinMiddleware

    install()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    handler: Any = MotoRequestHandler
    if args.quiet:

        class QuietHandler(MotoRequestHandler):  # type: ignore[misc,valid-type]
            def log_request(self, *a: Any, **k: Any) -> None:
                pass

        handler = QuietHandler
    from . import auth

    handler = auth.dated_handler(handler)
    server = make_server(
        args.host,
        port,
        StandinMiddleware(app),
        threaded=True,
        request_handler=handler,
        fd=sock.fileno(),
    )
    sock.close()  # make_server dup()ed it

    if args.pidfile:
        tmp = f"{args.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"hsm-demo stand-in (moto {moto.__version__}) listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()
        if args.pidfile:
            try:
                with open(args.pidfile) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    main()
