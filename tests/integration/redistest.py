"""Redis for the integration tests (and bench/flags_propagation.py).

- Redis: a minimal RESP2 client over TCP or a unix socket (standard library
  only), enough for HSET/SET/PUBLISH/CLIENT KILL.
- RedisServer: a redis-server of our own on a free loopback port (and an
  optional unix socket), with the faults the tests need: stop, restart on
  the same port, pause (SIGSTOP) and resume (SIGCONT).
- shared_redis_address(): the suite's redis-server (GATEWAY_TEST_REDIS, set
  by tests/run-tests.sh), or one started here for the whole process when
  the variable is unset. Tests that share it use a key prefix of their own;
  tests that break Redis always start their own.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

from gwtest import free_port


class RedisError(Exception):
    pass


class Redis:
    """One connection; cmd() sends a command and returns its reply (bytes,
    int, None, or a list of those). An error reply raises RedisError."""

    def __init__(self, address, password=None, timeout=5.0):
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        else:
            host, port = address.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = bytearray()
        if password:
            self.cmd("AUTH", password)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def cmd(self, *args):
        out = bytearray(b"*%d\r\n" % len(args))
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        data = bytes(self.buf[:n])
        del self.buf[:n + 2]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("bad reply line %r" % line)


def unique_prefix():
    """A key prefix no other test (or gatewayctl test) uses."""
    return "gwt%s:" % uuid.uuid4().hex[:10]


class RedisServer:
    """A redis-server of our own, on a free loopback port; optionally also
    on a unix socket, and with a password."""

    def __init__(self, password=None, unix_socket=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gw-redis-")
        self.password = password
        self.unix_path = os.path.join(self.dir, "redis.sock") if unix_socket else None
        self.proc = None
        self.paused = False

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=5.0):
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.unix_path:
            args += ["--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as r:
                    r.cmd("PING")
                return self
            except (OSError, RedisError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("redis-server did not start on port %d" % self.port)
                time.sleep(0.02)

    def client(self):
        return Redis(self.address, self.password)

    def pause(self):
        """SIGSTOP: the kernel still accepts connections, nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def stop(self):
        """Stops the server (SIGCONT first if paused); the port is free after."""
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        _LIVE.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)


_LIVE = set()
_SHARED = None


@atexit.register
def _stop_leftovers():
    for s in list(_LIVE):
        s.cleanup()


def shared_redis_address():
    """GATEWAY_TEST_REDIS, or a redis-server started once for this process."""
    global _SHARED
    env = os.environ.get("GATEWAY_TEST_REDIS")
    if env:
        return env
    if _SHARED is None:
        _SHARED = RedisServer().start()
    return _SHARED.address
