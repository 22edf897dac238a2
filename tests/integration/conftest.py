"""Fixtures for the Myelin black-box suite.

`server` is one running `myelin serve`, once per storage engine (ids
`sqlite` and `postgres`). `server_factory` makes more (or unstarted) ones
for tests that need their own config. `federation(n)` makes n servers
that each have a plain client listener and a TLS federation listener with
certificates from a session-wide test CA. Every server a test started is
stopped at teardown with SIGTERM; a non-zero exit or a sanitizer report
fails the test.
"""

import os

import pytest

import harness


def pytest_report_header(config):
    return [f"myelin binary: {harness.myelin_binary()}",
            "postgres: " + ("$MYELIN_TEST_PG" if os.environ.get("MYELIN_TEST_PG")
                            else "private cluster (started on demand)")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for srv in getattr(item, "_myelin_servers", []):
        text = srv.stderr()
        if text:
            report.sections.append(
                (f"myelin stderr ({srv.name}, {srv.engine})",
                 harness.tail(text, 80)))


@pytest.fixture(scope="session", autouse=True)
def myelin_bin():
    path = harness.myelin_binary()
    if not path.exists():
        pytest.fail(f"myelin binary not found at {path} "
                    "(build it, or set MYELIN_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL: $MYELIN_TEST_PG or a private cluster."""
    instance = harness.postgres_from_env_or_start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return harness.TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    return request.param


@pytest.fixture
def server_factory(request, engine, tmp_path):
    """make(start=True, tls=False, name=None) -> MyelinServer using the
    test's engine. With start=False the server is initialised and its
    config written, but not started."""
    servers = []
    request.node._myelin_servers = servers
    ca = [None]

    def make(start=True, tls=False, name=None):
        pg = request.getfixturevalue("pg") if engine == "postgres" else None
        tls_files = None
        name = name or f"srv{len(servers) + 1}"
        if tls:
            if ca[0] is None:
                ca[0] = request.getfixturevalue("test_ca")
            cert, key = ca[0].issue(f"{name}-{os.getpid()}-{id(servers)}")
            tls_files = (ca[0], cert, key)
        srv = harness.MyelinServer(tmp_path / name, engine=engine, pg=pg,
                                   tls=tls_files, name=name)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    failures = []
    for srv in servers:
        try:
            srv.stop()
            for problem in srv.problems():
                failures.append(f"{srv.name} ({srv.engine}): {problem}")
        finally:
            srv.cleanup()
    if failures:
        details = "\n".join(failures)
        stderr = "\n\n".join(
            f"--- stderr of {s.name} ---\n{harness.tail(s.stderr(), 80)}"
            for s in servers if s.problems())
        pytest.fail(f"server shutdown was not clean:\n{details}\n{stderr}",
                    pytrace=False)


@pytest.fixture
def server(server_factory):
    """One running server on the parametrized engine."""
    return server_factory()


@pytest.fixture
def federation(server_factory):
    """federation(n=2) -> list of n running servers, each with a plain
    client listener and a TLS listener for federation; server_name is
    127.0.0.1:<tls port> and the test CA is their extra_ca_file."""
    def make(n=2):
        return [server_factory(tls=True, name=f"hs{i + 1}") for i in range(n)]
    return make
