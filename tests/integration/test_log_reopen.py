"""SIGUSR1 reopens the access log file, as logrotate expects: the file is
renamed, the gateway is signalled, and the next lines go to a new file at the
configured path while the renamed one keeps what came before."""

import json
import os
import signal

from gwtest import GatewayTestCase, free_port, poll_until, route, tmp_dir, upstream

REOPENED = r"SIGUSR1: access log reopened"


def read_records(path):
    """The JSON records of path ([] when it does not exist); a line that is
    not a whole JSON object fails the test with the line quoted."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise AssertionError("%s: line is not JSON (%s): %r" % (path, e, line))
    return records


def logged_paths(path):
    """The request paths logged in the file, sorted."""
    return sorted(r.get("path") for r in read_records(path))


class LogReopenTests(GatewayTestCase):
    def setUp(self):
        self.stub = self.start_stub("reopen")
        self.dir = os.path.join(tmp_dir(), "logs-%d" % free_port())
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "access.log")
        self.rotated = self.path + ".1"

    def gateway(self, workers=1):
        return self.start_gateway({"u": upstream(self.stub)}, [route("api", "u", "/api")],
                                  access_log=self.path, workers=workers)

    def wait_paths(self, path, want):
        """Polls (the log is flushed within 100 ms) until path holds records
        for exactly the request paths in want; returns the paths it holds."""
        poll_until(lambda: logged_paths(path) == sorted(want), 3)
        return logged_paths(path)

    def test_sigusr1_reopens_after_rename(self):
        """Request, rename the file, SIGUSR1, request: the renamed file holds
        only the first line, a new file at the path only the second."""
        gw = self.gateway()
        self.assertStatus(self.fetch(gw, "GET", "/api/before"), 200)
        self.assertEqual(self.wait_paths(self.path, ["/api/before"]), ["/api/before"])

        os.rename(self.path, self.rotated)
        start = len(gw.stderr_lines())
        gw.proc.send_signal(signal.SIGUSR1)
        self.assertIsNotNone(gw.wait_stderr(REOPENED, timeout=3, start=start),
                             "no %r on stderr within 3s; stderr:\n%s" % (REOPENED, gw.stderr_text()))
        self.assertTrue(gw.alive(), "the gateway exited on SIGUSR1")
        self.assertTrue(os.path.exists(self.path), "no new file at %s after the reopen" % self.path)

        self.assertStatus(self.fetch(gw, "GET", "/api/after"), 200)
        self.assertEqual(self.wait_paths(self.path, ["/api/after"]), ["/api/after"],
                         "the new file must hold the line written after the reopen only")
        self.assertEqual(logged_paths(self.rotated), ["/api/before"],
                         "the renamed file must keep the line written before the reopen only")
        self.assertEqual(gw.stdout_lines(), [])

    def test_rotations_with_two_workers_lose_no_line(self):
        """Three rotations with 2 workers: a line written after the rename and
        before SIGUSR1 lands in the renamed file (the gateway writes to the
        file it has open until told), and every request is logged exactly
        once over all the files, in whole lines."""
        gw = self.gateway(workers=2)
        sent = []
        files = []
        for n in range(3):
            batch = ["/api/r%d-%d" % (n, i) for i in range(5)]
            for p in batch:
                self.assertStatus(self.fetch(gw, "GET", p), 200)
            sent += batch
            self.assertEqual(self.wait_paths(self.path, batch), sorted(batch))
            rotated = "%s.%d" % (self.path, n + 1)
            os.rename(self.path, rotated)
            files.append(rotated)
            late = "/api/late%d" % n
            self.assertStatus(self.fetch(gw, "GET", late), 200)
            sent.append(late)
            self.assertEqual(self.wait_paths(rotated, batch + [late]), sorted(batch + [late]),
                             "a line written after the rename, before SIGUSR1, goes to the"
                             " renamed file")
            start = len(gw.stderr_lines())
            gw.proc.send_signal(signal.SIGUSR1)
            self.assertIsNotNone(gw.wait_stderr(REOPENED, timeout=3, start=start),
                                 "no %r on stderr within 3s; stderr:\n%s"
                                 % (REOPENED, gw.stderr_text()))
        self.assertStatus(self.fetch(gw, "GET", "/api/last"), 200)
        sent.append("/api/last")
        self.assertEqual(self.wait_paths(self.path, ["/api/last"]), ["/api/last"])
        files.append(self.path)
        self.assertEqual(sorted(p for f in files for p in logged_paths(f)), sorted(sent),
                         "every request logged exactly once over the files")

    def test_failed_reopen_keeps_the_old_file(self):
        """When the path cannot be opened again (its directory was moved), the
        gateway logs the failure, keeps running and keeps writing to the file
        it has."""
        gw = self.gateway()
        self.assertStatus(self.fetch(gw, "GET", "/api/one"), 200)
        self.assertEqual(self.wait_paths(self.path, ["/api/one"]), ["/api/one"])
        moved = self.dir + ".moved"
        os.rename(self.dir, moved)
        start = len(gw.stderr_lines())
        gw.proc.send_signal(signal.SIGUSR1)
        hit = gw.wait_stderr(r"SIGUSR1", timeout=3, start=start)
        self.assertIsNotNone(hit, "nothing logged on SIGUSR1; stderr:\n%s" % gw.stderr_text())
        self.assertNotRegex(hit[1], REOPENED)
        self.assertTrue(gw.alive())
        self.assertStatus(self.fetch(gw, "GET", "/api/two"), 200)
        old = os.path.join(moved, "access.log")
        self.assertEqual(self.wait_paths(old, ["/api/one", "/api/two"]), ["/api/one", "/api/two"])

    def test_sigusr1_with_stdout_log_keeps_logging(self):
        """With access_log: stdout, SIGUSR1 changes nothing: the gateway keeps
        running and logging to stdout."""
        gw = self.simple_gateway(self.stub)
        gw.proc.send_signal(signal.SIGUSR1)
        self.assertIsNotNone(gw.wait_stderr(r"SIGUSR1", timeout=3),
                             "nothing logged on SIGUSR1; stderr:\n%s" % gw.stderr_text())
        self.assertTrue(gw.alive(), "the gateway exited on SIGUSR1")
        self.assertStatus(self.fetch(gw, "GET", "/x"), 200)
        recs = gw.access_records(1, timeout=3)
        self.assertEqual([r.get("path") for r in recs], ["/x"])
