#!/usr/bin/env python3
"""Integration test runner.

    python3 tests/integration/run.py --gateway /abs/path/to/gateway [-k SUBSTRING]

Discovers tests/integration/test_*.py (unittest), runs them in file order with
one line per test (name, ok/FAIL, seconds), prints every failure with its
details, and ends with exactly one line `integration: N passed, N failed`.
Exit code 0 only when nothing failed.
"""

import argparse
import faulthandler
import os
import shutil
import subprocess
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gwtest  # noqa: E402

PER_TEST_WATCHDOG = 120  # seconds; dumps stacks and exits if a test hangs


class LineResult(unittest.TestResult):
    """Prints one line per test and keeps the failures for the end."""

    def __init__(self):
        super().__init__()
        self.passed = 0
        self.failed_tests = []  # (name, text)
        self._start = None
        self._bad = False

    def startTest(self, test):
        super().startTest(test)
        self._start = time.monotonic()
        self._bad = False
        faulthandler.dump_traceback_later(PER_TEST_WATCHDOG, exit=True)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        took = time.monotonic() - self._start
        if self._bad:
            verdict = "FAIL"
        else:
            verdict = "ok"
            self.passed += 1
        print("%-90s %-4s %6.2fs" % (test.id(), verdict, took), flush=True)

    def _bad_test(self, test, err):
        self._bad = True
        self.failed_tests.append((test.id(), self._exc_info_to_string(err, test)))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._bad_test(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._bad_test(test, err)
        else:  # setUpClass/module fixtures: no startTest/stopTest around it
            text = "".join(traceback.format_exception(*err))
            self.failed_tests.append((str(test), text))
            print("%-90s %-4s" % (str(test), "FAIL"), flush=True)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._bad = True
            self.failed_tests.append((subtest.id(), self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._bad = True  # a skipped integration test proves nothing
        self.failed_tests.append((test.id(), "skipped: " + reason))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._bad = True
        self.failed_tests.append((test.id(), "unexpected success"))


def flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


def snapshot_binary(path):
    """Copies the binary into the run's temporary directory so that a rebuild
    during the run cannot change (or half-write) what the tests execute.
    Retries for a few seconds while the file is being linked."""
    dest = os.path.join(gwtest.tmp_dir(), "gateway")
    deadline = time.monotonic() + 15
    while True:
        try:
            shutil.copy2(path, dest)
            probe = subprocess.run([dest, "-v"], capture_output=True, timeout=5)
            if probe.returncode == 0:
                return dest
            why = "`gateway -v` exited %d" % probe.returncode
        except (OSError, subprocess.SubprocessError) as e:
            why = str(e)
        if time.monotonic() > deadline:
            print("cannot run %s (%s); testing it as is" % (path, why), flush=True)
            return path
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway", required=True, help="absolute path of the gateway binary")
    ap.add_argument("-k", dest="select", default=None, help="run tests whose id contains this")
    args = ap.parse_args()

    gwtest.BUILD_DIR = os.environ["GATEWAY_BUILD_DIR"] = os.path.dirname(os.path.abspath(args.gateway))
    gwtest.GATEWAY = snapshot_binary(os.path.abspath(args.gateway))
    os.environ["GATEWAY"] = gwtest.GATEWAY
    loader = unittest.TestLoader()
    discovered = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = list(flatten(discovered))
    failed_imports = [t for t in tests if t.__class__.__name__ == "_FailedTest"]
    if args.select:
        tests = [t for t in tests if args.select in t.id() or t in failed_imports]

    suite = unittest.TestSuite(tests)
    result = LineResult()
    started = time.monotonic()
    try:
        suite.run(result)
    finally:
        if gwtest._TMPDIR:
            shutil.rmtree(gwtest._TMPDIR, ignore_errors=True)

    if result.failed_tests:
        print("\n" + "=" * 78)
        for name, text in result.failed_tests:
            print("FAIL: %s\n%s%s" % (name, text, "-" * 78))
    print("(%.1fs)" % (time.monotonic() - started))
    nfailed = len({name for (name, _) in result.failed_tests})
    print("integration: %d passed, %d failed" % (result.passed, nfailed))
    return 0 if nfailed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
