"""Shared helpers for the gateway's integration tests.

- free_port(), to_yaml(), make_config(), upstream(), route(): configs
- Gateway: runs the real binary (`gateway -c FILE`), waits until it accepts
  TCP connections (bounded poll), collects stdout (access log) and stderr
  (process log) in threads, stops it (SIGTERM, bounded wait, then SIGKILL)
- Conn / Response: a raw-socket HTTP/1.1 client with a small strict parser
- GatewayTestCase: unittest base class that starts stubs and gateways and
  always cleans them up, failing the test when the gateway died under it

Nothing here sleeps for a fixed time to wait for a condition: every wait is a
poll with a deadline.
"""

import atexit
import hashlib
import json
import os
import re
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "stubs"))

from stub_upstream import StubUpstream, generated_body, generated_sha256  # noqa: E402,F401

# Path of the binary under test; run.py sets it from --gateway.
GATEWAY = os.environ.get("GATEWAY", os.path.join(ROOT, "build", "gateway"))
# The build directory the gateway under test came from (run.py sets it before
# copying the binary away): the other programs of that build are found there.
BUILD_DIR = os.environ.get("GATEWAY_BUILD_DIR", os.path.dirname(GATEWAY))

# tests/run-tests.sh --tsan: ThreadSanitizer's shadow memory counts in the
# gateway's RSS, so bounds on VmHWM measure TSan, not the gateway.
MEMORY_BOUNDS_APPLY = os.environ.get("GATEWAY_TEST_SANITIZER") != "thread"

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# ports and configs

def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sockets bound and never listening: their ports refuse connections, and no
# other process can take them while the tests run (a port that was merely
# free a moment ago can become the gateway's own, which then proxies to
# itself). Closed when the test process exits.
_REFUSING = []


def refused_address():
    """A loopback "HOST:PORT" where every connect is refused, for the whole run."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    _REFUSING.append(s)
    return "127.0.0.1:%d" % s.getsockname()[1]


_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./-]*")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_scalar(v):
    """One YAML scalar: plain when unambiguous, double-quoted otherwise."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.fullmatch(s) and s.lower() not in _SPECIAL:
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, yaml_scalar(k), to_yaml(v, indent + 2)))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s\n" % (pad, yaml_scalar(k), "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s\n" % (pad, yaml_scalar(k), yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            else:
                out.append("%s- %s\n" % (pad, yaml_scalar(item)))
    else:
        out.append(pad + yaml_scalar(obj) + "\n")
    return "".join(out)


def server_entry(s, weight=None):
    """A servers: entry for a stub (or "host:port"), with an optional weight."""
    addr = s.address if isinstance(s, StubUpstream) else s
    return addr if weight is None else {"address": addr, "weight": weight}


def upstream(*servers, **opts):
    """An upstreams: entry; servers are stubs, addresses or server_entry()s."""
    conf = {"servers": [s if isinstance(s, dict) else server_entry(s) for s in servers]}
    conf.update(opts)
    return conf


def route(name, upstream_name, path_prefix="/", host=None, methods=None, headers=None, **opts):
    """A routes: entry."""
    match = {"path_prefix": path_prefix}
    if host is not None:
        match["host"] = host
    if methods is not None:
        match["methods"] = list(methods)
    if headers is not None:
        match["headers"] = dict(headers)
    conf = {"name": name, "match": match, "upstream": upstream_name}
    conf.update(opts)
    return conf


def make_config(port, upstreams, routes, workers=1, limits=None, access_log="stdout",
                drain_timeout="5s", **extra):
    """A whole config as a dict (render with to_yaml)."""
    conf = {
        "listen": ["127.0.0.1:%d" % port],
        "workers": workers,
        "drain_timeout": drain_timeout,
        "access_log": access_log,
    }
    if limits:
        conf["limits"] = dict(limits)
    conf["upstreams"] = upstreams
    conf["routes"] = routes
    # Loop lag as an overload signal is off unless a test sets it: a loaded
    # machine (a sanitizer build, modules running side by side) lags tens of
    # milliseconds and would shed requests of tests about something else.
    extra["shedding"] = dict({"max_loop_lag": "1m"}, **extra.get("shedding", {}))
    conf.update(extra)
    return conf


_TMPDIR = None


def tmp_dir():
    """A per-run temporary directory (removed by run.py at the end)."""
    global _TMPDIR
    if _TMPDIR is None:
        _TMPDIR = tempfile.mkdtemp(prefix="gw-integration-")
    return _TMPDIR


def write_file(text, name="gateway", suffix=".yaml"):
    fd, path = tempfile.mkstemp(prefix=name + "-", suffix=suffix, dir=tmp_dir())
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


_BUILT = {}


def built_program(name):
    """Path of a program built beside the gateway under test (gatewayctl),
    copied once into the run's temporary directory like the gateway itself,
    so that a rebuild during the run cannot change what the tests execute."""
    if name not in _BUILT:
        src = os.path.join(BUILD_DIR, name)
        if not os.access(src, os.X_OK):
            raise AssertionError("%s is not built: no executable %s" % (name, src))
        dest = os.path.join(tmp_dir(), name)
        shutil.copy2(src, dest)
        _BUILT[name] = dest
    return _BUILT[name]


def run_gateway_cmd(args, timeout=10):
    """Runs the binary with args; returns CompletedProcess (text output)."""
    return subprocess.run([GATEWAY] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class BlackHole:
    """A loopback address whose SYNs go unanswered: a listening socket that
    never accepts, its tiny backlog filled, so a connect() just hangs."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.fillers = []
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
            if self._hangs():
                return
        raise AssertionError("could not fill the backlog of a black-hole socket")

    def _hangs(self):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", self.port))
            return False
        except socket.timeout:
            return True
        finally:
            probe.close()

    def close(self):
        for s in self.fillers:
            s.close()
        self.lsock.close()


# ---------------------------------------------------------------------------
# the gateway process

_LIVE = set()


@atexit.register
def _kill_leftovers():
    """Never leave a gateway (or the temporary directory) behind when the
    test process ends."""
    for gw in list(_LIVE):
        gw.kill()
    if _TMPDIR:
        shutil.rmtree(_TMPDIR, ignore_errors=True)

class GatewayStartError(AssertionError):
    pass


class Gateway:
    """The gateway binary running with one config (see module docstring)."""

    def __init__(self, config, port, name="gateway"):
        self.config_text = config if isinstance(config, str) else to_yaml(config)
        self.port = port
        self.config_path = write_file(self.config_text, name)
        self.proc = None
        self._out = []
        self._err = []
        self._lock = threading.Lock()
        self._threads = []
        self.expected_exit = False
        self.returncode = None

    # ----- life cycle -------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        self.proc = subprocess.Popen([GATEWAY, "-c", self.config_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _LIVE.add(self)
        for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self._threads.append(t)
        self.wait_ready(timeout)
        return self

    def _pump(self, stream, sink):
        for line in iter(stream.readline, b""):
            with self._lock:
                sink.append(line.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def wait_ready(self, timeout):
        """Polls until the listen port accepts a TCP connection."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._join_pumps()
                raise GatewayStartError("gateway exited with %s before accepting connections;"
                                        " stderr:\n%s\nconfig:\n%s"
                                        % (rc, self.stderr_text(), self.config_text))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise GatewayStartError("gateway did not accept connections on port %d within"
                                        " %.1fs; stderr:\n%s" % (self.port, timeout, self.stderr_text()))
            time.sleep(0.01)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        """Sends sig; the test expects the process to exit (no crash report)."""
        self.expected_exit = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit code, or None when still running after timeout seconds."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_pumps()
        return self.returncode

    def stop(self, sig=_signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals, waits up to timeout, then kills. Returns the exit code
        (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.expected_exit = True
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.kill()
        self.returncode = self.proc.wait()
        self._join_pumps()
        _LIVE.discard(self)
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _LIVE.discard(self)

    def _join_pumps(self):
        for t in self._threads:
            t.join(2)

    # ----- output -----------------------------------------------------
    def stdout_lines(self):
        with self._lock:
            return list(self._out)

    def stderr_text(self, tail=40):
        with self._lock:
            return "\n".join(self._err[-tail:])

    def stderr_lines(self):
        with self._lock:
            return list(self._err)

    def wait_stderr(self, pattern, timeout=3.0, start=0):
        """Polls until a stderr line (from index `start` on) matches the regex
        `pattern`; returns (index, line), or None after timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.stderr_lines()
            for i in range(start, len(lines)):
                if rx.search(lines[i]):
                    return i, lines[i]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def access_records(self, n=1, timeout=3.0):
        """Waits until n stdout lines exist; returns every line parsed as JSON.
        A line that is not a JSON object fails with the line quoted."""
        deadline = time.monotonic() + timeout
        while len(self.stdout_lines()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        records = []
        for line in self.stdout_lines():
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise AssertionError("access log line is not JSON (%s): %r" % (e, line))
            if not isinstance(obj, dict):
                raise AssertionError("access log line is not a JSON object: %r" % line)
            records.append(obj)
        return records

    def vm_hwm_kib(self):
        """Peak resident set size (VmHWM) of the gateway process, in KiB."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/%d/status" % self.pid)


# ---------------------------------------------------------------------------
# raw HTTP client

class HttpError(AssertionError):
    """A client-side failure; the message shows what was received."""


class ResponseTimeout(HttpError):
    pass


class ConnectionClosed(HttpError):
    pass


class ProtocolError(HttpError):
    pass


_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Response:
    """One parsed response."""

    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as str
        self.raw_head = raw_head
        self.body = b""
        self.body_len = 0
        self.body_sha256 = None
        self.framing = None  # "none" | "length" | "chunked" | "close"
        self.trailers = []
        self.interim = []  # 1xx responses seen before this one

    def header(self, name):
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name):
        low = name.lower()
        return [v for (n, v) in self.headers if n.lower() == low]

    def has_header(self, name):
        return bool(self.header_all(name))

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("body is not JSON (%s): %r" % (e, self.body[:300]))

    def describe(self):
        """Short text for failure messages: status line, headers, body start."""
        body = self.body[:300]
        return "%d %s headers=%r body[%d]=%r" % (self.status, self.reason, self.headers,
                                                 self.body_len, body)

    def __repr__(self):
        return "<Response %s>" % self.describe()


def build_request(method, target, headers=(), body=None, host="gw.test", version="HTTP/1.1",
                  chunked=False):
    """Request bytes. Host is added unless host is None; Content-Length is
    added for a body unless chunked (then the body is sent as one chunk)."""
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None:
        lines.append("Host: " + host)
    lines += ["%s: %s" % (n, v) for (n, v) in headers]
    if isinstance(body, str):
        body = body.encode()
    if body is not None and chunked:
        lines.append("Transfer-Encoding: chunked")
    elif body is not None and not any(n.lower() == "content-length" for (n, _) in headers):
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body and chunked
                 else b"0\r\n\r\n" if chunked else body)
    return data


class Conn:
    """One client TCP connection with a strict response reader."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.closed_locally = False
        self.throttle = None  # (seconds, bytes): a slow reader, see _fill

    # ----- sending ----------------------------------------------------
    def send(self, data, ignore_errors=False):
        """Sends all bytes. With ignore_errors a reset/closed peer is not an
        error (the gateway may close while we still send)."""
        try:
            self.sock.sendall(data)
        except OSError:
            if not ignore_errors:
                raise
            return False
        return True

    def request(self, method, target, headers=(), body=None, **kw):
        self.send(build_request(method, target, headers, body, **kw))

    def close(self):
        if not self.closed_locally:
            self.closed_locally = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----- receiving --------------------------------------------------
    def _fill(self, deadline, what):
        """Reads more bytes; False at EOF/reset. Raises ResponseTimeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise ResponseTimeout("timeout waiting for %s; received so far: %r"
                                  % (what, bytes(self.buf[:500])))
        size = 262144
        if self.throttle:
            time.sleep(self.throttle[0])
            size = self.throttle[1]
        self.sock.settimeout(max(left, 0.001))
        try:
            data = self.sock.recv(size)
        except socket.timeout:
            raise ResponseTimeout("timeout waiting for %s; received so far: %r"
                                  % (what, bytes(self.buf[:500])))
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, deadline, what, limit=65536):
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                if idx == 0 or self.buf[idx - 1] != 0x0D:
                    raise ProtocolError("bare LF in %s: %r" % (what, bytes(self.buf[:idx + 1])))
                line = bytes(self.buf[:idx - 1])
                del self.buf[:idx + 1]
                return line
            if len(self.buf) > limit:
                raise ProtocolError("%s line too long: %r" % (what, bytes(self.buf[:200])))
            if not self._fill(deadline, what):
                raise ConnectionClosed("connection %s while waiting for %s; partial: %r"
                                       % ("reset" if self.reset else "closed", what, bytes(self.buf)))

    def _read_head(self, deadline):
        line = self._read_line(deadline, "status line")
        raw = [line]
        m = _STATUS_LINE.fullmatch(line)
        if not m:
            raise ProtocolError("bad status line %r" % line)
        headers = []
        while True:
            hl = self._read_line(deadline, "header line")
            raw.append(hl)
            if hl == b"":
                break
            name, sep, value = hl.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise ProtocolError("bad header line %r" % hl)
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        version = "HTTP/%s.%s" % (m.group(1).decode(), m.group(2).decode())
        return Response(version, int(m.group(3)), (m.group(4) or b"").decode("latin-1"), headers,
                        b"\r\n".join(raw) + b"\r\n")

    def read_response(self, timeout=5.0, head=False, store=True, max_store=64 << 20):
        """Reads one response (skipping 1xx ones). head=True for a response to
        HEAD. store=False keeps only body length and sha256 (big bodies)."""
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            resp = self._read_head(deadline)
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp.status)
                continue
            break
        resp.interim = interim
        self._read_body(resp, deadline, head, store, max_store)
        return resp

    def _read_body(self, resp, deadline, head, store, max_store):
        sha = hashlib.sha256()
        body = bytearray()
        total = 0

        def take(data):
            nonlocal total
            sha.update(data)
            total += len(data)
            if store and len(body) < max_store:
                body.extend(data)

        cls = [v.strip().lower() for v in resp.header_all("Content-Length")]
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        if head or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
        elif te:
            if te.split(",")[-1].strip() != "chunked":
                raise ProtocolError("response Transfer-Encoding %r not chunked" % te)
            resp.framing = "chunked"
            self._read_chunked(resp, deadline, take)
        elif cls:
            if len(set(cls)) != 1 or not cls[0].isdigit():
                raise ProtocolError("bad response Content-Length %r" % cls)
            resp.framing = "length"
            left = int(cls[0])
            while left > 0:
                if not self.buf and not self._fill(deadline, "body (%d bytes left)" % left):
                    raise ConnectionClosed("connection closed with %d body bytes missing"
                                           " (got %d); head: %r" % (left, total, resp.raw_head))
                n = min(left, len(self.buf))
                take(bytes(self.buf[:n]))
                del self.buf[:n]
                left -= n
        else:
            resp.framing = "close"
            while True:
                if self.buf:
                    take(bytes(self.buf))
                    self.buf.clear()
                if not self._fill(deadline, "close-delimited body"):
                    break
        resp.body = bytes(body)
        resp.body_len = total
        resp.body_sha256 = sha.hexdigest()

    def _read_chunked(self, resp, deadline, take):
        while True:
            line = self._read_line(deadline, "chunk size")
            size_txt = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9a-fA-F]+", size_txt):
                raise ProtocolError("bad chunk size line %r" % line)
            size = int(size_txt, 16)
            if size == 0:
                break
            left = size
            while left > 0:
                if not self.buf and not self._fill(deadline, "chunk data"):
                    raise ConnectionClosed("connection closed inside a chunk")
                n = min(left, len(self.buf))
                take(bytes(self.buf[:n]))
                del self.buf[:n]
                left -= n
            if self._read_line(deadline, "chunk end") != b"":
                raise ProtocolError("chunk data not followed by CRLF")
        while True:
            t = self._read_line(deadline, "trailer")
            if t == b"":
                return
            resp.trailers.append(t)

    def wait_closed(self, timeout=2.0):
        """Waits up to timeout for the peer to close (FIN or RST).
        Returns (closed, extra_bytes_received_meanwhile)."""
        deadline = time.monotonic() + timeout
        extra = bytes(self.buf)
        self.buf.clear()
        while not self.eof:
            try:
                if not self._fill(deadline, "close"):
                    break
            except ResponseTimeout:
                return False, extra + bytes(self.buf)
            extra += bytes(self.buf)
            self.buf.clear()
        return True, extra

    def pending_bytes(self, wait):
        """Bytes that arrive within `wait` seconds (b"" if none; used to prove
        that nothing follows a response)."""
        closed, extra = self.wait_closed(wait)
        return extra


def fetch(port, method, target, headers=(), body=None, timeout=5.0, **kw):
    """One request on a new connection; returns the Response."""
    with Conn(port, timeout=timeout) as c:
        c.request(method, target, headers, body, **kw)
        return c.read_response(timeout, head=(method == "HEAD"))


def connect_refused(port, timeout=0.5):
    """True when a TCP connect to the port is refused (or times out)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return False
    except OSError:
        return True


def poll_until(pred, timeout, interval=0.02):
    """Calls pred until it returns a true value or timeout; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------
# test base class

HEX32 = re.compile(r"[0-9a-f]{32}")


class GatewayTestCase(unittest.TestCase):
    """Starts stubs and gateways, always stops them, and fails a test whose
    gateway died without being asked to."""

    maxDiff = 4000

    def start_stub(self, name="stub", mode="echo", **opts):
        """A started stub, stopped after the test; the test fails if the
        gateway sent it bytes it could not parse as HTTP/1.1 requests."""
        s = StubUpstream(name).set(mode, **opts).start()
        self.addCleanup(self._stop_stub, s)
        return s

    def _stop_stub(self, s):
        s.stop()
        if s.errors:
            self.fail("upstream stub %s could not parse what the gateway sent: %r" % (s.name, s.errors))

    def start_gateway(self, upstreams, routes, port=None, check_alive=True, **conf):
        """Starts the gateway with make_config(...); returns the Gateway."""
        port = port or free_port()
        gw = Gateway(make_config(port, upstreams, routes, **conf), port)
        self.addCleanup(self._stop_gateway, gw, check_alive)
        gw.start()
        return gw

    def start_gateway_text(self, text, port, check_alive=True):
        gw = Gateway(text, port)
        self.addCleanup(self._stop_gateway, gw, check_alive)
        gw.start()
        return gw

    def simple_gateway(self, stub, route_opts=None, upstream_opts=None, **conf):
        """One upstream "u" with the stub(s), one route "r" on "/"."""
        stubs = stub if isinstance(stub, (list, tuple)) else [stub]
        return self.start_gateway({"u": upstream(*stubs, **(upstream_opts or {}))},
                                  [route("r", "u", **(route_opts or {}))], **conf)

    def _stop_gateway(self, gw, check_alive):
        if gw.proc is None:
            return
        died = not gw.alive() and not gw.expected_exit
        rc = gw.stop()
        if died and check_alive:
            self.fail("the gateway process died during the test (exit status %s); stderr tail:\n%s"
                      % (rc, gw.stderr_text()))

    def connect(self, gw_or_port, timeout=5.0):
        port = gw_or_port if isinstance(gw_or_port, int) else gw_or_port.port
        c = Conn(port, timeout=timeout)
        self.addCleanup(c.close)
        return c

    def fetch(self, gw, method, target, headers=(), body=None, timeout=5.0, **kw):
        return fetch(gw.port, method, target, headers, body, timeout, **kw)

    # ----- assertions -------------------------------------------------
    def assertStatus(self, resp, status, msg=""):
        if resp.status != status:
            self.fail("expected status %d, got %s %s" % (status, resp.describe(), msg))

    def assertGatewayError(self, resp, status, code):
        """status, X-Gateway-Error: code, JSON body {"error": code, "request_id": ...}."""
        self.assertStatus(resp, status)
        self.assertEqual(resp.header("X-Gateway-Error"), code,
                         "X-Gateway-Error header; response: %s" % resp.describe())
        if resp.body_len == 0 and resp.framing == "none":
            return  # HEAD
        body = resp.json()
        self.assertEqual(body.get("error"), code, "JSON error field in %r" % resp.body)
        rid = body.get("request_id")
        self.assertTrue(isinstance(rid, str) and rid, "JSON request_id missing in %r" % resp.body)
        if resp.header("X-Request-ID") is not None:
            self.assertEqual(resp.header("X-Request-ID"), rid,
                             "X-Request-ID header differs from the body's request_id")

    def assertNotGatewayError(self, resp):
        self.assertIsNone(resp.header("X-Gateway-Error"),
                          "a proxied response carries X-Gateway-Error: %s" % resp.describe())

    def assertClosed(self, conn, timeout=2.0, what=""):
        closed, extra = conn.wait_closed(timeout)
        if not closed:
            self.fail("connection still open %.1fs after the response%s; extra bytes: %r"
                      % (timeout, what, extra[:300]))
        if extra:
            self.fail("bytes after the response before close%s: %r" % (what, extra[:300]))

    def assertStubSaw(self, stub, n, msg=""):
        got = stub.requests
        if len(got) != n:
            self.fail("upstream stub %s received %d requests, expected %d %s: %r"
                      % (stub.name, len(got), n, msg, got[:5]))
