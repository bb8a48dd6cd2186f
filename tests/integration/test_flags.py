"""Feature flags and operator toggles from Redis (SPEC section 6), through
the real gateway and a real redis-server.

Tests that only change keys share the suite's redis-server
(GATEWAY_TEST_REDIS, or one started for this process) with a key prefix of
their own; tests that stop, pause, restart or kill Redis connections start
their own redis-server. Every wait is a poll with a deadline.
"""

import gc
import json
import os
import signal
import time

from gwtest import (GatewayTestCase, free_port, poll_until, route, run_gateway_cmd, upstream,
                    write_file, Conn)
from redistest import Redis, RedisServer, shared_redis_address, unique_prefix


def fnv1a32(data):
    h = 2166136261
    for b in data:
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def bucket(flag, key):
    return fnv1a32(("%s:%s" % (flag, key)).encode()) % 100


class FlagsTestCase(GatewayTestCase):
    """A gateway with two upstream stubs, "new" and "old", and routes guarded
    by flags; helpers to drive Redis and to read the process log."""

    def setUp(self):
        self.new = self.start_stub("new", "hello")
        self.old = self.start_stub("old", "hello")
        self.prefix = unique_prefix()

    # ----- set-up -------------------------------------------------------
    def own_redis(self, **kw):
        srv = RedisServer(**kw).start()
        self.addCleanup(srv.cleanup)
        return srv

    def flag_gateway(self, flags, routes=None, redis_address=None, poll="5s", cache_file=None,
                     profiles=None, extra_redis=None, workers=1, check_alive=True, port=None):
        upstreams = {"new": upstream(self.new), "old": upstream(self.old)}
        if routes is None:
            routes = [route("v2", "new", path_prefix="/v2",
                            flag={"name": "v2", "when_off": {"upstream": "old"}}),
                      route("gated", "new", path_prefix="/gated", flag={"name": "v2"}),
                      route("other", "new")]
        conf = {"flags": flags}
        if profiles:
            conf["profiles"] = profiles
        if redis_address:
            rc = {"address": redis_address, "prefix": self.prefix, "poll_interval": poll,
                  "connect_timeout": "250ms", "command_timeout": "250ms"}
            if cache_file:
                rc["cache_file"] = cache_file
            rc.update(extra_redis or {})
            conf["redis"] = rc
        return self.start_gateway(upstreams, routes, workers=workers, access_log="off",
                                  check_alive=check_alive, port=port, **conf)

    def redis(self, address=None, password=None):
        r = Redis(address or shared_redis_address(), password)
        self.addCleanup(r.close)
        return r

    def set_flag(self, r, name, value, publish=True):
        r.cmd("HSET", self.prefix + "flags", name, value)
        if publish:
            r.cmd("PUBLISH", self.prefix + "events", "x")

    # ----- observing ------------------------------------------------------
    def log_lines(self, gw):
        with gw._lock:
            return list(gw._err)

    def wait_log(self, gw, text, timeout=3.0, start=0):
        """Index of the first process-log line from start on containing text."""
        def find():
            lines = self.log_lines(gw)
            for i in range(start, len(lines)):
                if text in lines[i]:
                    return i + 1  # 0 would read as "not found"
            return None
        found = poll_until(find, timeout, interval=0.005)
        if not found:
            self.fail("no log line with %r within %.1fs; log:\n%s"
                      % (text, timeout, "\n".join(self.log_lines(gw)[-30:])))
        return found - 1

    def count_log(self, gw, text):
        return sum(text in line for line in self.log_lines(gw))

    def served_by(self, c, path="/v2/x", headers=()):
        """Which upstream answered on keep-alive connection c ("flag_off" for
        the gateway's own answer)."""
        c.request("GET", path, list(headers))
        r = c.read_response()
        if r.header("X-Gateway-Error"):
            return r.header("X-Gateway-Error")
        self.assertStatus(r, 200)
        return r.json()["server"]

    def wait_served_by(self, c, want, timeout, path="/v2/x"):
        """Polls until want answers; returns the seconds it took."""
        t0 = time.monotonic()
        got = poll_until(lambda: self.served_by(c, path) == want, timeout, interval=0.001)
        if not got:
            self.fail("%s still not served by %s after %.2fs (now %s)"
                      % (path, want, timeout, self.served_by(c, path)))
        return time.monotonic() - t0

    def latencies(self, c, n=200, path="/v2/x", want=None):
        """n requests on c, one at a time: their durations in seconds."""
        out = []
        gc.disable()
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                got = self.served_by(c, path)
                out.append(time.perf_counter() - t0)
                if want:
                    self.assertEqual(got, want)
        finally:
            gc.enable()
        return out


# Requests must not wait for Redis: the slowest of 200 requests during a
# Redis fault stays far below the 250 ms command timeout.
MAX_FAULT_LATENCY = 0.025


class FlagRoutingTests(FlagsTestCase):
    def test_flag_off_answers_flag_off_404_and_reaches_no_upstream(self):
        gw = self.flag_gateway({"v2": "off"})
        r = self.fetch(gw, "GET", "/gated/x")
        self.assertGatewayError(r, 404, "flag_off")
        self.assertStubSaw(self.new, 0)
        self.assertStubSaw(self.old, 0)

    def test_flag_off_with_when_off_status(self):
        routes = [route("gated", "new", flag={"name": "v2", "when_off": {"status": 503}})]
        gw = self.flag_gateway({"v2": False}, routes=routes)
        self.assertGatewayError(self.fetch(gw, "GET", "/x"), 503, "flag_off")

    def test_flag_off_goes_to_the_when_off_upstream(self):
        gw = self.flag_gateway({"v2": "off"})
        c = self.connect(gw)
        self.assertEqual(self.served_by(c, "/v2/a"), "old")
        self.assertEqual(self.served_by(c, "/other"), "new")
        self.assertEqual(self.old.requests[0].target, "/v2/a")

    def test_flag_on_is_routed(self):
        gw = self.flag_gateway({"v2": "on"})
        c = self.connect(gw)
        self.assertEqual(self.served_by(c, "/v2/a"), "new")
        self.assertEqual(self.served_by(c, "/gated/a"), "new")
        self.assertStubSaw(self.old, 0)

    def test_when_off_route_is_logged_with_its_upstream(self):
        gw = self.start_gateway({"new": upstream(self.new), "old": upstream(self.old)},
                                [route("v2", "new", flag={"name": "v2",
                                                          "when_off": {"upstream": "old"}})],
                                flags={"v2": "off"})
        self.assertEqual(self.fetch(gw, "GET", "/x").json()["server"], "old")
        rec = gw.access_records(1)[0]
        self.assertEqual((rec["route"], rec["upstream"], rec["status"]), ("v2", "old", 200))
        self.assertEqual(rec["server"], self.old.address)


class FlagRedisTests(FlagsTestCase):
    def test_hset_and_publish_take_effect_within_100ms(self):
        """Five toggles announced on PREFIXevents: each visible through the
        gateway within 100 ms (poll_interval 5s, so it is the message)."""
        gw = self.flag_gateway({"v2": "off"}, redis_address=shared_redis_address())
        r = self.redis()
        c = self.connect(gw)
        self.assertEqual(self.served_by(c), "old")
        worst = 0
        for i in range(6):
            value, want = ("on", "new") if i % 2 == 0 else ("off", "old")
            t0 = time.monotonic()
            self.set_flag(r, "v2", value)
            poll_until(lambda: self.served_by(c) == want, 1.0, interval=0.001)
            took = time.monotonic() - t0
            self.assertEqual(self.served_by(c), want, "toggle %d" % i)
            worst = max(worst, took)
        self.assertLess(worst, 0.1, "slowest PUBLISH-to-effect: %.1f ms" % (worst * 1000))
        self.wait_log(gw, "flag v2 = on (redis)")

    def test_change_without_publish_within_poll_interval(self):
        gw = self.flag_gateway({"v2": "off"}, redis_address=shared_redis_address(), poll="300ms")
        r = self.redis()
        c = self.connect(gw)
        self.assertEqual(self.served_by(c), "old")
        t0 = time.monotonic()
        self.set_flag(r, "v2", "on", publish=False)
        took = self.wait_served_by(c, "new", 2.0)
        self.assertLess(time.monotonic() - t0, 0.3 + 0.1, "took %.0f ms" % (took * 1000))

    def test_percentage_30_is_sticky_per_user_and_the_same_on_every_gateway(self):
        """10,000 distinct X-User-ID values at 30%: 30% +- 2% routed, each user
        exactly as FNV-1a-32("v2:" + user) % 100 < 30 says, and the same
        answer again and on a second gateway."""
        addr = shared_redis_address()
        routes = [route("gated", "new", flag={"name": "v2"})]
        gw = self.flag_gateway({"v2": "10%"}, routes=routes, redis_address=addr, workers=2)
        gw2 = self.flag_gateway({"v2": "10%"}, routes=routes, redis_address=addr)
        r = self.redis()
        mark = len(self.log_lines(gw))
        self.set_flag(r, "v2", "30%")
        self.wait_log(gw, "flag v2 = 30% (redis)", start=mark)
        self.wait_log(gw2, "flag v2 = 30% (redis)")
        users = ["user-%d" % i for i in range(10000)]
        first = self.decide(gw, users)
        on = sum(first.values())
        self.assertTrue(2800 <= on <= 3200, "%d of 10000 users on at 30%%" % on)
        wrong = [u for u in users if first[u] != (bucket("v2", u) < 30)]
        self.assertEqual(wrong[:5], [], "%d users decided unlike FNV-1a-32" % len(wrong))
        self.assertEqual(self.decide(gw, users[:2000]), {u: first[u] for u in users[:2000]})
        self.assertEqual(self.decide(gw2, users[:2000]), {u: first[u] for u in users[:2000]})
        # Without X-User-ID the client address is the key.
        c = self.connect(gw)
        self.assertEqual(self.served_by(c, "/x") == "new", bucket("v2", "127.0.0.1") < 30)

    def decide(self, gw, users, batch=100):
        """user -> routed (True) or flag_off (False), over one keep-alive
        connection with pipelined batches."""
        c = self.connect(gw, timeout=20)
        out = {}
        for i in range(0, len(users), batch):
            part = users[i:i + batch]
            c.send(b"".join(b"GET /p HTTP/1.1\r\nHost: gw.test\r\nX-User-ID: %s\r\n\r\n"
                            % u.encode() for u in part))
            for u in part:
                resp = c.read_response(timeout=20)
                if resp.status == 404:
                    self.assertEqual(resp.header("X-Gateway-Error"), "flag_off")
                    out[u] = False
                else:
                    self.assertStatus(resp, 200)
                    out[u] = True
        return out

    def test_profile_applies_flags_and_shed_level_until_its_ttl_ends(self):
        gw = self.flag_gateway({"v2": "on", "recs": "on"}, redis_address=shared_redis_address(),
                               poll="300ms",
                               profiles={"peak": {"flags": {"v2": "off"}, "shed_level": 1}})
        r = self.redis()
        c = self.connect(gw)
        self.assertEqual(self.served_by(c), "new")
        r.cmd("SET", self.prefix + "ops:profile", "peak", "PX", "800")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_served_by(c, "old", 0.5)
        i = self.wait_log(gw, "profile = peak (redis)")
        self.wait_log(gw, "flag v2 = off (profile peak)", start=i)
        self.wait_log(gw, "shed_level = 1 (profile peak)", start=i)
        self.assertEqual(self.count_log(gw, "flag recs"), 0)
        # No announcement: the TTL alone ends the profile.
        self.wait_served_by(c, "new", 2.0)
        j = self.wait_log(gw, "profile = none (default)", start=i)
        self.wait_log(gw, "shed_level = auto (default)", start=j)

    def test_shed_level_with_a_ttl_reverts_by_itself(self):
        gw = self.flag_gateway({"v2": "on"}, redis_address=shared_redis_address(), poll="300ms")
        r = self.redis()
        r.cmd("SET", self.prefix + "ops:shed_level", "1", "PX", "500")
        t0 = time.monotonic()
        r.cmd("PUBLISH", self.prefix + "events", "x")
        i = self.wait_log(gw, "shed_level = 1 (redis)", timeout=1.0)
        self.assertLess(time.monotonic() - t0, 0.1)
        self.wait_log(gw, "shed_level = auto (default)", timeout=2.0, start=i)
        took = time.monotonic() - t0
        self.assertGreater(took, 0.45, "reverted before its TTL: %.2fs" % took)
        self.assertLess(took, 0.5 + 0.3 + 0.1, "reverted late: %.2fs" % took)

    def test_breaker_forced_open_and_handed_back(self):
        routes = [route("r", "new", circuit_breaker={}, flag={"name": "v2"})]
        gw = self.flag_gateway({"v2": "on"}, routes=routes, redis_address=shared_redis_address())
        r = self.redis()
        c = self.connect(gw)
        self.assertEqual(self.served_by(c, "/x"), "new")
        r.cmd("SET", self.prefix + "ops:breaker:r", "open")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_served_by(c, "circuit_open", 0.5, path="/x")
        self.wait_log(gw, "breaker r = open (redis)")
        seen = len(self.new.requests)
        self.assertEqual(self.served_by(c, "/x"), "circuit_open")
        self.assertEqual(len(self.new.requests), seen, "an open breaker reached the upstream")
        r.cmd("DEL", self.prefix + "ops:breaker:r")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_served_by(c, "new", 0.5, path="/x")
        self.wait_log(gw, "breaker r = auto (default)")

    def test_garbage_values_are_ignored_once_logged_and_the_last_good_value_stays(self):
        gw = self.flag_gateway({"v2": "off"}, redis_address=shared_redis_address(), poll="100ms")
        r = self.redis()
        c = self.connect(gw)
        self.set_flag(r, "v2", "on")
        self.wait_served_by(c, "new", 0.5)
        self.set_flag(r, "v2", "banana")
        r.cmd("SET", self.prefix + "ops:shed_level", "lots")
        r.cmd("SET", self.prefix + "ops:profile", "no-such-profile")
        r.cmd("HSET", self.prefix + "flags", "unknown_flag", "on")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_log(gw, "ignoring %sflags v2 = 'banana'" % self.prefix)
        time.sleep(0.5)  # five polls: still one line each
        self.assertEqual(self.count_log(gw, "'banana'"), 1)
        self.assertEqual(self.count_log(gw, "'lots'"), 1)
        self.assertEqual(self.count_log(gw, "'no-such-profile'"), 1)
        self.assertEqual(self.count_log(gw, "'unknown_flag'"), 1)
        self.latencies(c, 50, want="new")
        # gw:flags that is not a hash at all: the flag values stay too.
        r.cmd("DEL", self.prefix + "flags")
        r.cmd("SET", self.prefix + "flags", "oops")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_log(gw, "%sflags is not a hash" % self.prefix)
        self.assertEqual(self.served_by(c), "new")
        r.cmd("DEL", self.prefix + "flags")
        r.cmd("PUBLISH", self.prefix + "events", "x")
        self.wait_served_by(c, "old", 0.5)  # no value in Redis: the default again

    def test_cache_file_is_written_atomically_with_the_redis_values(self):
        cache = os.path.join(os.path.dirname(write_file("", "cache-dir")), "flags-%s.json"
                             % self.prefix.strip(":"))
        gw = self.flag_gateway({"v2": "off"}, redis_address=shared_redis_address(),
                               cache_file=cache)
        r = self.redis()
        r.cmd("SET", self.prefix + "ops:breaker:v2", "closed", "EX", "3600")
        self.set_flag(r, "v2", "25%")

        def cached():
            try:
                with open(cache) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                return None
            return data if data.get("flags", {}).get("v2") == "25%" else None
        data = poll_until(cached, 2.0)
        self.assertTrue(data, "cache file never held v2 = 25%")
        self.assertEqual(data["version"], 1)
        self.assertEqual(data["breakers"]["v2"]["value"], "closed")
        self.assertGreater(data["breakers"]["v2"]["expires_ms"], time.time() * 1000 + 3500e3)
        leftovers = [n for n in os.listdir(os.path.dirname(cache))
                     if n.startswith(os.path.basename(cache) + ".")]
        self.assertEqual(leftovers, [], "temporary files left next to the cache file")


class FlagRedisFaultTests(FlagsTestCase):
    """Redis stopped, hung, restarted, its pub/sub connection killed: requests
    keep flowing with the last good values, fast, and changes made after the
    recovery are picked up within about a second."""

    def start_with_v2_on(self, srv, poll="300ms", **kw):
        gw = self.flag_gateway({"v2": "off"}, redis_address=srv.address, poll=poll, **kw)
        r = srv.client()
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "on")
        c = self.connect(gw)
        self.wait_served_by(c, "new", 1.0)
        return gw, c

    def check_requests_flow(self, c, what):
        lat = self.latencies(c, 200, want="new")
        self.assertLess(max(lat), MAX_FAULT_LATENCY,
                        "slowest of 200 requests while Redis is %s: %.1f ms"
                        % (what, max(lat) * 1000))

    def test_redis_stopped_then_restarted(self):
        srv = self.own_redis()
        gw, c = self.start_with_v2_on(srv)
        srv.stop()
        self.wait_log(gw, "redis %s unreachable" % srv.address)
        self.check_requests_flow(c, "stopped")
        time.sleep(1.0)  # a few failed reconnects: still one outage line
        self.assertEqual(self.count_log(gw, "unreachable"), 1)
        t0 = time.monotonic()
        srv.start()  # empty: nothing kept across the restart
        r = srv.client()
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "40%")
        self.wait_log(gw, "flag v2 = 40% (redis)", timeout=3.0)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(self.count_log(gw, "reachable again"), 1)

    def test_redis_hung_by_sigstop_command_timeouts_fire(self):
        srv = self.own_redis()
        gw, c = self.start_with_v2_on(srv)
        srv.pause()
        try:
            t0 = time.monotonic()
            self.wait_log(gw, "redis %s unreachable: no answer within 250ms" % srv.address,
                          timeout=2.0)
            self.assertLess(time.monotonic() - t0, 0.3 + 0.25 + 0.2)
            self.check_requests_flow(c, "hung")
            time.sleep(1.0)
            self.assertEqual(self.count_log(gw, "unreachable"), 1)
        finally:
            srv.resume()
        t0 = time.monotonic()
        r = srv.client()
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "off")
        self.wait_served_by(c, "old", 2.0)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.wait_log(gw, "redis %s reachable again" % srv.address)

    def test_killed_pubsub_connection_resubscribes_and_rereads(self):
        srv = self.own_redis()
        gw, c = self.start_with_v2_on(srv, poll="5s")
        r = srv.client()
        self.addCleanup(r.close)
        channel = self.prefix + "events"
        r.cmd("HSET", self.prefix + "flags", "v2", "off")  # not announced
        self.assertEqual(r.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 1)
        self.wait_log(gw, "pub/sub connection lost")
        # The re-subscribe re-reads everything: the unannounced change shows.
        self.wait_served_by(c, "old", 1.5)
        poll_until(lambda: r.cmd("PUBSUB", "NUMSUB", channel)[1] == 1, 2.0)
        t0 = time.monotonic()
        self.set_flag(r, "v2", "on")
        self.wait_served_by(c, "new", 0.5)
        self.assertLess(time.monotonic() - t0, 0.1)
        self.assertEqual(self.count_log(gw, "unreachable"), 0)

    def test_garbage_does_not_slow_requests(self):
        srv = self.own_redis()
        gw, c = self.start_with_v2_on(srv, poll="10ms")
        r = srv.client()
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "\x00\xff garbage")
        self.wait_log(gw, "ignoring %sflags v2" % self.prefix)
        self.check_requests_flow(c, "full of garbage")

    def test_start_with_redis_down_uses_the_cache_file(self):
        srv = self.own_redis()
        cache = write_file("", "flags-cache", ".json")
        gw, c = self.start_with_v2_on(srv, cache_file=cache)
        poll_until(lambda: '"v2":"on"' in open(cache).read(), 2.0)
        c.close()
        gw.stop()
        srv.stop()
        t0 = time.monotonic()
        gw2 = self.flag_gateway({"v2": "off"}, redis_address=srv.address, cache_file=cache)
        self.assertLess(time.monotonic() - t0, 1.5, "start-up waited too long for Redis")
        self.wait_log(gw2, "starting with the last known values from %s" % cache)
        self.wait_log(gw2, "flag v2 = on (cache)")
        c2 = self.connect(gw2)
        self.assertEqual(self.served_by(c2), "new")
        # Redis back (empty): its values replace the cached ones.
        srv.start()
        self.wait_served_by(c2, "old", 3.0)
        self.wait_log(gw2, "flag v2 = off (default)")

    def test_start_with_redis_down_and_no_cache_uses_the_yaml_defaults(self):
        address = "127.0.0.1:%d" % free_port()
        gw = self.flag_gateway({"v2": "on"}, redis_address=address,
                               cache_file=os.path.join(os.path.dirname(write_file("")),
                                                       "missing", "flags.json"))
        self.wait_log(gw, "could not be read at start and cannot open")
        self.wait_log(gw, "starting with the YAML defaults")
        c = self.connect(gw)
        self.assertEqual(self.served_by(c), "new")
        gw2 = self.flag_gateway({"v2": "off"}, redis_address=address)
        self.wait_log(gw2, "there is no cache_file: starting with the YAML defaults")
        self.assertEqual(self.served_by(self.connect(gw2)), "old")


class FlagRedisAccessTests(FlagsTestCase):
    def test_password_from_password_env(self):
        srv = self.own_redis(password="s3cret pass")
        os.environ["GW_TEST_REDIS_PASSWORD"] = "s3cret pass"
        self.addCleanup(os.environ.pop, "GW_TEST_REDIS_PASSWORD", None)
        gw = self.flag_gateway({"v2": "off"}, redis_address=srv.address,
                               extra_redis={"password_env": "GW_TEST_REDIS_PASSWORD"})
        r = srv.client()
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "on")
        self.wait_served_by(self.connect(gw), "new", 0.5)
        self.assertEqual(self.count_log(gw, "unreachable"), 0)

    def test_wrong_password_is_an_outage_with_the_reason(self):
        srv = self.own_redis(password="right")
        os.environ["GW_TEST_REDIS_PASSWORD"] = "wrong"
        self.addCleanup(os.environ.pop, "GW_TEST_REDIS_PASSWORD", None)
        gw = self.flag_gateway({"v2": "off"}, redis_address=srv.address,
                               extra_redis={"password_env": "GW_TEST_REDIS_PASSWORD"})
        self.wait_log(gw, "unreachable: AUTH refused: WRONGPASS")
        self.assertEqual(self.served_by(self.connect(gw)), "old")

    def test_unset_password_env_is_a_clear_fatal_error(self):
        port = free_port()
        path = write_file(
            "listen: [\"127.0.0.1:%d\"]\nredis: {address: \"127.0.0.1:1\", password_env: "
            "GW_TEST_NOT_SET_ANYWHERE}\nupstreams: {u: {servers: [\"127.0.0.1:1\"]}}\n"
            "routes: [{name: r, upstream: u}]\n" % port)
        res = run_gateway_cmd(["-c", path])
        self.assertEqual(res.returncode, 1)
        self.assertIn("redis.password_env: the environment variable GW_TEST_NOT_SET_ANYWHERE "
                      "is not set", res.stderr)

    def test_unix_socket_address(self):
        srv = self.own_redis(unix_socket=True)
        gw = self.flag_gateway({"v2": "off"}, redis_address=srv.unix_path)
        r = Redis(srv.unix_path)
        self.addCleanup(r.close)
        self.set_flag(r, "v2", "on")
        self.wait_served_by(self.connect(gw), "new", 0.5)
        self.wait_log(gw, "redis %s connected" % srv.unix_path)

    def test_host_name_address_is_refused_by_config_check(self):
        path = write_file("redis: {address: \"localhost:6379\"}\n"
                          "upstreams: {u: {servers: [\"127.0.0.1:1\"]}}\n"
                          "routes: [{name: r, upstream: u}]\n")
        res = run_gateway_cmd(["-t", "-c", path])
        self.assertEqual(res.returncode, 1)
        self.assertIn("'localhost:6379' is not an IP address", res.stderr)
