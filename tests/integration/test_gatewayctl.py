"""gatewayctl, the operator CLI: every command against a real redis-server.

Each test checks what landed in Redis (key, value, TTL) with a small RESP
client of its own, and that the change was announced: it subscribes to
PREFIXevents before running the command. Each test uses its own key prefix,
so tests never see each other's keys, nor those of a gateway test sharing the
same Redis.

Redis: the one tests/run-tests.sh starts (GATEWAY_TEST_REDIS=127.0.0.1:PORT),
or, when that is unset, a redis-server this module starts on a free loopback
port and stops at the end. The binary is the gatewayctl built beside the
gateway under test (gwtest.built_program).
"""

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import gwtest
from gwtest import BlackHole, free_port, make_config, poll_until, route, to_yaml, upstream, write_file

CTL_TIMEOUT = 10  # seconds: a bound for every gatewayctl run, never reached when it works


# ---------------------------------------------------------------------------
# Redis: a server, and a RESP client over a raw socket

class RespError(Exception):
    pass


class Resp:
    """One connection to Redis: TCP "IP:PORT" or a unix socket path."""

    def __init__(self, address, timeout=3.0):
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        else:
            host, port = address.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def command(self, *args):
        self.send(*args)
        return self.read()

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RespError("bad RESP line %r" % line)


class Subscriber:
    """SUBSCRIBE channel on a connection of its own."""

    def __init__(self, address, channel):
        self.conn = Resp(address)
        ack = self.conn.command("SUBSCRIBE", channel)
        assert ack[0] == "subscribe", ack

    def next_message(self, timeout=3.0):
        """The next message's payload, or None when none arrives in time."""
        self.conn.sock.settimeout(timeout)
        try:
            kind, _channel, payload = self.conn.read()
        except socket.timeout:
            return None
        assert kind == "message", kind
        return payload

    def close(self):
        self.conn.close()


class RedisServer:
    """A redis-server of our own on a free loopback port (and optionally a
    unix socket and a password), stopped by stop()."""

    def __init__(self, password=None, unix_socket=False):
        self.dir = tempfile.mkdtemp(prefix="gwctl-redis-", dir=gwtest.tmp_dir())
        self.port = free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.unix_path = os.path.join(self.dir, "redis.sock") if unix_socket else None
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if password:
            args += ["--requirepass", password]
        if self.unix_path:
            args += ["--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        self.log = open(os.path.join(self.dir, "redis.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if not poll_until(self._up, 5.0):
            self.stop()
            raise AssertionError("redis-server did not start on port %d" % self.port)

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited with %s" % self.proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_OWN_REDIS = None


def shared_redis_address():
    """The suite's Redis, or one started for this module."""
    global _OWN_REDIS
    if os.environ.get("GATEWAY_TEST_REDIS"):
        return os.environ["GATEWAY_TEST_REDIS"]
    if _OWN_REDIS is None:
        _OWN_REDIS = RedisServer()
    return _OWN_REDIS.address


def tearDownModule():
    global _OWN_REDIS
    if _OWN_REDIS is not None:
        _OWN_REDIS.stop()
        _OWN_REDIS = None


# ---------------------------------------------------------------------------
# configs and runs

FLAGS = {"recommendations": "on", "checkout_v2": "10%", "reviews": "off"}
PROFILES = {"peak": {"flags": {"recommendations": "off", "reviews": "off"}, "shed_level": 1}}
ROUTES = ("checkout", "catalog")


def ctl_config(redis, flags=FLAGS, profiles=PROFILES, routes=ROUTES, **extra):
    """A complete gateway config (the gateway would run it) with a redis: section."""
    routes = [route(name, "u", path_prefix="/api/" + name.replace(" ", "-")) for name in routes]
    conf = make_config(free_port(), {"u": upstream("127.0.0.1:9")}, routes, redis=redis)
    if flags is not None:
        conf["flags"] = dict(flags)
    if profiles is not None:
        conf["profiles"] = profiles
    conf.update(extra)
    return write_file(to_yaml(conf), "gatewayctl")


class Run:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds

    def __repr__(self):
        return "<gatewayctl exit %d after %.2fs; stdout=%r stderr=%r>" % (
            self.rc, self.seconds, self.out[-1500:], self.err[-1500:])


def run_ctl(*args, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([gwtest.built_program("gatewayctl")] + list(args), capture_output=True,
                          text=True, timeout=CTL_TIMEOUT, stdin=subprocess.DEVNULL, env=full_env)
    return Run(proc, time.monotonic() - started)


class CtlTestCase(unittest.TestCase):
    maxDiff = 4000

    def assertUsageError(self, r, *words):
        """Exit 2, nothing on stdout, one line on stderr with a hint to --help."""
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(r.out, "", r)
        lines = r.err.splitlines()
        self.assertEqual(len(lines), 1, r)
        self.assertTrue(lines[0].startswith("gatewayctl: "), r)
        self.assertIn("--help", lines[0], r)
        for w in words:
            self.assertIn(w, lines[0], r)

    def assertFailure(self, r, pattern):
        """Exit 1, one line on stderr matching pattern, no traceback or sanitizer report."""
        self.assertEqual(r.rc, 1, r)
        lines = r.err.splitlines()
        self.assertEqual(len(lines), 1, r)
        self.assertRegex(lines[0], pattern, r)

    def assertOk(self, r):
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.err, "", r)


class RedisTestCase(CtlTestCase):
    """A Redis connection, a per-test key prefix, a config using both, and a
    subscriber on PREFIXevents opened before anything runs."""

    def setUp(self):
        self.address = shared_redis_address()
        self.prefix = "gwctl-%s-%d:" % (self._testMethodName, os.getpid())
        self.redis = Resp(self.address)
        self.addCleanup(self.redis.close)
        self.addCleanup(self._delete_keys)
        self.conf = ctl_config({"address": self.address, "prefix": self.prefix})
        self.events = Subscriber(self.address, self.prefix + "events")
        self.addCleanup(self.events.close)

    def _delete_keys(self):
        for key in self.redis.command("KEYS", self.prefix + "*"):
            self.redis.command("DEL", key)

    def ctl(self, *args, **kw):
        return run_ctl("-c", self.conf, *args, **kw)

    def key(self, suffix):
        return self.prefix + suffix

    def assertAnnounced(self, payload):
        self.assertEqual(self.events.next_message(), payload,
                         "the message published on %sevents" % self.prefix)

    def assertKeyless(self):
        self.assertEqual(self.redis.command("KEYS", self.prefix + "*"), [],
                         "keys written under %s" % self.prefix)

    def assertTtlAbout(self, key, ms):
        pttl = self.redis.command("PTTL", key)
        self.assertTrue(ms - 1500 < pttl <= ms, "PTTL %s = %s, expected about %d" % (key, pttl, ms))


# ---------------------------------------------------------------------------
# the command line

class CommandLineTest(CtlTestCase):

    def test_help_prints_the_full_usage_and_exits_0(self):
        for opt in ("--help", "-h"):
            r = run_ctl(opt)
            self.assertOk(r)
            for text in ("usage: gatewayctl [-c FILE] COMMAND [ARGS] [--for DURATION]",
                         "flag list", "flag get NAME", "flag set NAME on|off|N%",
                         "flag unset NAME", "shed auto|0|1|2", "breaker ROUTE open|closed|auto",
                         "profile NAME|none", "  ops ", "  status ", "  reload ",
                         "--for DURATION", "--admin ADDR", "-c, --config FILE", "Exit status"):
                self.assertIn(text, r.out, "%s output" % opt)

    def test_no_command_is_a_usage_error(self):
        self.assertUsageError(run_ctl(), "missing command")

    def test_unknown_command_exits_2_with_a_hint(self):
        self.assertUsageError(run_ctl("frobnicate"), "unknown command 'frobnicate'")
        self.assertUsageError(run_ctl("flag", "toggle", "x"), "unknown command 'flag toggle'")
        self.assertUsageError(run_ctl("flag"), "needs a subcommand")

    def test_wrong_arguments_and_options_exit_2(self):
        cases = [
            (["breaker", "checkout"], "usage: gatewayctl breaker ROUTE"),
            (["shed"], "missing arguments"),
            (["shed", "1", "2"], "too many arguments"),
            (["shed", "1", "--for"], "--for needs a value"),
            (["shed", "1", "--bogus"], "unknown option '--bogus'"),
            (["status", "--for", "5m"], "--for applies to shed, breaker and profile"),
            (["flag", "set", "reviews", "on", "--for", "5m"], "--for applies to"),
            (["shed", "1", "--for", "5m", "--for", "1m"], "--for given twice"),
        ]
        for argv, text in cases:
            with self.subTest(argv=argv):
                self.assertUsageError(run_ctl(*argv), text)

    def test_missing_config_file_exits_1_with_one_line(self):
        missing = os.path.join(gwtest.tmp_dir(), "no-such-file.yaml")
        r = run_ctl("-c", missing, "shed", "1")
        self.assertFailure(r, r"^gatewayctl: .*no-such-file\.yaml.*(No such file|cannot)")

    def test_invalid_config_exits_1_with_the_gateways_message(self):
        path = write_file(to_yaml(make_config(free_port(), {"u": upstream("127.0.0.1:9")},
                                              [route("r", "u")],
                                              redis={"address": "127.0.0.1:6379",
                                                     "connect_timeout": "2h"})))
        r = run_ctl("-c", path, "shed", "1")
        self.assertEqual(r.rc, 1, r)
        self.assertRegex(r.err, r"gatewayctl: .*:\d+:\d+: .*connect_timeout", r)

    def test_config_without_redis_section_exits_1(self):
        path = write_file(to_yaml(make_config(free_port(), {"u": upstream("127.0.0.1:9")},
                                              [route("r", "u")])))
        r = run_ctl("-c", path, "shed", "1")
        self.assertFailure(r, r"^gatewayctl: .* has no redis: section")


# ---------------------------------------------------------------------------
# flags

class FlagTest(RedisTestCase):

    def test_flag_set_on_writes_the_hash_and_announces_it(self):
        r = self.ctl("flag", "set", "reviews", "on")
        self.assertOk(r)
        self.assertEqual(self.redis.command("HGET", self.key("flags"), "reviews"), "on")
        self.assertEqual(self.redis.command("TTL", self.key("flags")), -1)
        self.assertAnnounced("flags:reviews=on")
        self.assertIn("announced on %sevents to 1 subscriber" % self.prefix, r.out)

    def test_flag_set_percentage_is_written_in_canonical_form(self):
        for given, stored in (("25%", "25%"), ("007%", "7%"), ("0%", "0%"), ("100%", "100%")):
            with self.subTest(value=given):
                self.assertOk(self.ctl("flag", "set", "checkout_v2", given))
                self.assertEqual(self.redis.command("HGET", self.key("flags"), "checkout_v2"),
                                 stored)
                self.assertAnnounced("flags:checkout_v2=" + stored)

    def test_flag_set_bad_values_exit_2_and_write_nothing(self):
        for value in ("yes", "ON", "101%", "-1%", "5", "5.5%", "%", "1000%", "", "on "):
            with self.subTest(value=value):
                self.assertUsageError(self.ctl("flag", "set", "reviews", value),
                                      "invalid flag value")
        self.assertUsageError(self.ctl("flag", "set", "no_such_flag", "on"),
                              "unknown flag 'no_such_flag'")
        self.assertUsageError(self.ctl("flag", "set", "bad name", "on"), "invalid flag name")
        self.assertKeyless()
        # nothing was announced either: the first message is the next valid write's
        self.assertOk(self.ctl("flag", "set", "reviews", "off"))
        self.assertAnnounced("flags:reviews=off")

    def test_flag_unset_deletes_the_field_back_to_the_default(self):
        self.redis.command("HSET", self.key("flags"), "reviews", "on", "recommendations", "off")
        r = self.ctl("flag", "unset", "reviews")
        self.assertOk(r)
        self.assertEqual(self.redis.command("HEXISTS", self.key("flags"), "reviews"), 0)
        self.assertEqual(self.redis.command("HGET", self.key("flags"), "recommendations"), "off")
        self.assertAnnounced("flags:reviews=default")
        self.assertIn("in force now: off (the file's default)", r.out)

    def test_flag_list_shows_redis_values_and_defaults_in_aligned_columns(self):
        self.redis.command("HSET", self.key("flags"), "checkout_v2", "50%", "legacy_flag", "on")
        r = self.ctl("flag", "list")
        self.assertOk(r)
        lines = r.out.splitlines()
        self.assertRegex(lines[0], r"^NAME +VALUE +SOURCE$")
        rows = [line.split(None, 2) for line in lines[1:]]
        self.assertEqual(rows, [
            ["recommendations", "on", "default"],
            ["checkout_v2", "50%", "redis"],
            ["reviews", "off", "default"],
            ["legacy_flag", "on", "redis, not in the file"],
        ])
        value_col, source_col = lines[0].index("VALUE"), lines[0].index("SOURCE")
        for line in lines[1:]:
            self.assertNotEqual(line[value_col], " ", "VALUE column misaligned: %r" % r.out)
            self.assertEqual(line[value_col - 1], " ", "VALUE column misaligned: %r" % r.out)
            self.assertNotEqual(line[source_col], " ", "SOURCE column misaligned: %r" % r.out)

    def test_flag_list_and_get_show_the_profile_in_force(self):
        self.redis.command("HSET", self.key("flags"), "recommendations", "on")
        self.redis.command("SET", self.key("ops:profile"), "peak")
        r = self.ctl("flag", "get", "recommendations")
        self.assertOk(r)
        self.assertEqual(r.out.splitlines()[1].split(None, 2),
                         ["recommendations", "off", "profile peak (redis: on)"])
        r = self.ctl("flag", "get", "checkout_v2")
        self.assertOk(r)
        self.assertEqual(r.out.splitlines()[1].split(None, 2), ["checkout_v2", "10%", "default"])

    def test_flag_get_unknown_flag_exits_2(self):
        self.assertUsageError(self.ctl("flag", "get", "nope"), "unknown flag 'nope'")


# ---------------------------------------------------------------------------
# ops toggles

class OpsTest(RedisTestCase):

    def test_shed_for_2s_sets_a_ttl_and_the_key_expires_by_itself(self):
        r = self.ctl("shed", "1", "--for", "2s")
        self.assertOk(r)
        key = self.key("ops:shed_level")
        self.assertEqual(self.redis.command("GET", key), "1")
        self.assertTtlAbout(key, 2000)
        self.assertAnnounced("ops:shed_level=1")
        self.assertIn("expires in 2s", r.out)
        self.assertTrue(poll_until(lambda: self.redis.command("EXISTS", key) == 0, 4.0),
                        "%s still exists 4s after shed 1 --for 2s" % key)

    def test_shed_without_for_has_no_ttl_and_auto_deletes_the_key(self):
        key = self.key("ops:shed_level")
        for level in ("2", "0"):
            self.assertOk(self.ctl("shed", level))
            self.assertEqual(self.redis.command("GET", key), level)
            self.assertEqual(self.redis.command("PTTL", key), -1)
            self.assertAnnounced("ops:shed_level=" + level)
        r = self.ctl("shed", "auto")
        self.assertOk(r)
        self.assertEqual(self.redis.command("EXISTS", key), 0)
        self.assertAnnounced("ops:shed_level=auto")

    def test_shed_bad_levels_and_durations_exit_2_and_write_nothing(self):
        for argv, text in ((["shed", "3"], "invalid shed level '3'"),
                           (["shed", "-1"], "invalid shed level '-1'"),
                           (["shed", "high"], "invalid shed level"),
                           (["shed", "1", "--for", "5parsecs"], "--for: expected a duration"),
                           (["shed", "1", "--for", "1.5s"], "--for: expected a duration"),
                           (["shed", "1", "--for", "0"], "more than 0"),
                           (["shed", "auto", "--for", "5m"], "--for does not apply to 'auto'")):
            with self.subTest(argv=argv):
                self.assertUsageError(self.ctl(*argv), text)
        self.assertKeyless()
        self.assertOk(self.ctl("shed", "0", "--for=250ms"))
        self.assertAnnounced("ops:shed_level=0")

    def test_breaker_open_for_5m_then_closed_then_auto(self):
        key = self.key("ops:breaker:checkout")
        self.assertOk(self.ctl("breaker", "checkout", "open", "--for", "5m"))
        self.assertEqual(self.redis.command("GET", key), "open")
        self.assertTtlAbout(key, 300000)
        self.assertAnnounced("ops:breaker:checkout=open")
        self.assertOk(self.ctl("breaker", "checkout", "closed"))
        self.assertEqual(self.redis.command("GET", key), "closed")
        self.assertEqual(self.redis.command("PTTL", key), -1)
        self.assertAnnounced("ops:breaker:checkout=closed")
        self.assertOk(self.ctl("breaker", "checkout", "auto"))
        self.assertEqual(self.redis.command("EXISTS", key), 0)
        self.assertAnnounced("ops:breaker:checkout=auto")

    def test_breaker_unknown_route_or_state_exits_2_and_writes_nothing(self):
        self.assertUsageError(self.ctl("breaker", "nope", "open"), "unknown route 'nope'")
        self.assertUsageError(self.ctl("breaker", "checkout", "half-open"),
                              "invalid breaker state 'half-open'")
        self.assertUsageError(self.ctl("breaker", "checkout", "auto", "--for", "1m"),
                              "--for does not apply to 'auto'")
        self.assertKeyless()

    def test_profile_peak_for_2h_then_none(self):
        key = self.key("ops:profile")
        r = self.ctl("profile", "peak", "--for", "2h")
        self.assertOk(r)
        self.assertEqual(self.redis.command("GET", key), "peak")
        self.assertTtlAbout(key, 7200000)
        self.assertAnnounced("ops:profile=peak")
        self.assertOk(self.ctl("profile", "none"))
        self.assertEqual(self.redis.command("EXISTS", key), 0)
        self.assertAnnounced("ops:profile=none")

    def test_profile_unknown_exits_2_and_writes_nothing(self):
        self.assertUsageError(self.ctl("profile", "black_friday"), "unknown profile 'black_friday'")
        self.assertUsageError(self.ctl("profile", "none", "--for", "1h"), "--for does not apply")
        self.assertKeyless()

    def test_profile_any_name_when_the_file_has_no_profiles(self):
        self.conf = ctl_config({"address": self.address, "prefix": self.prefix}, profiles=None)
        self.assertOk(self.ctl("profile", "black_friday", "--for", "30m"))
        self.assertEqual(self.redis.command("GET", self.key("ops:profile")), "black_friday")
        self.assertAnnounced("ops:profile=black_friday")

    def test_default_prefix_is_gw(self):
        key = "gw:ops:breaker:catalog-%d" % os.getpid()
        route_name = key.split(":", 3)[3]
        self.addCleanup(self.redis.command, "DEL", key)
        events = Subscriber(self.address, "gw:events")
        self.addCleanup(events.close)
        self.conf = ctl_config({"address": self.address}, routes=(route_name,))
        self.assertOk(self.ctl("breaker", route_name, "open", "--for", "1m"))
        self.assertEqual(self.redis.command("GET", key), "open")
        self.assertEqual(events.next_message(), "ops:breaker:%s=open" % route_name)

    def test_breaker_of_a_route_named_with_spaces(self):
        """Route names follow the loader's rule (spaces inside allowed), not
        the flag-name rule: such a route can be forced too."""
        self.conf = ctl_config({"address": self.address, "prefix": self.prefix},
                               routes=("gift cards",))
        self.assertOk(self.ctl("breaker", "gift cards", "open"))
        self.assertEqual(self.redis.command("GET", self.key("ops:breaker:gift cards")), "open")
        self.assertAnnounced("ops:breaker:gift cards=open")
        self.assertUsageError(self.ctl("breaker", "a/b", "open"), "invalid route name 'a/b'")

    def test_ops_lists_what_is_forced_with_the_time_left(self):
        self.redis.command("SET", self.key("ops:profile"), "peak", "EX", "7200")
        self.redis.command("SET", self.key("ops:breaker:checkout"), "open")
        r = self.ctl("ops")
        self.assertOk(r)
        lines = r.out.splitlines()
        self.assertRegex(lines[0], r"^TOGGLE +VALUE +EXPIRES IN$")
        self.assertIn("", lines, r.out)
        table, summary = lines[1:lines.index("")], lines[lines.index("") + 1:]
        self.assertEqual(summary, ["profile peak sets: recommendations=off reviews=off shed_level=1"
                                   " (unless shed_level above is 0, 1 or 2)"])
        rows = {}
        for line in table:
            m = re.fullmatch(r"(profile|shed_level|breaker \S+) +(\S+) +(\S+)", line)
            self.assertTrue(m, "unexpected line %r in %r" % (line, r.out))
            rows[m.group(1)] = [m.group(2), m.group(3)]
        self.assertEqual(len(rows), 4, r.out)
        self.assertRegex(rows["profile"][1], r"^(2h|1h59m\d+s)$", r.out)
        self.assertEqual(rows["profile"][0], "peak")
        self.assertEqual(rows["shed_level"], ["auto", "-"])
        self.assertEqual(rows["breaker checkout"], ["open", "never"])
        self.assertEqual(rows["breaker catalog"], ["auto", "-"])


# ---------------------------------------------------------------------------
# Redis unreachable, slow, or protected

class RedisFailureTest(CtlTestCase):

    def conf_for(self, address, **redis):
        redis = dict({"address": address, "prefix": "gwctl-fail:"}, **redis)
        return ctl_config(redis)

    def test_redis_down_exits_1_at_once_with_a_clear_line(self):
        address = "127.0.0.1:%d" % free_port()
        r = run_ctl("-c", self.conf_for(address), "shed", "1", "--for", "5m")
        self.assertFailure(r, r"^gatewayctl: cannot reach Redis at %s: Connection refused$"
                           % re.escape(address))
        self.assertEqual(r.out, "", r)
        self.assertLess(r.seconds, 2.0, r)

    def test_redis_black_hole_exits_1_after_the_connect_timeout(self):
        hole = BlackHole()
        self.addCleanup(hole.close)
        conf = self.conf_for(hole.address, connect_timeout="300ms")
        r = run_ctl("-c", conf, "flag", "list")
        self.assertFailure(r, r"^gatewayctl: cannot reach Redis at %s: no answer within 300ms "
                           r"\(redis.connect_timeout\)$" % re.escape(hole.address))
        self.assertGreaterEqual(r.seconds, 0.25, r)
        self.assertLess(r.seconds, 2.0, r)

    def test_redis_that_never_answers_exits_1_after_the_command_timeout(self):
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)  # the kernel completes the handshake; nobody ever reads
        self.addCleanup(mute.close)
        address = "127.0.0.1:%d" % mute.getsockname()[1]
        conf = self.conf_for(address, command_timeout="400ms")
        r = run_ctl("-c", conf, "breaker", "checkout", "open")
        self.assertFailure(r, r"^gatewayctl: Redis at %s did not answer within 400ms "
                           r"\(redis.command_timeout\); the change may or may not have been "
                           r"applied" % re.escape(address))
        self.assertGreaterEqual(r.seconds, 0.35, r)
        self.assertLess(r.seconds, 2.5, r)

    def test_password_from_the_environment_over_a_unix_socket(self):
        server = RedisServer(password="s3cret-pw", unix_socket=True)
        self.addCleanup(server.stop)
        conf = self.conf_for(server.unix_path, password_env="GWCTL_TEST_REDIS_PASSWORD")
        r = run_ctl("-c", conf, "shed", "2", env={"GWCTL_TEST_REDIS_PASSWORD": "s3cret-pw"})
        self.assertOk(r)
        check = Resp(server.unix_path)
        self.addCleanup(check.close)
        self.assertEqual(check.command("AUTH", "s3cret-pw"), "OK")
        self.assertEqual(check.command("GET", "gwctl-fail:ops:shed_level"), "2")
        # a wrong password and a missing one: one clear line each, exit 1
        r = run_ctl("-c", conf, "shed", "1", env={"GWCTL_TEST_REDIS_PASSWORD": "wrong"})
        self.assertFailure(r, r"^gatewayctl: Redis at .* refused the password from "
                           r"\$GWCTL_TEST_REDIS_PASSWORD: ")
        r = run_ctl("-c", conf, "shed", "1", env={"GWCTL_TEST_REDIS_PASSWORD": ""})
        self.assertFailure(r, r"^gatewayctl: Redis at .* answered: NOAUTH .*password_env")
        self.assertEqual(check.command("GET", "gwctl-fail:ops:shed_level"), "2")


# ---------------------------------------------------------------------------
# the admin API (status, reload)

class FakeAdmin:
    """An HTTP server standing in for a gateway's admin API."""

    def __init__(self, reload_status=200,
                 reload_body='{"ok":true,"config":{"file":"gateway.yaml","hash":"00c0ffee00c0ffee"}}'):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status, body):
                outer.requests.append((self.command, self.path, dict(self.headers)))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/status":
                    self._reply(200, json.dumps({"overload_level": 0, "inflight": 3}))
                else:
                    self._reply(404, '{"error":"no_route"}')

            def do_POST(self):
                self._reply(reload_status, reload_body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class AdminTest(CtlTestCase):

    def setUp(self):
        self.conf = ctl_config({"address": "127.0.0.1:%d" % free_port()})

    def test_status_without_an_admin_section_exits_1_clearly(self):
        for cmd in ("status", "reload"):
            r = run_ctl("-c", self.conf, cmd)
            self.assertFailure(r, r"^gatewayctl: the gateway's admin API is not reachable: "
                               r".* has no admin: section")

    def test_status_with_the_admin_api_down_exits_1_clearly(self):
        address = "127.0.0.1:%d" % free_port()
        for cmd in ("status", "reload"):
            r = run_ctl("-c", self.conf, "--admin", address, cmd)
            self.assertFailure(r, r"^gatewayctl: the gateway's admin API is not reachable at "
                               r"%s: connection refused$" % re.escape(address))
            self.assertLess(r.seconds, 2.0, r)

    def test_status_json_prints_the_json_of_get_status(self):
        admin = FakeAdmin()
        self.addCleanup(admin.close)
        r = run_ctl("-c", self.conf, "--admin", admin.address, "status", "--json")
        self.assertOk(r)
        self.assertEqual(json.loads(r.out), {"overload_level": 0, "inflight": 3})
        method, path, headers = admin.requests[0]
        self.assertEqual((method, path), ("GET", "/status"))
        self.assertNotIn("Authorization", headers)

    def test_reload_posts_and_reports_a_refused_config(self):
        admin = FakeAdmin()
        self.addCleanup(admin.close)
        r = run_ctl("-c", self.conf, "--admin", admin.address, "reload")
        self.assertOk(r)
        self.assertEqual(admin.requests[0][:2], ("POST", "/reload"))
        self.assertIn("reloaded", r.out)
        self.assertIn("00c0ffee00c0ffee", r.out)
        bad = FakeAdmin(400, '{"ok":false,"errors":["gateway.yaml:3:1: unknown key \'x\'"]}')
        self.addCleanup(bad.close)
        r = run_ctl("-c", self.conf, "--admin", bad.address, "reload")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("unknown key", r.err)
        self.assertIn("keeps its current configuration", r.err)


if __name__ == "__main__":
    unittest.main()
