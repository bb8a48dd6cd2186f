#!/usr/bin/env python3
"""Open N keep-alive connections to a URL and hold them idle.

    bench/idle_conns.py [-n 10000] [--timeout 120] [--hold 600] http://127.0.0.1:PORT/path

Every connection sends one GET and reads the whole response (status 200
expected), then stays open without traffic. When all N are established the
line `ready N` is printed (flushed) on stdout; the connections are then held
until stdin reaches end-of-file or --hold seconds pass, after which one line
`done held=N closed_by_peer=K` is printed and everything is closed.

If the connections cannot all be established within --timeout seconds, it
prints `failed ok=M/N errors=...` and exits 1. Progress and error details go
to stderr. Loopback or not, it only talks to the URL it is given.
Standard library only.
"""
import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("-n", "--connections", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=200,
                    help="connections being set up at the same time (default 200)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds allowed to establish all connections (default 120)")
    ap.add_argument("--hold", type=float, default=600.0,
                    help="seconds to hold at most when stdin stays open (default 600)")
    ap.add_argument("--retries", type=int, default=20,
                    help="attempts per connection on refused/reset connects (default 20)")
    return ap.parse_args()


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    want_hard = hard if hard == resource.RLIM_INFINITY or hard >= need else need
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, want_hard))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    __slots__ = ("sock", "state", "buf", "attempts", "need")

    def __init__(self):
        self.sock = None
        self.state = "new"
        self.buf = b""
        self.attempts = 0
        self.need = None  # total bytes of the response once known


def response_complete(buf):
    """Return (done, status, error) for a buffered HTTP/1.1 response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            return True, 0, "response head too large"
        return False, 0, None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return True, 0, "bad status line %r" % head[0]
    length = None
    chunked = False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body = buf[end + 4:]
    if chunked:
        return body.endswith(b"0\r\n\r\n"), status, None
    if length is None:
        if status in (204, 304) or 100 <= status < 200:
            return True, status, None
        return True, status, "response without length (close-delimited)"
    return len(body) >= length, status, None


def main():
    args = parse_args()
    u = urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        sys.exit("idle_conns: only http://HOST:PORT/... URLs")
    host, port = u.hostname, u.port or 80
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    hosthdr = u.netloc
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idle_conns\r\n\r\n"
           % (path, hosthdr)).encode()
    addr = (host, port)
    n = args.connections

    limit = raise_nofile(n + 64)
    if limit < n + 16:
        print("failed ok=0/%d errors=RLIMIT_NOFILE is %d, need %d" % (n, limit, n + 16),
              flush=True)
        return 1

    sel = selectors.DefaultSelector()
    held = []
    pending = [Conn() for _ in range(n)]
    active = {}
    retry_at = []  # (time, Conn)
    errors = {}
    bad_status = 0
    deadline = time.monotonic() + args.timeout
    last_report = time.monotonic()

    def note(err):
        errors[err] = errors.get(err, 0) + 1

    def start(c):
        c.attempts += 1
        c.buf = b""
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                          socket.SOCK_STREAM)
        s.setblocking(False)
        c.sock = s
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            fail(c, errno.errorcode.get(rc, str(rc)))
            return
        c.state = "connecting"
        active[s.fileno()] = c
        sel.register(s, selectors.EVENT_WRITE, c)

    def fail(c, why):
        note(why)
        if c.sock is not None:
            fd = c.sock.fileno()
            if fd in active:
                del active[fd]
                sel.unregister(c.sock)
            c.sock.close()
            c.sock = None
        if c.attempts < args.retries:
            retry_at.append((time.monotonic() + 0.05 * c.attempts, c))
        else:
            c.state = "gave_up"

    while len(held) < n:
        now = time.monotonic()
        if now > deadline:
            break
        # a connection that gave up for good can never make it: stop early
        if not pending and not active and not retry_at:
            break
        if retry_at:
            due = [c for t, c in retry_at if t <= now]
            retry_at = [(t, c) for t, c in retry_at if t > now]
            pending.extend(due)
        while pending and len(active) < args.concurrency:
            start(pending.pop())
        if now - last_report > 5:
            last_report = now
            print("idle_conns: %d/%d established" % (len(held), n), file=sys.stderr, flush=True)
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            s = c.sock
            if c.state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, errno.errorcode.get(err, str(err)))
                    continue
                try:
                    s.send(req)  # tiny: fits in the socket buffer
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e)))
                    continue
                c.state = "reading"
                sel.modify(s, selectors.EVENT_READ, c)
            elif c.state == "reading":
                try:
                    data = s.recv(65536)
                except OSError as e:
                    fail(c, errno.errorcode.get(e.errno, str(e)))
                    continue
                if not data:
                    fail(c, "closed before response")
                    continue
                c.buf += data
                done, status, err = response_complete(c.buf)
                if not done:
                    continue
                if err:
                    fail(c, err)
                    continue
                if status != 200:
                    bad_status += 1
                    fail(c, "status %d" % status)
                    continue
                sel.unregister(s)
                del active[s.fileno()]
                c.state = "held"
                c.buf = b""
                held.append(c)

    if len(held) < n:
        errs = ",".join("%s:%d" % kv for kv in sorted(errors.items())) or "timeout"
        print("failed ok=%d/%d errors=%s" % (len(held), n, errs), flush=True)
        for c in held:
            c.sock.close()
        return 1

    if errors:
        print("idle_conns: transient errors (retried): %s"
              % ",".join("%s:%d" % kv for kv in sorted(errors.items())),
              file=sys.stderr, flush=True)
    for c in list(active.values()):
        c.sock.close()
    sel.close()

    print("ready %d" % n, flush=True)

    # Hold: watch every socket for EOF (a peer close) and stdin for EOF.
    sel = selectors.DefaultSelector()
    for c in held:
        sel.register(c.sock, selectors.EVENT_READ, c)
    stdin_fd = sys.stdin.fileno()
    sel.register(stdin_fd, selectors.EVENT_READ, None)
    closed = 0
    end = time.monotonic() + args.hold
    stop = False
    while not stop and time.monotonic() < end:
        for key, ev in sel.select(timeout=1.0):
            if key.data is None:
                if not os.read(stdin_fd, 4096):
                    stop = True
                continue
            c = key.data
            try:
                data = c.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed += 1
                sel.unregister(c.sock)
                c.sock.close()
                c.state = "closed"
    for c in held:
        if c.state == "held":
            c.sock.close()
    print("done held=%d closed_by_peer=%d" % (n, closed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
