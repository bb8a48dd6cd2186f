"""Command line: -v, -t on valid and invalid files, start-up failures."""

import os
import re
import socket
import subprocess
import tempfile

import gwtest
from gwtest import GatewayTestCase, free_port, run_gateway_cmd, write_file

VALID = """\
listen:
  - "127.0.0.1:{port}"
workers: 2
drain_timeout: 3s
access_log: off
limits:
  max_connections: 100
  max_header_bytes: 8k
  max_body_bytes: 1m
  header_timeout: 2s
  body_timeout: 3s
  idle_timeout: 250ms
upstreams:
  catalog:
    servers:
      - "127.0.0.1:9001"
      - { address: "127.0.0.1:9002", weight: 2 }
    balance: least_request
    connect_timeout: 500ms
    max_connections: 16
    keepalive: 4
  other:
    servers: ["127.0.0.1:9003"]
    balance: random
routes:
  - name: api
    match: { path_prefix: /api, methods: [GET, POST], host: shop.example.com, headers: { X-Tenant: acme } }
    upstream: catalog
    strip_prefix: true
    timeout: 3s
  - name: rest
    match:
      path_prefix: /
    upstream: other
"""

# Each invalid case: (name, config text with {port}, line of the error, column or None).
BASE_TAIL = """\
upstreams:
  u:
    servers: ["127.0.0.1:9001"]
routes:
  - name: r
    match: { path_prefix: / }
    upstream: u
"""
HEAD = 'listen:\n  - "127.0.0.1:{port}"\nworkers: 1\n'

INVALID = [
    ("unknown_top_level_key", HEAD + "bogus_key: 3\n" + BASE_TAIL, 4, 1),
    ("unknown_limits_key", HEAD + "limits:\n  max_conections: 5\n" + BASE_TAIL, 5, 3),
    ("bad_duration", HEAD + "drain_timeout: 5 parsecs\n" + BASE_TAIL, 4, None),
    ("duration_without_unit", HEAD + "limits:\n  header_timeout: 10\n" + BASE_TAIL, 5, None),
    ("bad_size", HEAD + "limits:\n  max_body_bytes: 8 gallons\n" + BASE_TAIL, 5, None),
    ("workers_not_a_number", 'listen:\n  - "127.0.0.1:{port}"\nworkers: lots\n' + BASE_TAIL, 3, None),
    ("wrong_type_list_for_scalar", HEAD + "access_log: [a, b]\n" + BASE_TAIL, 4, None),
    ("unknown_balance", HEAD + 'upstreams:\n  u:\n    servers: ["127.0.0.1:9001"]\n'
     "    balance: fastest\nroutes:\n  - name: r\n    match: { path_prefix: / }\n    upstream: u\n", 7, None),
    ("weight_out_of_range", HEAD + "upstreams:\n  u:\n    servers:\n"
     '      - { address: "127.0.0.1:9001", weight: 0 }\n'
     "routes:\n  - name: r\n    match: { path_prefix: / }\n    upstream: u\n", 7, None),
    ("route_unknown_upstream", HEAD + BASE_TAIL.replace("upstream: u\n", "upstream: nope\n"), 10, None),
    ("duplicate_route_name", HEAD + BASE_TAIL + "  - name: r\n    match: { path_prefix: /x }\n    upstream: u\n",
     11, None),
    ("bad_listen_address", 'listen:\n  - "127.0.0.1:notaport"\nworkers: 1\n' + BASE_TAIL, 2, None),
    ("unknown_route_key", HEAD + BASE_TAIL + "    retries_please: 3\n", 11, 5),
    ("duplicate_upstream_name", HEAD + 'upstreams:\n  u:\n    servers: ["127.0.0.1:9001"]\n'
     '  u:\n    servers: ["127.0.0.1:9002"]\n'
     "routes:\n  - name: r\n    match: { path_prefix: / }\n    upstream: u\n", 7, None),
    ("duplicate_top_level_key", HEAD + "workers: 2\n" + BASE_TAIL, 4, None),
    ("max_connections_zero", HEAD + "limits:\n  max_connections: 0\n" + BASE_TAIL, 5, None),
    ("negative_timeout", HEAD + BASE_TAIL + "    timeout: -1s\n", 11, None),
    ("yaml_syntax_error", HEAD + "limits: { max_connections: 5\n" + BASE_TAIL, None, None),
]

LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$")


class CliTests(GatewayTestCase):
    def test_version_flag_prints_version(self):
        """`gateway -v` exits 0 and prints a version number."""
        p = run_gateway_cmd(["-v"])
        self.assertEqual(p.returncode, 0, "stderr: %r" % p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"\d+\.\d+\.\d+")

    def test_check_valid_config_exits_0(self):
        """`gateway -t -c FILE` on a file using every current key exits 0 and binds nothing."""
        port = free_port()
        path = write_file(VALID.replace('{port}', str(port)), "valid")
        p = run_gateway_cmd(["-t", "-c", path])
        self.assertEqual(p.returncode, 0, "stdout %r stderr %r" % (p.stdout, p.stderr))
        self.assertTrue(gwtest.connect_refused(port), "-t must not start listening")

    def test_default_config_path(self):
        """Without -c the gateway reads conf/gateway.yaml (relative to the
        working directory): -t exits 0 for a valid one, and 1 with
        "conf/gateway.yaml:LINE:COL:" for an invalid one."""
        work = tempfile.mkdtemp(dir=gwtest.tmp_dir())
        os.mkdir(os.path.join(work, "conf"))
        conf = os.path.join(work, "conf", "gateway.yaml")
        with open(conf, "w") as f:
            f.write(HEAD.replace("{port}", str(free_port())) + BASE_TAIL)
        p = subprocess.run([gwtest.GATEWAY, "-t"], cwd=work, capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, "stderr %r" % p.stderr)
        with open(conf, "w") as f:
            f.write(HEAD.replace("{port}", str(free_port())) + "bogus_key: 1\n" + BASE_TAIL)
        p = subprocess.run([gwtest.GATEWAY, "-t"], cwd=work, capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1, "stderr %r" % p.stderr)
        self.assertRegex(p.stderr, r"conf/gateway\.yaml:4:1: ")

    def test_check_missing_file_exits_1(self):
        """-t on a file that does not exist: exit 1 and a message naming the file."""
        path = gwtest.tmp_dir() + "/does-not-exist.yaml"
        p = run_gateway_cmd(["-t", "-c", path])
        self.assertEqual(p.returncode, 1, "stderr %r" % p.stderr)
        self.assertIn("does-not-exist.yaml", p.stderr)

    def test_check_reports_every_error(self):
        """Two independent errors in one file give two FILE:LINE:COL lines."""
        text = HEAD + "bogus_one: 1\nbogus_two: 2\n" + BASE_TAIL
        path = write_file(text.replace('{port}', str(free_port())), "two-errors")
        p = run_gateway_cmd(["-t", "-c", path])
        self.assertEqual(p.returncode, 1)
        lines = [m for m in map(LOCATED.match, p.stderr.splitlines()) if m]
        self.assertEqual(sorted(int(m["line"]) for m in lines), [4, 5], "stderr: %r" % p.stderr)

    def test_start_fails_cleanly_when_port_in_use(self):
        """A port already bound: non-zero exit (no signal), a line naming the cause."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        path = write_file(HEAD.replace('{port}', str(port)) + BASE_TAIL, "inuse")
        try:
            p = subprocess.run([gwtest.GATEWAY, "-c", path], capture_output=True, text=True,
                               timeout=5, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail("gateway still running 5s after failing to bind (stderr %r)" % e.stderr)
        self.assertGreater(p.returncode, 0, "exit status (negative = killed by a signal); stderr %r"
                           % p.stderr)
        cause = [l for l in p.stderr.splitlines()
                 if re.search(r"in use|EADDRINUSE", l, re.I) and str(port) in l]
        self.assertTrue(cause, "no stderr line names the address in use (port %d): %r" % (port, p.stderr))

    def test_start_fails_cleanly_on_unwritable_access_log(self):
        """access_log in a directory that does not exist: non-zero exit (no
        signal) and a stderr line naming the path."""
        bad = gwtest.tmp_dir() + "/no/such/dir/access.log"
        text = HEAD.replace("{port}", str(free_port())) + "access_log: %s\n" % bad + BASE_TAIL
        path = write_file(text, "badlog")
        try:
            p = run_gateway_cmd(["-c", path], timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("gateway kept running with an access log it cannot open")
        self.assertGreater(p.returncode, 0, "exit status; stderr %r" % p.stderr)
        self.assertIn("/no/such/dir/access.log", p.stderr)

    def test_start_fails_on_invalid_config(self):
        """`gateway -c` with an invalid file exits non-zero with the located error."""
        path = write_file(HEAD.replace('{port}', str(free_port())) + "bogus_key: 1\n" + BASE_TAIL, "badstart")
        p = run_gateway_cmd(["-c", path], timeout=5)
        self.assertGreater(p.returncode, 0)
        self.assertTrue(any(LOCATED.match(l) for l in p.stderr.splitlines()), p.stderr)


def _make_invalid_test(name, text, line, col):
    def test(self):
        path = write_file(text.replace('{port}', str(free_port())), "invalid-" + name)
        p = run_gateway_cmd(["-t", "-c", path])
        self.assertEqual(p.returncode, 1, "exit status; stderr %r" % p.stderr)
        located = [m for m in map(LOCATED.match, p.stderr.splitlines()) if m]
        self.assertTrue(located, "no FILE:LINE:COL: message line on stderr: %r" % p.stderr)
        m = located[0]
        self.assertEqual(m["file"], path, "file part of %r" % m.group(0))
        if line is not None:
            self.assertEqual(int(m["line"]), line, "line of %r\nconfig:\n%s" % (m.group(0), _numbered(
                text)))
        if col is not None:
            self.assertEqual(int(m["col"]), col, "column of %r" % m.group(0))
        self.assertGreaterEqual(int(m["col"]), 1)
    test.__doc__ = "-t reports %s as FILE:LINE:COL and exits 1." % name
    return test


def _numbered(text):
    return "".join("%3d| %s\n" % (i + 1, l) for i, l in enumerate(text.splitlines()))


for _case in INVALID:
    setattr(CliTests, "test_check_invalid_" + _case[0], _make_invalid_test(*_case))
