"""Helpers for the admin API tests (SPEC sections 7, 9 and 10).

- AdminClient(port, token=None): one request per TCP connection, with the
  strict response reader of gwtest.Conn:
      .get(path) / .post(path) / .request(method, path) -> (status, headers, body)
      .json(path) -> the parsed JSON of a GET that must answer 200
  headers is a dict with lower-case names (repeated headers joined by ", ").
- admin_section(port, token_env=None, listen=None): the `admin:` config value
- AdminGateway: a gwtest.Gateway that can be given extra environment
  variables and waits until its admin API answers GET /healthz
- AdminTestCase: GatewayTestCase plus start_admin_gateway(), status and
  metrics helpers, reload_with() (rewrite the config file, POST /reload)
- parse_metrics(text): the Prometheus text format, parsed strictly enough to
  catch a malformed exposition (see Metrics)

Every wait is a poll with a deadline.
"""

import json
import os
import re

from gwtest import (Conn, Gateway, GatewayStartError, GatewayTestCase, HttpError, free_port,
                    make_config, poll_until, to_yaml)

ADMIN_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# the client

class AdminClient:
    """A client of one gateway's admin API (see module docstring)."""

    def __init__(self, port, token=None, host="127.0.0.1", timeout=ADMIN_TIMEOUT):
        self.port = port
        self.token = token
        self.host = host
        self.timeout = timeout

    def request(self, method, path, headers=(), body=None, timeout=None, token=None):
        """One request on a new connection: (status, headers dict, body bytes).
        token overrides the client's token for this request ("" sends none)."""
        timeout = self.timeout if timeout is None else timeout
        tok = self.token if token is None else token
        hdrs = list(headers)
        if tok:
            hdrs.append(("Authorization", "Bearer " + tok))
        if method in ("POST", "PUT") and body is None:
            body = b""
        with Conn(self.port, host=self.host, timeout=timeout) as c:
            c.request(method, path, hdrs, body, host="%s:%d" % (self.host, self.port))
            resp = c.read_response(timeout, head=(method == "HEAD"))
        return resp.status, headers_dict(resp.headers), resp.body

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def json(self, path, **kw):
        """GET path, which must answer 200 with a JSON body; the parsed body."""
        status, headers, body = self.get(path, **kw)
        if status != 200:
            raise AssertionError("GET %s on the admin API: %d %r" % (path, status, body[:500]))
        return parse_json(body, "GET " + path)

    def post_json(self, path, **kw):
        """POST path: (status, parsed JSON body)."""
        status, headers, body = self.post(path, **kw)
        return status, parse_json(body, "POST %s (status %d)" % (path, status))


def headers_dict(pairs):
    out = {}
    for name, value in pairs:
        low = name.lower()
        out[low] = value if low not in out else out[low] + ", " + value
    return out


def parse_json(body, what):
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as e:
        raise AssertionError("%s: body is not JSON (%s): %r" % (what, e, body[:500]))


def media_type(headers):
    """The Content-Type's media type, lower case, without parameters."""
    return (headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def admin_section(port, token_env=None, listen=None):
    """The value of the config's `admin:` key."""
    sec = {"listen": listen or "127.0.0.1:%d" % port}
    if token_env:
        sec["token_env"] = token_env
    return sec


# ---------------------------------------------------------------------------
# the gateway with an admin API

class AdminGateway(Gateway):
    """A Gateway with an admin API on admin_port; env: extra environment
    variables for the process (a value None removes the variable)."""

    def __init__(self, config, port, admin_port, token=None, env=None, name="gateway"):
        super().__init__(config, port, name)
        self.admin_port = admin_port
        self.admin = AdminClient(admin_port, token)
        self.env = dict(env or {})

    def start(self, timeout=5.0):
        saved = {k: os.environ.get(k) for k in self.env}
        try:
            for k, v in self.env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            super().start(timeout)  # Popen copies the environment at once
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.wait_admin(timeout)
        return self

    def wait_admin(self, timeout):
        """Polls until GET /healthz on the admin port answers 200."""
        last = []

        def ok():
            if not self.alive():
                raise GatewayStartError("gateway exited while waiting for its admin API; "
                                        "stderr:\n%s" % self.stderr_text())
            try:
                status, _, body = self.admin.get("/healthz", timeout=1.0, token="")
            except (OSError, HttpError) as e:
                last[:] = [repr(e)]
                return False
            last[:] = ["%d %r" % (status, body[:200])]
            return status == 200
        if not poll_until(ok, timeout, interval=0.02):
            raise GatewayStartError("the admin API on port %d did not answer GET /healthz 200"
                                    " within %.1fs (last: %s); stderr:\n%s"
                                    % (self.admin_port, timeout, last and last[0],
                                       self.stderr_text()))

    def rewrite_config(self, config):
        """Replaces the config file (atomically) with config (dict or text)."""
        text = config if isinstance(config, str) else to_yaml(config)
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text

    # ----- /proc ------------------------------------------------------
    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def vm_rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/%d/status" % self.pid)


class AdminTestCase(GatewayTestCase):
    """GatewayTestCase with helpers for gateways that have an admin API."""

    def admin_config(self, upstreams, routes, port=None, admin_port=None, token_env=None,
                     admin_listen=None, **conf):
        """(config dict, port, admin_port)."""
        port = port or free_port()
        while not admin_port or admin_port == port:  # two free ports, not one twice
            admin_port = free_port()
        conf = make_config(port, upstreams, routes, **conf)
        conf["admin"] = admin_section(admin_port, token_env, admin_listen)
        return conf, port, admin_port

    def start_admin_gateway(self, upstreams, routes, port=None, admin_port=None, token=None,
                            token_env=None, env=None, check_alive=True, **conf):
        """Starts the gateway with an `admin:` section; returns the
        AdminGateway (gw.admin is its AdminClient, with the token if given).
        token: a token to put in the environment variable token_env
        (default name GW_TEST_ADMIN_TOKEN when only token is given)."""
        if token and not token_env:
            token_env = "GW_TEST_ADMIN_TOKEN"
        environment = dict(env or {})
        if token_env and token_env not in environment:
            environment[token_env] = token
        config, port, admin_port = self.admin_config(upstreams, routes, port, admin_port,
                                                     token_env, **conf)
        gw = AdminGateway(config, port, admin_port, token=token, env=environment)
        gw.config_dict = config
        self.addCleanup(self._stop_gateway, gw, check_alive)
        gw.start()
        return gw

    # ----- status -----------------------------------------------------
    def status(self, gw):
        return gw.admin.json("/status")

    def find(self, items, name, what="entry"):
        for it in items:
            if it.get("name") == name:
                return it
        self.fail("no %s named %r in %r" % (what, name, [i.get("name") for i in items]))

    def route_status(self, gw, name):
        return self.find(self.status(gw)["routes"], name, "route")

    def upstream_status(self, gw, name):
        return self.find(self.status(gw)["upstreams"], name, "upstream")

    def server_status(self, gw, upstream_name, address):
        servers = self.upstream_status(gw, upstream_name)["servers"]
        for s in servers:
            if s.get("address") == address:
                return s
        self.fail("no server %s in upstream %s: %r" % (address, upstream_name, servers))

    def wait_status(self, gw, pred, timeout=3.0, what="condition"):
        """Polls /status until pred(status) is true; returns that status."""
        seen = []

        def check():
            st = self.status(gw)
            seen[:] = [st]
            return st if pred(st) else None
        st = poll_until(check, timeout, interval=0.02)
        if not st:
            self.fail("/status never showed %s within %.1fs; last /status:\n%s"
                      % (what, timeout, json.dumps(seen[0] if seen else None, indent=1)[:4000]))
        return st

    # ----- metrics ----------------------------------------------------
    def metrics(self, gw):
        status, headers, body = gw.admin.get("/metrics")
        self.assertEqual(status, 200, "GET /metrics: %r" % body[:300])
        return parse_metrics(body.decode("utf-8"))

    def metrics_counting(self, gw, n_requests, timeout=3.0):
        """Scrapes /metrics until gateway_requests_total sums to n_requests:
        a request is counted when its transaction ends, which is after the
        client has read the last byte of the answer. Returns that scrape."""
        seen = []

        def check():
            m = self.metrics(gw)
            seen[:] = [m]
            return m if m.total("gateway_requests_total") >= n_requests else None
        m = poll_until(check, timeout, interval=0.02)
        if not m:
            self.fail("gateway_requests_total never reached %d within %.1fs (last: %r)"
                      % (n_requests, timeout,
                         seen[0].total("gateway_requests_total") if seen else None))
        return m

    # ----- reload -----------------------------------------------------
    def reload_with(self, gw, config, expect=200):
        """Rewrites the config file, POSTs /reload, checks the status;
        returns the parsed JSON answer."""
        gw.rewrite_config(config)
        status, body = gw.admin.post_json("/reload")
        if status != expect:
            self.fail("POST /reload answered %d, expected %d: %r; stderr:\n%s"
                      % (status, expect, body, gw.stderr_text()))
        return body


# ---------------------------------------------------------------------------
# Prometheus text format

class MetricsFormatError(AssertionError):
    pass


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN")


def _parse_labels(s, i, line):
    """Parses {a="b",...} from s[i] == "{"; returns (dict, index after })."""
    labels = {}
    i += 1
    while True:
        while i < len(s) and s[i] == " ":
            i += 1
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = _LABEL_NAME.match(s, i)
        if not m:
            raise MetricsFormatError("bad label name in %r" % line)
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise MetricsFormatError("label %s without =\"value\" in %r" % (name, line))
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise MetricsFormatError("unterminated label value in %r" % line)
            ch = s[i]
            if ch == "\\":
                nxt = s[i + 1:i + 2]
                if nxt == "n":
                    val.append("\n")
                elif nxt in ("\\", '"'):
                    val.append(nxt)
                else:
                    raise MetricsFormatError("bad escape \\%s in %r" % (nxt, line))
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                val.append(ch)
                i += 1
        if name in labels:
            raise MetricsFormatError("label %s twice in %r" % (name, line))
        labels[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] == "}":
            return labels, i + 1
        else:
            raise MetricsFormatError("expected , or } after label %s in %r" % (name, line))


def _parse_value(v, line):
    if not _FLOAT.fullmatch(v):
        raise MetricsFormatError("bad sample value %r in %r" % (v, line))
    return float(v)


class Metrics:
    """A parsed exposition: help[name], type[name], samples (name, labels,
    value) in order; families group sample names under their metric
    (name_bucket/_sum/_count under a histogram's name)."""

    def __init__(self, text):
        self.text = text
        self.help = {}
        self.type = {}
        self.samples = []
        for line in text.split("\n"):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    rest = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "HELP":
                        self.help[name] = rest
                    else:
                        self.type[name] = rest.strip()
                continue
            m = _METRIC_NAME.match(line)
            if not m:
                raise MetricsFormatError("bad sample line %r" % line)
            name = m.group(0)
            i = m.end()
            labels = {}
            if i < len(line) and line[i] == "{":
                labels, i = _parse_labels(line, i, line)
            rest = line[i:].split()
            if len(rest) not in (1, 2):
                raise MetricsFormatError("bad sample line %r" % line)
            self.samples.append((name, labels, _parse_value(rest[0], line)))

    def family_of(self, sample_name):
        if sample_name in self.type:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count"):
            if sample_name.endswith(suffix):
                base = sample_name[:-len(suffix)]
                if self.type.get(base) in ("histogram", "summary"):
                    return base
        return sample_name

    def select(self, name, **labels):
        """Samples named name whose labels include the given ones."""
        return [(n, l, v) for (n, l, v) in self.samples
                if n == name and all(l.get(k) == str(val) for k, val in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample with exactly these labels (le
        excluded from the comparison only if not given), or None."""
        found = [v for (n, l, v) in self.samples if n == name and l == {k: str(x) for k, x in labels.items()}]
        if len(found) > 1:
            raise AssertionError("%d samples %s%r" % (len(found), name, labels))
        return found[0] if found else None

    def total(self, name, **labels):
        """Sum of the samples named name whose labels include the given ones."""
        return sum(v for (_, _, v) in self.select(name, **labels))

    def keyed(self):
        """{(name, sorted label items): value}."""
        return {(n, tuple(sorted(l.items()))): v for (n, l, v) in self.samples}


def parse_metrics(text):
    return Metrics(text)
