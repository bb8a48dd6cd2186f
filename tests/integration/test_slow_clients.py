"""Slow clients, driven by Debian's slowhttptest (tests/deps.sh installs it):
slowloris (-H), slow body / R-U-Dead-Yet (-B) and slow read (-X) against the
gateway's connection guard (gateway/client_conn.h): header_timeout,
body_timeout and send_timeout must cut every slow connection on time, and a
normal client must be served throughout the attack.

How connections are accounted: slowhttptest's own report (its CSV of socket
states, one row a second, and its exit status) shows that it connected every
slow connection and, for -H and -B, that the gateway closed all of them. It
cannot time them (one-second rows, and after a reset a slow reader still
reads its queued bytes, a few a second, before it sees the reset). So the
test watches the gateway's side of every slow connection itself:
/proc/net/tcp, sampled every 50 ms, lists the sockets of the gateway's port
whose peer is 127.0.0.1 (slowhttptest; the normal client connects from
127.0.0.2); a connection is held by the gateway from the first sample that
shows it until the last one where its socket is still ESTABLISHED,
CLOSE_WAIT, FIN_WAIT1 (bytes or a FIN still queued), CLOSING or LAST_ACK.
Every slow connection must have been released within its timeout plus a
generous margin. The gateway's own records say why: a 408 access-log record per
slowloris or slow-body connection, a send_timeout log line per slow reader.

The normal client runs in a thread from before the attack until after it,
one request per new connection: every request must succeed, and a minimum
of them must have run while most slow connections were held.
"""

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from gwtest import Conn, GatewayTestCase, generated_sha256, poll_until, tmp_dir

SLOWHTTPTEST = "slowhttptest"

# A cut slow connection must be gone within its timeout plus this (a loaded
# machine, an ASan build, the 100 ms tick of the send_timeout check, the
# sampling interval): generous, since only "cut, not held" is asserted.
MARGIN = 3.0
# A slow reader's send_timeout window only opens once its response has
# backed up: the gateway first fills the kernel's send buffer (MiBs on
# loopback) for every slow reader at once, slower on a busy machine.
SLOW_READ_MARGIN = 5.0
SAMPLE_INTERVAL = 0.05

# TCP states (include/net/tcp_states.h) in which the gateway still has the
# connection, or bytes or a FIN of it queued: ESTABLISHED, FIN_WAIT1,
# CLOSE_WAIT, LAST_ACK, CLOSING.
HELD_STATES = {"01", "04", "08", "09", "0B"}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class TcpWatch:
    """Samples /proc/net/tcp for the gateway's side of the connections from
    127.0.0.1 (slowhttptest's; the normal client comes from 127.0.0.2) to
    the gateway's port, in a thread. A connection, known by its remote port
    and its socket's inode (0 while still in the accept queue), is held from
    the first sample that shows it in HELD_STATES to the last one; a port
    missing from a sample, or showing another socket, is a new connection
    (loopback reuses ports at once: net.ipv4.tcp_tw_reuse)."""

    def __init__(self, port):
        self.local = "0100007F:%04X" % port
        self.remote = "0100007F:"
        self.conns = []  # [first time held, last time held]
        self.current = {}  # remote port -> (inode, its entry in conns), as last sampled
        self.samples = []  # (time, number of connections held)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-watch")

    def start(self):
        self.sample()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self):
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.sample()

    def sample(self):
        now = time.monotonic()
        held = {}
        with open("/proc/net/tcp") as f:
            lines = f.read().splitlines()[1:]
        for line in lines:
            if self.local not in line:
                continue
            fields = line.split()  # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            if (fields[1] == self.local and fields[2].startswith(self.remote)
                    and fields[3] in HELD_STATES):
                held[fields[2]] = fields[9]
        with self._lock:
            current = {}
            for remote, inode in held.items():
                seen = self.current.get(remote)
                if seen is not None and (seen[0] == inode or seen[0] == "0"):
                    entry = seen[1]  # the same socket (or the one accepted from the queue)
                else:
                    entry = [now, now]
                    self.conns.append(entry)
                entry[1] = now
                current[remote] = (inode, entry)
            self.current = current
            self.samples.append((now, len(current)))

    def connections(self):
        """[(first, last)] of every connection seen."""
        with self._lock:
            return [tuple(e) for e in self.conns]

    def held_now(self):
        """How many connections the latest sample showed held."""
        with self._lock:
            return self.samples[-1][1] if self.samples else 0

    def held_series(self):
        """[(time, number held)] over every sample."""
        with self._lock:
            return list(self.samples)


class NormalConn(Conn):
    """A gwtest Conn from 127.0.0.2 (loopback too), so that the gateway's side
    of it is told apart from slowhttptest's connections (from 127.0.0.1)."""

    SOURCE = "127.0.0.2"

    def __init__(self, port, timeout):
        # What Conn.__init__ does, with a source address (calling it would
        # connect from 127.0.0.1).
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(self.SOURCE, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.closed_locally = False
        self.throttle = None


class NormalClient:
    """A well-behaved client in a thread: one request per new connection
    (NormalConn), paced, each one checked (status 200, no X-Gateway-Error,
    the body whole). `paths` are cycled; a path given as (path, size)
    expects the stub's generated body of that size, read as fast as it
    comes."""

    def __init__(self, port, paths, pace=0.05, timeout=5.0):
        self.port = port
        self.paths = paths
        self.pace = pace
        self.timeout = timeout
        self.ok = []  # (start, end) of the requests that succeeded
        self.failures = []  # (start time, path, what went wrong)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="normal-client")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5)

    def successes(self):
        with self._lock:
            return len(self.ok)

    def _one(self, path, size):
        with NormalConn(self.port, self.timeout) as c:
            c.request("GET", path)
            r = c.read_response(self.timeout, store=size is None)
            if r.status != 200:
                return "status %s" % r.describe()
            if r.header("X-Gateway-Error") is not None:
                return "gateway error %s" % r.describe()
            if size is not None and (r.body_len != size or r.body_sha256 != generated_sha256(size)):
                return "body of %d bytes, expected the %d generated ones" % (r.body_len, size)
            return None

    def _run(self):
        i = 0
        while not self._stop.is_set():
            item = self.paths[i % len(self.paths)]
            i += 1
            path, size = item if isinstance(item, tuple) else (item, None)
            started = time.monotonic()
            try:
                err = self._one(path, size)
            except Exception as e:  # noqa: BLE001 - any failure is the test's finding
                err = "%s: %s" % (type(e).__name__, e)
            with self._lock:
                if err is None:
                    self.ok.append((started, time.monotonic()))
                else:
                    self.failures.append((started, path, err))
            self._stop.wait(self.pace)


class Attack:
    """What one slowhttptest run showed."""

    def __init__(self):
        self.stdout = ""
        self.rows = []  # CSV rows as dicts of ints
        self.exit_status = None
        self.ended_second = None
        self.started = None


class SlowClientTests(GatewayTestCase):
    """Each test: a gateway with one short timeout, slowhttptest attacking
    it, the TCP watch and the normal client running from before the attack
    until every slow connection is gone."""

    def setUp(self):
        self.tool = shutil.which(SLOWHTTPTEST)
        if self.tool is None:
            self.fail("%s is not installed: `tests/deps.sh test` installs it" % SLOWHTTPTEST)

    # ----- the attack -------------------------------------------------
    @staticmethod
    def _end_tool(p):
        if p.poll() is None:
            p.kill()
            p.wait()

    def run_attack(self, gw, args, path, length, normal_paths, cut_within, n, done=None):
        """Runs `slowhttptest ARGS -l LENGTH -u http://127.0.0.1:PORT/PATH`
        (statistics on) with the watch and the normal client around it.
        Returns (attack, watch, client) once no slow connection is held
        any more (or cut_within seconds after the tool ended). done(watch,
        client), when given, is polled while the tool runs: once true, the
        tool is interrupted (SIGINT) rather than left to run its length."""
        watch = TcpWatch(gw.port).start()
        self.addCleanup(watch.stop)
        client = NormalClient(gw.port, normal_paths).start()
        self.addCleanup(client.stop)
        # served before the attack starts
        if not poll_until(lambda: client.successes() >= 3 or client.failures, 10):
            self.fail("the normal client got no answer before the attack")
        self.assertEqual(client.failures, [], "the normal client failed before the attack")

        prefix = os.path.join(tmp_dir(), "slowhttptest-%s-%d" % (self.id().rsplit(".", 1)[-1], gw.port))
        cmd = [self.tool] + args + ["-c", str(n), "-l", str(length), "-g", "-o", prefix,
                                    "-u", "http://127.0.0.1:%d%s" % (gw.port, path)]
        a = Attack()
        a.started = time.monotonic()
        with open(prefix + ".out", "w") as out:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(self._end_tool, p)
        limit = a.started + length + 20
        interrupted = False
        while p.poll() is None:
            if time.monotonic() > limit:
                self.fail("slowhttptest did not end within %ds of its %ds test length"
                          % (length + 20, length))
            if done is not None and not interrupted and done(watch, client):
                p.send_signal(signal.SIGINT)  # ends its test, statistics written
                interrupted = True
            time.sleep(0.05)
        with open(prefix + ".out", errors="replace") as f:
            a.stdout = ANSI.sub("", f.read())
        self.assertEqual(p.returncode, 0, "slowhttptest failed: %s\n%s" % (cmd, a.stdout[-2000:]))
        m = re.search(r"Test ended on (\d+)th second\s*\nExit status:\s*(.*)", a.stdout)
        self.assertIsNotNone(m, "no final status in slowhttptest's output:\n" + a.stdout[-2000:])
        a.ended_second, a.exit_status = int(m.group(1)), m.group(2).strip()
        with open(prefix + ".csv", newline="") as f:
            a.rows = [{k: int(v) for k, v in row.items()} for row in csv.DictReader(f)]
        self.assertTrue(a.rows, "slowhttptest wrote no statistics")

        # until the gateway holds none of them (the normal client goes on)
        if not poll_until(lambda: not watch.held_now(), cut_within):
            self.fail("%d slow connections still held by the gateway %.1fs after slowhttptest"
                      " ended" % (watch.held_now(), cut_within))
        # and it still serves after the attack
        after = client.successes()
        poll_until(lambda: client.successes() >= after + 3 or client.failures, 10)
        client.stop()
        watch.stop()
        return a, watch, client

    # ----- the assertions ---------------------------------------------
    def assert_all_connected(self, a, n):
        """slowhttptest's statistics: all n slow connections were opened and
        sent their request (Connected or Closed, none left Pending)."""
        most = max(r["Connected"] + r["Closed"] for r in a.rows)
        self.assertEqual(most, n, "slowhttptest connected %d of its %d connections; rows: %r"
                         % (most, n, a.rows))

    def assert_cut_in_time(self, a, watch, client, n, timeout, what, margin=MARGIN):
        """Every connection from slowhttptest (n slow ones and its probes)
        was released by the gateway within timeout + margin of its first
        sight."""
        started = a.started
        conns = watch.connections()
        self.assertGreaterEqual(len(conns), n, "the gateway saw %d connections from slowhttptest,"
                                " expected the %d slow ones at least" % (len(conns), n))
        late = sorted((last - first, first - started) for first, last in conns
                      if last - first > timeout + margin)
        if late:
            self.fail("%d of %d connections were held by the gateway longer than %s %.1fs + %.1fs;"
                      " the longest (seconds held, from what second of the attack): %s"
                      % (len(late), len(conns), what, timeout, margin,
                         ", ".join("%.2f from %.2f" % x for x in late[-5:])))

    def assert_served_throughout(self, watch, client, n):
        """No request of the normal client failed; it made a minimum of
        them, some of them while at least half the slow connections were
        held by the gateway."""
        self.assertEqual(client.failures, [], "the normal client failed %d of %d requests"
                         % (len(client.failures), len(client.failures) + len(client.ok)))
        self.assertGreaterEqual(len(client.ok), 10, "the normal client made only %d requests"
                                % len(client.ok))
        series = watch.held_series()
        peak = max(c for _, c in series)
        self.assertGreaterEqual(peak, n // 2, "the gateway never held half the slow connections"
                                " at once (peak %d of %d): no attack to be served through" % (peak, n))
        busy = [t for t, c in series if c >= n // 2]
        during = [(s, e) for s, e in client.ok if s <= busy[-1] and e >= busy[0]]
        self.assertGreaterEqual(len(during), 3, "the normal client was served %d requests while the"
                                " gateway held at least %d slow connections (%.2fs)"
                                % (len(during), n // 2, busy[-1] - busy[0]))

    def assert_attack_failed(self, a, n):
        """-H and -B: the gateway closed every slow connection before the
        test length ran out, in slowhttptest's own view."""
        self.assertEqual(a.exit_status, "No open connections left",
                         "slowhttptest still had open connections at the end (ended on second %d);"
                         " rows: %r" % (a.ended_second, a.rows))
        self.assert_all_connected(a, n)

    def assert_timeouts_logged(self, gw, n, code):
        """One 408 access record (with the given error code) per slow
        connection, none for the normal client."""
        def timed_out():
            return [r for r in gw.access_records() if r.get("status") == 408]
        poll_until(lambda: len(timed_out()) >= n, 3)  # the log is flushed on the worker's tick
        recs = gw.access_records()
        slow = [r for r in recs if r.get("status") == 408]
        self.assertEqual(len(slow), n, "%d 408 access records, expected one per slow connection (%d)"
                         % (len(slow), n))
        self.assertEqual({r.get("error") for r in slow}, {code}, "error of the 408 records: %r"
                         % slow[:3])
        others = [r for r in recs if r.get("status") not in (200, 408)]
        self.assertEqual(others, [], "unexpected access records")

    # ----- the tests --------------------------------------------------
    def test_slowloris_cut_by_header_timeout(self):
        """slowhttptest -H: 150 connections that send a request head one
        header line a second. header_timeout 2s: each is answered 408 and
        closed 2s after its accept, though bytes keep arriving; the normal
        client is served all along."""
        n, timeout = 150, 2.0
        stub = self.start_stub("slowloris")
        gw = self.simple_gateway(stub, limits={"header_timeout": "2s"})
        a, watch, client = self.run_attack(gw, ["-H", "-r", str(n), "-i", "1", "-x", "10", "-p", "3"],
                                           "/", 10, ["/"], timeout + MARGIN, n)
        self.assert_attack_failed(a, n)
        self.assert_cut_in_time(a, watch, client, n, timeout, "header_timeout")
        self.assert_served_throughout(watch, client, n)
        self.assert_timeouts_logged(gw, n, "request_timeout")

    def test_slow_body_cut_by_body_timeout(self):
        """slowhttptest -B (R-U-Dead-Yet): 150 POSTs announcing an 8 KiB body
        and sending a few bytes of it a second. body_timeout 2s: each is
        answered 408 and closed, nothing reaches the upstream; the normal
        client is served all along."""
        n, timeout = 150, 2.0
        stub = self.start_stub("slowbody")
        gw = self.simple_gateway(stub, limits={"body_timeout": "2s"})
        a, watch, client = self.run_attack(gw, ["-B", "-r", str(n), "-i", "1", "-x", "10", "-s", "8192",
                                                "-p", "3"], "/", 10, ["/"], timeout + MARGIN, n)
        self.assert_attack_failed(a, n)
        self.assert_cut_in_time(a, watch, client, n, timeout, "body_timeout")
        self.assert_served_throughout(watch, client, n)
        self.assert_timeouts_logged(gw, n, "request_timeout")
        posts = [r for r in stub.requests if r.method == "POST"]
        self.assertEqual(posts, [], "a slow body reached the upstream")

    def slow_read(self, n, big):
        """slowhttptest -X: n connections ask for /big (`big` generated
        bytes), advertise a receive window of 512-1024 bytes and read 32
        bytes a second (32 B/s, far under send_timeout's floor of 32 KiB a
        second). send_timeout 2s: each must be reset and logged, holding
        neither its connection nor its queued bytes; meanwhile the normal
        client, small answers and 2 MiB ones read at full speed, is served."""
        timeout, fast = 2.0, 2 << 20
        stub = self.start_stub("slowread")
        stub.set_path("/big", "size", size=big, piece=1 << 20)
        stub.set_path("/fast", "size", size=fast, piece=1 << 20)
        gw = self.simple_gateway(stub, limits={"send_timeout": "2s"})

        def cut_lines():
            return [l for l in gw.stderr_lines() if "send_timeout" in l]

        def all_cut(watch, client):
            return len(cut_lines()) >= n and not watch.held_now()

        # slowhttptest sees its slow readers' resets only once it has read
        # what was queued before them, 32 bytes a second: it is interrupted
        # once the gateway has cut them all, and its own view only shows
        # that all of them connected and sent their request.
        a, watch, client = self.run_attack(
            gw, ["-X", "-r", "80", "-w", "512", "-y", "1024", "-n", "1", "-z", "32", "-p", "3"],
            "/big", 10, ["/", "/small", "/", "/small", "/", ("/fast", fast)],
            timeout + SLOW_READ_MARGIN, n, done=all_cut)
        self.assert_all_connected(a, n)
        self.assert_cut_in_time(a, watch, client, n, timeout, "send_timeout", SLOW_READ_MARGIN)
        self.assert_served_throughout(watch, client, n)
        poll_until(lambda: len(cut_lines()) >= n, 3)
        logged = cut_lines()
        self.assertEqual(len(logged), n, "%d send_timeout cuts logged, expected one per slow reader"
                         " (%d); stderr:\n%s" % (len(logged), n, gw.stderr_text()))

    def test_slow_read_cut_by_send_timeout(self):
        """25 slow readers of a body bigger than the socket buffers can hold
        (1 MiB over the kernel's largest send buffer, net.ipv4.tcp_wmem, to
        which loopback's autotuning grows it): the gateway's own output
        backs up, and send_timeout cuts them."""
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
        self.slow_read(25, wmem_max + (1 << 20))

    def test_slow_read_of_a_response_within_the_socket_buffers_is_cut(self):
        """20 slow readers of a 1 MiB body, which the kernel takes whole into
        the connection's send buffer (autotuned up to tcp_wmem's 4 MiB): the
        response bytes wait for the client all the same, it takes 32 B/s of
        them, and send_timeout must cut it (README: send_timeout "stops
        slow-read attacks ... from holding connections and buffers"). Not
        idle_timeout (60s by default), and not with a FIN that leaves the
        bytes queued in an orphaned socket at the reader's pace.

        Fails with the gateway as written: check_send() (client_conn.c) only
        watches a BUSY connection whose evbuffer output is not empty, so a
        response handed whole to the kernel ends the request (IDLE) and the
        reader holds the connection until idle_timeout, which then closes it
        with a FIN, the bytes still queued."""
        self.slow_read(20, 1 << 20)
