"""The admin API's status page (GET /), rendered by a real headless Chromium.

The gateway runs with an `admin:` section; Chromium loads the page from the
admin port and the tests read the live DOM through the DevTools protocol
over --remote-debugging-pipe (fd 3: commands in, fd 4: answers out, JSON
messages ended by a NUL byte): no websocket and no extra Python package.
Every wait is a poll of the DOM with a deadline. The page's own hooks are
used: body[data-loaded="1"] after its first render, tr[data-route] rows
with a .breaker-state cell, #overload[data-level], #freshness[data-state],
tr[data-server], tr[data-flag], #config-file.

Strings in /status come from the config or Redis, and the page must render
them as text. The real gateway is given markup in a route's name (route
names are free text, printable ASCII without '/') and in its config file's
path (a file named "<img src=x onerror=alert(1)>-XXXX.yaml"). Upstream and
flag names are restricted by the config loader (letters, digits, '_', '.',
'-'): every other field is covered by serving the gateway's own page bytes
beside a fake /status (loopback http.server) whose strings are all markup.

Chromium: `chromium` on PATH (Debian 12: apt-get install chromium; tests/
deps.sh installs it), or the program named by GW_TEST_CHROMIUM. Without it
every test here is skipped, saying so.
"""

import base64
import fcntl
import http.server
import json
import os
import select
import shutil
import signal
import tempfile
import threading
import time
import unittest

from admintest import AdminGateway, AdminTestCase
from gwtest import fetch, free_port, route, tmp_dir, upstream

EVIL = "<img src=x onerror=alert(1)>"
EVIL_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"

LOAD_TIMEOUT = 15.0    # Chromium start, page load and first render
UPDATE_TIMEOUT = 6.0   # the page polls /status every second
TOKEN = "status-page-test-token"


def find_chromium():
    """Path of the Chromium to drive, or None."""
    named = os.environ.get("GW_TEST_CHROMIUM")
    if named:
        return shutil.which(named)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ---------------------------------------------------------------------------
# headless Chromium over the DevTools pipe

class BrowserError(AssertionError):
    pass


def _high_fd(fd):
    """A close-on-exec duplicate of fd numbered 10 or more (closes fd), so
    that the spawn's dup2() onto 3 and 4 cannot overwrite one with another."""
    dup = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return dup


class Browser:
    """One headless Chromium with a throw-away profile, started with
    posix_spawn (no preexec_fn: the tests run threads) in its own process
    group, and one page (tab) to drive. close() always ends the group."""

    def __init__(self, exe, timeout=10.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_dir())
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.events = []      # DevTools events, in order
        self.dialogs = []     # alert/confirm/prompt the page opened
        self.session = None
        self.document_headers = {}  # added to requests for documents only
        self._buf = b""
        self._id = 0
        self._aux_id = 1 << 30  # ids of commands whose answers nobody awaits
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        cmd_r, cmd_w, out_r, out_w = (_high_fd(fd) for fd in (cmd_r, cmd_w, out_r, out_w))
        log_fd = _high_fd(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        null_fd = _high_fd(os.open(os.devnull, os.O_RDONLY))
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--window-size=1280,900", "about:blank"]
        env = dict(os.environ, HOME=self.profile)
        try:
            self.pid = os.posix_spawn(exe, args, env, setpgroup=0, file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0), (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2), (os.POSIX_SPAWN_DUP2, cmd_r, 3),
                (os.POSIX_SPAWN_DUP2, out_w, 4)])
        finally:
            for fd in (cmd_r, out_w, log_fd, null_fd):
                os.close(fd)
        self.to_chrome, self.from_chrome = cmd_w, out_r
        self.exit_status = None

    # ----- protocol ---------------------------------------------------
    def _write(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.to_chrome, data)
            data = data[n:]

    def send(self, method, params=None, timeout=None, browser_level=False):
        """Sends one command (to the page's session unless browser_level)
        and returns its result; events met meanwhile are kept."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser_level:
            msg["sessionId"] = self.session
        self._write(msg)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read(deadline, method)
            if m.get("id") == self._id:
                if "error" in m:
                    raise BrowserError("DevTools %s failed: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self._event(m)

    def _event(self, m):
        self.events.append(m)
        if m["method"] == "Page.javascriptDialogOpening":
            # A script ran alert(): record it, and dismiss the dialog so
            # that the page (and our evaluations) are not blocked by it.
            self.dialogs.append(m["params"].get("message"))
            self._aux_id += 1
            self._write({"id": self._aux_id, "sessionId": m.get("sessionId", self.session),
                         "method": "Page.handleJavaScriptDialog", "params": {"accept": True}})
        elif m["method"] == "Fetch.requestPaused":
            # A document request held by open(document_headers=...): let
            # it go with the extra headers.
            p = m["params"]
            headers = dict(p["request"].get("headers", {}))
            headers.update(self.document_headers)
            self._aux_id += 1
            self._write({"id": self._aux_id, "sessionId": m.get("sessionId", self.session),
                         "method": "Fetch.continueRequest",
                         "params": {"requestId": p["requestId"],
                                    "headers": [{"name": k, "value": v}
                                                for k, v in headers.items()]}})

    def _read(self, deadline, what):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer %s in time; log:\n%s"
                                   % (what, self.log_tail()))
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if ready:
                data = os.read(self.from_chrome, 1 << 16)
                if not data:
                    raise BrowserError("Chromium closed its DevTools pipe (during %s); log:\n%s"
                                       % (what, self.log_tail()))
                self._buf += data
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    # ----- the page ---------------------------------------------------
    def open(self, url, document_headers=None):
        """Opens a new tab at url and drives it from now on.
        document_headers: added to the requests for the page itself (not
        to its scripts' fetches), as a proxy in front of it could."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser_level=True)
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 browser_level=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        if document_headers:
            self.document_headers = dict(document_headers)
            self.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "resourceType": "Document",
                                                     "requestStage": "Request"}]})
        res = self.send("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise BrowserError("Chromium could not load %s: %s" % (url, res["errorText"]))

    def navigate(self, url):
        self.send("Page.navigate", {"url": url})

    def eval(self, expression):
        """The value of a JS expression in the page (JSON-like values only)."""
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError("evaluating %s failed: %s"
                               % (expression[:200], json.dumps(res["exceptionDetails"])[:800]))
        return res.get("result", {}).get("value")

    def page_errors(self):
        """Uncaught exceptions of the page's scripts, as text."""
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text"))
        return out

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    # ----- life cycle -------------------------------------------------
    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [ln for ln in f.read().splitlines() if "dbus" not in ln]
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def _reap(self, timeout):
        deadline = time.monotonic() + timeout
        while self.exit_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = status
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self):
        """Asks Chromium to quit, waits a bounded time, then kills its
        process group (renderers and helpers included)."""
        try:
            if self.exit_status is None:
                try:
                    self.send("Browser.close", timeout=3.0, browser_level=True)
                except (BrowserError, OSError):
                    pass
                self._reap(5.0)
        finally:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._reap(5.0)
            for fd in (self.to_chrome, self.from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)


# What the tests read of the page: one JSON-able summary of the DOM.
PAGE_STATE_JS = r"""
(function () {
  function text(sel, root) {
    var e = (root || document).querySelector(sel);
    return e ? e.textContent : null;
  }
  function cells(tr) {
    return Array.prototype.map.call(tr.cells, function (c) { return c.textContent; });
  }
  var st = {
    loaded: document.body.getAttribute('data-loaded'),
    renders: Number(document.body.getAttribute('data-renders') || 0),
    freshness: {state: document.getElementById('freshness').getAttribute('data-state'),
                text: text('#freshness')},
    auth_visible: !document.getElementById('auth').hidden,
    auth_message: text('#auth-message'),
    overload: {level: document.getElementById('overload').getAttribute('data-level'),
               text: text('#overload'), reason: text('#overload-reason')},
    inflight: text('#inflight'), connections: text('#connections'), redis: text('#redis'),
    config_file: text('#config-file'), config_hash: text('#config-hash'),
    shed: {critical: text('#shed-critical'), normal: text('#shed-normal'),
           sheddable: text('#shed-sheddable')},
    routes: {}, upstreams: {}, servers: {}, flags: {},
    img_elements: document.getElementsByTagName('img').length,
    script_elements: document.getElementsByTagName('script').length
  };
  document.querySelectorAll('tr[data-route]').forEach(function (tr) {
    var forced = tr.querySelector('.forced');
    st.routes[tr.getAttribute('data-route')] = {
      breaker: text('.breaker-state', tr), forced: forced ? forced.textContent : null,
      rps: text('.rps', tr), err: text('.err', tr), name_cell: text('.route-name', tr),
      cells: cells(tr)};
  });
  document.querySelectorAll('[data-upstream]').forEach(function (u) {
    st.upstreams[u.getAttribute('data-upstream')] = text('.meta', u);
  });
  document.querySelectorAll('tr[data-server]').forEach(function (tr) {
    st.servers[tr.getAttribute('data-server')] = cells(tr);
  });
  document.querySelectorAll('tr[data-flag]').forEach(function (tr) {
    st.flags[tr.getAttribute('data-flag')] = {value: text('.flag-value', tr),
                                             source: text('.flag-source', tr)};
  });
  return st;
})()
"""


# ---------------------------------------------------------------------------
# a fake /status beside the real page

class FakeAdmin:
    """A loopback HTTP server answering GET / with given page bytes and
    GET /status with a given JSON document (changeable while it runs)."""

    def __init__(self, page, status):
        self.page = page
        self.status = status
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/":
                    body, ctype = fake.page, "text/html; charset=utf-8"
                elif self.path == "/status":
                    body, ctype = json.dumps(fake.status).encode(), "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def hostile_status():
    """A /status document (contract schema) whose every string is markup."""
    return {
        "version": EVIL, "pid": 1, "uptime_seconds": 1.0, "draining": False,
        "config": {"file": EVIL, "hash": EVIL, "loaded_at": EVIL, "reloads": 0,
                   "last_reload_error": EVIL},
        "inflight": 0, "connections": 0,
        "overload": {"level": 1, "source": EVIL, "reason": EVIL, "max_inflight": 10,
                     "dry_run": False, "shed": {"critical": 0, "normal": 0, "sheddable": 0}},
        "redis": {"configured": True, "connected": True},
        "routes": [{"name": EVIL, "priority": EVIL, "upstream": EVIL,
                    "breaker": {"state": EVIL, "forced": EVIL, "window_tries": 0,
                                "window_failures": 0, "consecutive_failures": 0},
                    "requests": 1, "responses": {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0},
                    "retries": 0, "budget_exhausted": 0, "shed": 0, "rate_limited": 0}],
        "upstreams": [{"name": EVIL, "balance": EVIL, "concurrency_limit": None, "inflight": 0,
                       "queue": {"critical": 0, "normal": 0, "sheddable": 0},
                       "servers": [{"address": EVIL, "healthy": True, "ejected": False,
                                    "ejections": 0, "inflight": 0, "open_connections": 0}]}],
        "flags": [{"name": EVIL, "value": EVIL, "source": EVIL}],
    }


# ---------------------------------------------------------------------------
# the tests

class StatusPageTestCase(AdminTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.chromium = find_chromium()
        if not cls.chromium:
            named = os.environ.get("GW_TEST_CHROMIUM")
            raise unittest.SkipTest(
                ("GW_TEST_CHROMIUM=%s is not an executable" % named if named else
                 "Chromium is not installed (no `chromium` on PATH)")
                + ": `tests/deps.sh test` or `apt-get install chromium` installs it")

    def setUp(self):
        self.stub = self.start_stub("backend", "echo")

    # ----- helpers ----------------------------------------------------
    def gateway(self, token=None, **conf):
        """A gateway with an admin API: /checkout (critical, with a circuit
        breaker), /catalog (sheddable, no breaker), /errors (the stub
        answers 503), all to upstream "backend"; flags recommendations on
        and beta 30%."""
        self.stub.set_path("/errors", "503")
        routes = [route("checkout", "backend", path_prefix="/checkout", priority="critical",
                        circuit_breaker={"min_requests": 20, "failure_ratio": 0.5,
                                         "open_duration": "10s"}),
                  route("catalog", "backend", path_prefix="/catalog", priority="sheddable"),
                  route("errors", "backend", path_prefix="/errors")]
        return self.start_admin_gateway({"backend": upstream(self.stub)}, routes, token=token,
                                        access_log="off",
                                        flags={"recommendations": "on", "beta": "30%"}, **conf)

    def browser(self):
        b = Browser(self.chromium)
        self.addCleanup(b.close)
        return b

    def open_page(self, port, fragment="", document_headers=None):
        """A browser showing http://127.0.0.1:PORT/ + fragment."""
        b = self.browser()
        b.open("http://127.0.0.1:%d/%s" % (port, fragment), document_headers)
        return b

    def page_state(self, b):
        return b.eval(PAGE_STATE_JS)

    def wait_page(self, b, pred, what, timeout=UPDATE_TIMEOUT):
        """Polls the page's DOM summary until pred(state) is true; returns
        that state. Fails with the last state (and page errors) otherwise."""
        last = [None]

        def check():
            try:
                st = self.page_state(b)
            except BrowserError as e:  # the document is not there yet
                last[0] = str(e)
                return None
            last[0] = st
            return st if pred(st) else None
        deadline = time.monotonic() + timeout
        while True:
            st = check()
            if st:
                return st
            if time.monotonic() >= deadline:
                self.fail("the status page never showed %s within %.1fs; page errors: %r;"
                          " last DOM summary:\n%s"
                          % (what, timeout, b.page_errors(),
                             json.dumps(last[0], indent=1)[:4000]))
            time.sleep(0.05)

    def wait_loaded(self, b, timeout=LOAD_TIMEOUT):
        return self.wait_page(b, lambda st: st["loaded"] == "1", "its first render", timeout)

    def assertNoMarkupRan(self, b, st):
        """No <img> element made from data, no dialog, no page error."""
        self.assertEqual(st["img_elements"], 0, "an <img> element exists: data became markup")
        self.assertEqual(b.dialogs, [], "a script in the data ran (alert dialog opened)")
        self.assertEqual(b.page_errors(), [], "the page's script raised")

    # ----- tests ------------------------------------------------------
    def test_page_is_served_self_contained_and_renders_status(self):
        """GET / on the admin port answers 200 text/html with a page that
        loads nothing from elsewhere; in Chromium it renders every route
        (breaker state closed for the route with a circuit breaker, none for
        the others), the upstream's server, both flags with value and
        source, overload level 0, and the config file and hash of /status."""
        gw = self.gateway()
        status, headers, body = gw.admin.get("/", token="")
        self.assertEqual(status, 200, "GET / on the admin API: %r" % body[:300])
        self.assertEqual(headers.get("content-type", "").split(";")[0].strip().lower(),
                         "text/html", "GET / Content-Type")
        page = body.decode("utf-8")
        self.assertIn("<!DOCTYPE html>", page[:200])
        for external in ("src=", "href=", "<link", "@import", "url("):
            self.assertNotIn(external, page, "the page must be self-contained (found %r)"
                             % external)

        b = self.open_page(gw.admin_port)
        st = self.wait_loaded(b)
        expected = self.status(gw)
        self.assertEqual(sorted(st["routes"]), ["catalog", "checkout", "errors"], st["routes"])
        self.assertEqual(st["routes"]["checkout"]["breaker"], "closed")
        self.assertIsNone(st["routes"]["checkout"]["forced"])
        self.assertEqual(st["routes"]["catalog"]["breaker"], "none")
        self.assertIn("critical", st["routes"]["checkout"]["cells"])
        self.assertIn("sheddable", st["routes"]["catalog"]["cells"])
        self.assertIn(self.stub.address, st["servers"], st["servers"])
        self.assertIn("healthy", st["servers"][self.stub.address])
        self.assertIn("backend", st["upstreams"])
        self.assertEqual(st["flags"]["recommendations"], {"value": "on", "source": "default"})
        self.assertEqual(st["flags"]["beta"], {"value": "30%", "source": "default"})
        self.assertEqual(st["overload"]["level"], "0")
        self.assertEqual(st["config_file"], expected["config"]["file"])
        self.assertEqual(st["config_hash"], expected["config"]["hash"])
        self.assertEqual(st["freshness"]["state"], "ok", st["freshness"])
        self.assertFalse(st["auth_visible"], "the token box shows without a token configured")
        self.assertNoMarkupRan(b, st)

    def test_forced_breaker_and_shed_level_show_without_reload(self):
        """With the page open, POST /breakers/checkout?state=open makes the
        checkout row show breaker open with its forced marker, and POST
        /shed?level=2 turns the overload level to 2 (source override), on
        the page's own refreshes; `auto` for both brings back closed and 0."""
        gw = self.gateway()
        b = self.open_page(gw.admin_port)
        st = self.wait_loaded(b)
        self.assertEqual(st["routes"]["checkout"]["breaker"], "closed")

        code, answer = gw.admin.post_json("/breakers/checkout?state=open")
        self.assertEqual(code, 200, answer)
        code, answer = gw.admin.post_json("/shed?level=2")
        self.assertEqual(code, 200, answer)
        st = self.wait_page(b, lambda s: s["routes"]["checkout"]["breaker"] == "open"
                            and s["overload"]["level"] == "2",
                            "checkout's breaker open and overload level 2")
        self.assertIn("open", st["routes"]["checkout"]["forced"] or "",
                      "no forced marker on a breaker forced open")
        self.assertIn("override", st["overload"]["reason"])
        self.assertEqual(st["routes"]["catalog"]["breaker"], "none")

        gw.admin.post_json("/breakers/checkout?state=auto")
        gw.admin.post_json("/shed?level=auto")
        st = self.wait_page(b, lambda s: s["routes"]["checkout"]["breaker"] == "closed"
                            and s["routes"]["checkout"]["forced"] is None
                            and s["overload"]["level"] == "0",
                            "checkout's breaker closed (not forced) and level 0 again")
        self.assertNoMarkupRan(b, st)

    def test_request_rate_and_5xx_share_from_deltas(self):
        """Requests proxied while the page is open show up as a request rate
        above 0/s and, for a route whose upstream answers 503, a 5xx share
        of 100.0% (from the deltas between two refreshes); the requests
        column ends at the number sent."""
        gw = self.gateway()
        b = self.open_page(gw.admin_port)
        self.wait_page(b, lambda s: s["renders"] >= 2, "a second render (rates need two)",
                       LOAD_TIMEOUT)
        sent = 5
        for _ in range(sent):
            self.assertEqual(fetch(gw.port, "GET", "/errors").status, 503)
        st = self.wait_page(b, lambda s: s["routes"]["errors"]["err"] == "100.0%",
                            "a 5xx share of 100.0% on route errors")
        self.assertGreater(float(st["routes"]["errors"]["rps"]), 0.0, st["routes"]["errors"])
        self.wait_page(b, lambda s: str(sent) in s["routes"]["errors"]["cells"][6:7],
                       "requests = %d on route errors" % sent)

    def test_stale_when_the_gateway_stops_answering(self):
        """When /status stops answering (the gateway exits), the page keeps
        the last data but marks it stale with the reason within seconds."""
        gw = self.gateway()
        b = self.open_page(gw.admin_port)
        self.wait_loaded(b)
        gw.stop()
        st = self.wait_page(b, lambda s: s["freshness"]["state"] == "stale",
                            "the stale marker after the gateway stopped")
        self.assertIn("STALE", st["freshness"]["text"])
        self.assertIn("checkout", st["routes"], "the last data should stay on the page")

    def test_page_itself_needs_no_token(self):
        """With a token configured, GET / (the page: static, no data in it)
        answers 200 without Authorization, since a browser opening the page
        sends none; /status still answers 401 without the token. Without
        this, an operator's browser cannot open the page at all and the
        page's #token=... and token input are of no use."""
        gw = self.gateway(token=TOKEN)
        status, _, body = gw.admin.get("/status", token="")
        self.assertEqual(status, 401, "GET /status without the token: %r" % body[:200])
        status, headers, body = gw.admin.get("/", token="")
        self.assertEqual(status, 200, "GET / without the token (a browser opening the page"
                         " sends none): %d %r" % (status, body[:200]))
        self.assertIn("text/html", headers.get("content-type", ""))

    def test_token_from_input_or_fragment(self):
        """With a token configured and the page opened without one, /status
        answers the page's fetches 401: the page says so and shows the
        token input; a wrong typed token keeps it unauthorized with a
        message that the token was refused; the right one loads the data;
        a fresh page opened as /#token=TOKEN loads at once. (The page's own
        request carries the token, as a proxy in front of the admin API
        could add it, so that this holds whether or not GET / needs it:
        test_page_itself_needs_no_token covers that.)"""
        gw = self.gateway(token=TOKEN)
        doc_auth = {"Authorization": "Bearer " + TOKEN}
        b = self.open_page(gw.admin_port, document_headers=doc_auth)
        st = self.wait_page(b, lambda s: s["freshness"]["state"] == "unauthorized",
                            "the unauthorized state", LOAD_TIMEOUT)
        self.assertTrue(st["auth_visible"], "no token input on 401")
        self.assertIn("Unauthorized", st["auth_message"])
        self.assertNotEqual(st["loaded"], "1")

        submit = ("document.getElementById('token-input').value = %s;"
                  " document.querySelector('#auth-form button').click();")
        b.eval(submit % json.dumps("wrong-token"))
        self.wait_page(b, lambda s: "refused" in (s["auth_message"] or ""),
                       "the message that the typed token was refused")
        b.eval(submit % json.dumps(TOKEN))
        st = self.wait_page(b, lambda s: s["loaded"] == "1" and s["freshness"]["state"] == "ok",
                            "the data after the right token was typed")
        self.assertFalse(st["auth_visible"])
        self.assertIn("checkout", st["routes"])

        fresh = self.open_page(gw.admin_port, "#token=" + TOKEN, document_headers=doc_auth)
        st = self.wait_loaded(fresh)
        self.assertIn("checkout", st["routes"])
        self.assertNoMarkupRan(fresh, st)

    def test_markup_in_a_route_name_and_the_config_path_renders_as_text(self):
        """A route named "<img src=x onerror=alert(1)>", in a config file
        whose name starts with the same, is shown as that text: the DOM has
        no <img> element, its HTML holds the escaped &lt;img..., and no
        script from the data ran."""
        port, admin_port = free_port(), free_port()
        config, port, admin_port = self.admin_config({"backend": upstream(self.stub)},
                                                     [route("checkout", "backend",
                                                            path_prefix="/checkout"),
                                                      route(EVIL, "backend")],
                                                     port, admin_port, access_log="off")
        gw = AdminGateway(config, port, admin_port, name=EVIL)
        self.addCleanup(self._stop_gateway, gw, True)
        gw.start()
        self.assertIn(EVIL, self.status(gw)["config"]["file"])
        self.assertIn(EVIL, [r["name"] for r in self.status(gw)["routes"]])

        b = self.open_page(admin_port)
        st = self.wait_loaded(b)
        self.assertIn(EVIL, st["config_file"])
        self.assertIn(EVIL, st["routes"])
        html = b.eval("document.documentElement.outerHTML")
        self.assertIn(EVIL_ESCAPED, html)
        self.assertNotIn(EVIL, html)
        self.assertNoMarkupRan(b, st)

    def test_markup_in_every_status_string_renders_as_text(self):
        """The gateway's own page, served beside a fake /status whose every
        string (route, priority, upstream, breaker state and forced marker,
        server address, flag name/value/source, overload reason/source,
        config fields, version) is "<img src=x onerror=alert(1)>", shows
        each as that text: the route row is keyed by the literal name, no
        <img> element exists, no script from the data ran."""
        gw = self.gateway()
        status, _, page = gw.admin.get("/", token="")
        self.assertEqual(status, 200)
        fake = FakeAdmin(page, hostile_status())
        self.addCleanup(fake.close)

        b = self.open_page(fake.port)
        st = self.wait_loaded(b)
        self.assertEqual(list(st["routes"]), [EVIL])
        row = st["routes"][EVIL]
        self.assertEqual(row["name_cell"], EVIL)
        self.assertEqual(row["breaker"], EVIL)
        self.assertEqual(row["cells"][1:3], [EVIL, EVIL])
        self.assertEqual(list(st["servers"]), [EVIL])
        self.assertEqual(st["flags"], {EVIL: {"value": EVIL, "source": EVIL}})
        self.assertIn(EVIL, st["overload"]["reason"])
        self.assertEqual(st["config_file"], EVIL)
        self.assertEqual(st["script_elements"], 1, "a <script> element came from the data")
        html = b.eval("document.documentElement.outerHTML")
        self.assertIn(EVIL_ESCAPED, html)
        self.assertNotIn(EVIL, html)
        self.assertNoMarkupRan(b, st)


if __name__ == "__main__":
    unittest.main()
