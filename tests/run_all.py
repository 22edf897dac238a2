#!/usr/bin/python3
"""Runs every Myelin test suite and prints one closing tally.

    tests/run_all.py [--pg] [--unit BINARY] [--no-integration]
                     [-- PYTEST ARGS...]

(a) the cmocka unit-test binary (--unit, or $MYELIN_UNIT_BIN), counted
    from its "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines
    summed over all groups; a crash or sanitizer report counts as a
    failure;
(b) pytest on tests/integration with Debian's /usr/bin/python3, counted
    from its summary line; errors count as failures and a run that
    collects nothing is a failure. The tests run on 3 pytest-xdist
    workers ($MYELIN_TEST_JOBS; 1 runs them one at a time); each worker
    takes server ports from a range of its own (harness.free_port).

Both outputs are streamed as they come. The last line printed is exactly
"N passed, M failed" (with ", K skipped" when K > 0). The exit status is 0
only when nothing failed and at least one test ran.

--pg starts one temporary PostgreSQL cluster (see
tests/integration/harness.py) and exports MYELIN_TEST_PG to both suites.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                      "runtime error:")


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def add(self, passed=0, failed=0, skipped=0):
        self.passed += passed
        self.failed += failed
        self.skipped += skipped

    def line(self):
        text = f"{self.passed} passed, {self.failed} failed"
        if self.skipped:
            text += f", {self.skipped} skipped"
        return text


def stream(cmd, env, cwd):
    """Run `cmd`, echoing its combined output line by line; returns
    (exit code, full output)."""
    print(f"+ {' '.join(str(c) for c in cmd)}", flush=True)
    try:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env,
                                cwd=str(cwd), stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"run_all: cannot run {cmd[0]}: {exc}", flush=True)
        return None, ""
    lines = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace")
        lines.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    return proc.wait(), "".join(lines)


# ---------------------------------------------------------------------------
# Unit tests (cmocka)
# ---------------------------------------------------------------------------

CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)", re.M)
CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test\(s\)", re.M)
CMOCKA_SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) test\(s\)", re.M)


def parse_cmocka(output, code):
    """(passed, failed, skipped, note) from a cmocka run's output and exit
    code. A crash, signal, sanitizer report or unexplained non-zero exit
    adds one failure."""
    passed = sum(int(n) for n in CMOCKA_PASSED.findall(output))
    failed = sum(int(n) for n in CMOCKA_FAILED.findall(output))
    skipped = sum(int(n) for n in CMOCKA_SKIPPED.findall(output))
    note = None
    if code is None:
        note = "could not be started"
    elif code < 0:
        note = f"killed by signal {-code}"
    elif any(p in output for p in SANITIZER_PATTERNS):
        note = "sanitizer report"
    elif code != 0 and failed == 0:
        note = f"exited {code} with no failed test reported"
    if note:
        failed += 1
    return passed, failed, skipped, note


def run_unit(binary, env, tally):
    path = Path(binary)
    if not path.is_absolute():
        path = REPO_ROOT / path
    print(f"==> unit tests: {path}", flush=True)
    if not path.exists():
        print(f"run_all: unit test binary {path} not found", flush=True)
        tally.add(failed=1)
        return
    env = dict(env)
    env["CMOCKA_MESSAGE_OUTPUT"] = "stdout"
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    code, output = stream([path], env, REPO_ROOT)
    passed, failed, skipped, note = parse_cmocka(output, code)
    if note:
        print(f"run_all: unit test binary: {note} (counted as a failure)",
              flush=True)
    print(f"==> unit tests: {passed} passed, {failed} failed"
          + (f", {skipped} skipped" if skipped else ""), flush=True)
    tally.add(passed, failed, skipped)


# ---------------------------------------------------------------------------
# Integration tests (pytest)
# ---------------------------------------------------------------------------

PYTEST_COUNT = re.compile(
    r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|"
    r"warnings?)\b")
PYTEST_SUMMARY = re.compile(r"\b(passed|failed|skipped|errors?|xfailed|"
                            r"xpassed|no tests ran)\b.* in [\d.]+s")


def parse_pytest(output, code):
    """(passed, failed, skipped, note) from pytest's summary line."""
    summary = None
    for line in reversed(output.splitlines()):
        if PYTEST_SUMMARY.search(line):
            summary = line
            break
    counts = {}
    if summary:
        for n, word in PYTEST_COUNT.findall(summary):
            counts[word] = counts.get(word, 0) + int(n)
    passed = counts.get("passed", 0) + counts.get("xpassed", 0)
    failed = (counts.get("failed", 0) + counts.get("error", 0)
              + counts.get("errors", 0))
    skipped = counts.get("skipped", 0) + counts.get("xfailed", 0)
    note = None
    if code is None:
        note = "pytest could not be started"
    elif code == 5 or (summary and "no tests ran" in summary):
        note = "pytest collected no tests"
    elif summary is None:
        note = f"pytest exited {code} without a summary"
    elif code != 0 and failed == 0:
        note = f"pytest exited {code} with no failure counted"
    elif code < 0:
        note = f"pytest killed by signal {-code}"
    if note:
        failed += 1
    return passed, failed, skipped, note


def test_jobs(env):
    """How many pytest workers (pytest-xdist) run the integration tests:
    MYELIN_TEST_JOBS, else 3 (the tests mostly wait on servers, so more
    workers than cores still pay), 1 when xdist is not installed."""
    want = env.get("MYELIN_TEST_JOBS")
    jobs = int(want) if want and want.isdigit() else 3
    if jobs > 1:
        probe = subprocess.run([PYTHON, "-c", "import xdist"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if probe.returncode != 0:
            print("run_all: pytest-xdist missing, running the tests one at a time",
                  flush=True)
            jobs = 1
    return jobs


def run_pytest(extra_args, env, tally):
    print(f"==> integration tests: {INTEGRATION_DIR}", flush=True)
    jobs = test_jobs(env)
    cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/integration"] + (["-n", str(jobs)] if jobs > 1 else []) + list(extra_args)
    env = dict(env)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    code, output = stream(cmd, env, REPO_ROOT)
    passed, failed, skipped, note = parse_pytest(output, code)
    if note:
        print(f"run_all: {note} (counted as a failure)", flush=True)
    tally.add(passed, failed, skipped)


# ---------------------------------------------------------------------------

def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", default=os.environ.get("MYELIN_UNIT_BIN"),
                        help="cmocka unit test binary to run")
    parser.add_argument("--pg", action="store_true",
                        help="start a temporary PostgreSQL for the run")
    parser.add_argument("--no-integration", action="store_true",
                        help="skip the pytest suite")
    parser.add_argument("pytest_args", nargs="*",
                        help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    # A SIGTERM (e.g. from a CI timeout) still runs the cleanup below.
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    tally = Tally()
    env = dict(os.environ)
    pg = None
    try:
        if args.pg:
            sys.path.insert(0, str(INTEGRATION_DIR))
            import harness
            print("==> starting a temporary PostgreSQL", flush=True)
            try:
                pg = harness.PostgresCluster().start()
            except Exception as exc:
                print(f"run_all: PostgreSQL did not start: {exc}", flush=True)
                tally.add(failed=1)
                print(tally.line(), flush=True)
                return 1
            env["MYELIN_TEST_PG"] = pg.conninfo
            print(f"==> MYELIN_TEST_PG={pg.conninfo}", flush=True)

        if args.unit:
            run_unit(args.unit, env, tally)
        if not args.no_integration:
            run_pytest(args.pytest_args, env, tally)
    except KeyboardInterrupt:
        print("run_all: interrupted", flush=True)
        tally.add(failed=1)
    finally:
        if pg is not None:
            try:
                pg.stop()
            except Exception as exc:
                print(f"run_all: stopping PostgreSQL: {exc}", flush=True)

    ran = tally.passed + tally.failed
    print(tally.line(), flush=True)
    return 0 if tally.failed == 0 and ran > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
