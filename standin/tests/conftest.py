"""One stand-in per test session, started through the launcher on a free port.

STANDIN_TEST_NO_SPEEDUPS=1 runs them against a stand-in whose CPU-only patches are off (they must
pass both ways). STANDIN_TEST_STOCK=1 runs the same tests against stock `moto_server`: every test of a behaviour
the plugin adds fails there (that's what the plugin is for); the tests that pin the plugin's
speed-ups against stock moto's answers (test_fast_paths.py) pass on both. Tests isolate themselves by creating their own CAs and by
scoping run-time switches to their own access key id.
"""

import itertools
import os

import pytest

from hsm_demo_standin import testing

STOCK = os.environ.get("STANDIN_TEST_STOCK") == "1"
_keys = itertools.count(1)


@pytest.fixture(scope="session")
def server():
    # STANDIN_TEST_NO_SPEEDUPS=1: the same tests against a stand-in without its CPU-only patches.
    extra = {"STANDIN_NO_SPEEDUPS": "1"} if os.environ.get("STANDIN_TEST_NO_SPEEDUPS") == "1" else None
    s = testing.start_server(extra_env=extra, stock=STOCK)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def endpoint(server):
    return server.url


@pytest.fixture(scope="session")
def pca(endpoint):
    return testing.client(endpoint)


@pytest.fixture(scope="session")
def hierarchy(pca):
    return testing.create_active_hierarchy(pca, "session")


@pytest.fixture
def scoped(endpoint):
    """A fresh access key id whose switches this test may change; returns (akid, client, set_switches)."""
    akid = f"AKIATESTSCOPE{next(_keys):04d}"

    def set_switches(**switches):
        return testing.control(endpoint, {"access_key_id": akid, **switches})

    return akid, testing.client(endpoint, access_key=akid), set_switches
