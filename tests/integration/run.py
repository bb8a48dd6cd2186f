#!/usr/bin/env python3
"""Integration test runner.

    python3 tests/integration/run.py --gateway /abs/path/to/gateway [-k SUBSTRING] [--jobs N]

Discovers tests/integration/test_*.py (unittest), runs them with one line per
test (name, ok/FAIL, seconds), prints every failure with its details, and
ends with exactly one line `integration: N passed, N failed`. Exit code 0
only when nothing failed.

--jobs N (default: $GATEWAY_TEST_JOBS, else 1) runs up to N test modules at
once, each in its own python process (its own stubs, gateways, temporary
directory and Redis key prefixes; ports are always picked free). A module's
output is printed in one block when it ends, then the failures of the whole
run are listed again by name. Modules run longest first (durations of the
last run are kept in BUILD_DIR/integration-times.json; without it,
LONG_MODULES first). A module that must not share the machine (it measures
time or CPU against an idle machine) says so with a top-level line

    RUN_ALONE = True  # why

and runs with nothing else beside it. With --jobs 1 everything runs in this
process, in file order, as before.
"""

import argparse
import concurrent.futures
import faulthandler
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
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


# The last line of a module run in a child process (never printed by the
# parent): what the parent adds up. Not the `integration:` line, which the
# CI's counter reads and which must appear once.
CHILD_RESULT = "##run.py-module-result "
# Modules that took 12 s or more (ASan build, December 2026), longest first:
# started first when there is no record of the last run (a fresh build
# directory, as in CI), so that no long module starts last. Only an order:
# a stale list costs time, never a result.
LONG_MODULES = ["test_status_page.py", "test_rate_limit.py", "test_resilience.py",
                "test_limits.py", "test_shedding.py", "test_flags.py", "test_hedge.py",
                "test_gatewayctl.py", "test_health.py", "test_gatewayctl_admin.py",
                "test_hardening_conn.py"]
MODULE_TIMEOUT = 900  # seconds; a module's process is killed after this


def run_in_process(select, module=None):
    """Runs the tests (of one module file, or all) here; returns the result."""
    loader = unittest.TestLoader()
    discovered = loader.discover(HERE, pattern=module or "test_*.py", top_level_dir=HERE)
    tests = list(flatten(discovered))
    failed_imports = [t for t in tests if t.__class__.__name__ == "_FailedTest"]
    if select:
        tests = [t for t in tests if select in t.id() or t in failed_imports]
    result = LineResult()
    try:
        unittest.TestSuite(tests).run(result)
    finally:
        if gwtest._TMPDIR:
            shutil.rmtree(gwtest._TMPDIR, ignore_errors=True)
    return result


def print_failures(failed_tests):
    if failed_tests:
        print("\n" + "=" * 78)
        for name, text in failed_tests:
            print("FAIL: %s\n%s%s" % (name, text, "-" * 78))


def module_files():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "test_*.py")))


def runs_alone(module):
    with open(os.path.join(HERE, module), errors="replace") as f:
        return re.search(r"^RUN_ALONE\s*=\s*True\b", f.read(), re.M) is not None


def times_file():
    return os.path.join(gwtest.BUILD_DIR, "integration-times.json")


def load_times():
    try:
        with open(times_file()) as f:
            return {k: float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_times(times):
    try:
        tmp = times_file() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(times, f, indent=0, sort_keys=True)
        os.replace(tmp, times_file())
    except OSError:
        pass


class ModuleRun:
    """One test module in a child process: its output, counts and time."""

    def __init__(self, module):
        self.module = module
        self.output = ""
        self.passed = 0
        self.failed = []  # test ids
        self.seconds = 0.0


_CHILDREN = set()  # process group ids of the module processes running
_CHILDREN_LOCK = threading.Lock()


def kill_group(pgid):
    """Kills what is left of a module's process group: gateways, stubs and
    redis-servers of a module whose process died without stopping them (the
    per-test watchdog exits at once, with no cleanup)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_module(module, gateway, select):
    run = ModuleRun(module)
    cmd = [sys.executable, "-u", os.path.abspath(__file__), "--gateway", gateway,
           "--build-dir", gwtest.BUILD_DIR, "--module", module]
    if select:
        cmd += ["-k", select]
    started = time.monotonic()
    # its own process group: whatever it starts can be killed with it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc.pid)
    try:
        out, _ = proc.communicate(timeout=MODULE_TIMEOUT)
        out, rc = out.decode("utf-8", "replace"), proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, _ = proc.communicate()
        out = out.decode("utf-8", "replace")
        out += "\n%s: killed after %d s\n" % (module, MODULE_TIMEOUT)
        rc = None
    finally:
        kill_group(proc.pid)
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc.pid)
    run.seconds = time.monotonic() - started
    lines = out.splitlines(keepends=True)
    summary = [l for l in lines if l.startswith(CHILD_RESULT)]
    run.output = "".join(l for l in lines if not l.startswith(CHILD_RESULT))
    if summary:
        data = json.loads(summary[-1][len(CHILD_RESULT):])
        run.passed, run.failed = data["passed"], data["failed"]
    if not summary or (rc != 0 and not run.failed):
        # died before its summary (crash, kill): the module failed as a whole
        run.failed = run.failed + ["%s (process exited %s)" % (module, rc)]
    return run


def run_parallel(args):
    """Runs every module in its own process, args.jobs at a time."""
    gateway = gwtest.GATEWAY
    modules = module_files()
    times = load_times()
    # longest first: by the last run's times, else LONG_MODULES then bigger files
    def expected(m):
        if m in times:
            return times[m]
        if m in LONG_MODULES:
            return 1000.0 - LONG_MODULES.index(m)
        return os.path.getsize(os.path.join(HERE, m)) / 1e6
    modules.sort(key=lambda m: -expected(m))
    alone = [m for m in modules if runs_alone(m)]
    shared = [m for m in modules if m not in alone]
    runs = []

    def finished(run):
        runs.append(run)
        if args.select and not run.passed and not run.failed:
            return  # nothing of this module was selected
        print("--- %s: %d passed, %d failed (%.1fs) %s" % (
            run.module, run.passed, len(run.failed), run.seconds,
            "-" * max(0, 50 - len(run.module))), flush=True)
        sys.stdout.write(run.output)
        sys.stdout.flush()

    print("integration: %d modules, %d at a time (%d alone: %s)" % (
        len(modules), args.jobs, len(alone), " ".join(alone) or "none"), flush=True)
    for m in alone:
        finished(run_module(m, gateway, args.select))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_module, m, gateway, args.select) for m in shared]
        try:
            for fut in concurrent.futures.as_completed(futures):
                finished(fut.result())
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            with _CHILDREN_LOCK:
                for pgid in _CHILDREN:
                    kill_group(pgid)
            raise
    if not args.select:
        save_times({r.module: round(r.seconds, 1) for r in runs})
    passed = sum(r.passed for r in runs)
    failed = [name for r in runs for name in r.failed]
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway", required=True, help="absolute path of the gateway binary")
    ap.add_argument("-k", dest="select", default=None, help="run tests whose id contains this")
    ap.add_argument("--jobs", "-j", type=int, default=int(os.environ.get("GATEWAY_TEST_JOBS") or 1),
                    help="test modules run at once, each in its own process")
    # internal: a child process running one module with the parent's copy of
    # the binary (already snapshotted) and the build directory it came from
    ap.add_argument("--module", help=argparse.SUPPRESS)
    ap.add_argument("--build-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.module:
        gwtest.BUILD_DIR = os.environ["GATEWAY_BUILD_DIR"] = args.build_dir
        gwtest.GATEWAY = os.environ["GATEWAY"] = args.gateway
        result = run_in_process(args.select, args.module)
        print_failures(result.failed_tests)
        names = sorted({name for (name, _) in result.failed_tests})
        print(CHILD_RESULT + json.dumps({"passed": result.passed, "failed": names}), flush=True)
        return 0 if not names else 1

    gwtest.BUILD_DIR = os.environ["GATEWAY_BUILD_DIR"] = os.path.dirname(os.path.abspath(args.gateway))
    gwtest.GATEWAY = snapshot_binary(os.path.abspath(args.gateway))
    os.environ["GATEWAY"] = gwtest.GATEWAY
    started = time.monotonic()
    if args.jobs <= 1:
        result = run_in_process(args.select)
        print_failures(result.failed_tests)
        passed = result.passed
        failed = sorted({name for (name, _) in result.failed_tests})
    else:
        try:
            passed, failed = run_parallel(args)
        finally:
            if gwtest._TMPDIR:
                shutil.rmtree(gwtest._TMPDIR, ignore_errors=True)
        if failed:
            print("\n" + "=" * 78 + "\nfailed (details in their module's block above):")
            for name in failed:
                print("  " + name)
    print("(%.1fs)" % (time.monotonic() - started))
    print("integration: %d passed, %d failed" % (passed, len(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
