"""TLS termination on listeners (`listen: [{address, tls}]`), with
certificates made at test time by the `openssl` command (tlstest.py):
handshake and ALPN, SNI choosing among certificates, TLS 1.1 refused,
resumption with tickets (TLS 1.2 and 1.3), plain HTTP on the TLS port
closed cleanly, a stalled handshake cut at header_timeout, the gateway's own
refusals sent through TLS, X-Forwarded-Proto, the access log's tls/sni
fields, certificates replaced by a reload (a bad one refuses the reload and
the old one keeps serving), session ticket keys kept by a reload, and
start-up errors."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

from gwtest import (Conn, GatewayTestCase, free_port, generated_sha256, make_config, poll_until,
                    route, run_gateway_cmd, tmp_dir, to_yaml, upstream, write_file)
import tlstest


class Certs:
    """A test CA and server certificates signed by it (tlstest.TlsFiles)."""

    def __init__(self):
        self.files = tlstest.TlsFiles()
        self.ca_cert = self.files.ca()
        self.ca_path = self.ca_cert.cert

    def server(self, names, kind="ecdsa", expired=False):
        key_type = "rsa" if kind == "rsa" else "ec"
        if expired:
            return self.files.expired_cert(self.ca_cert, dns=names, key_type=key_type)
        return self.files.server_cert(self.ca_cert, dns=names, key_type=key_type)


def client_context(ca, min_version=None, max_version=None, alpn=None):
    ctx = ssl.create_default_context(cafile=ca)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_conn(port, ctx, server_name="gw.test", session=None, timeout=5.0):
    """A gwtest.Conn speaking TLS (handshake done)."""
    c = Conn(port, timeout=timeout)
    c.sock = ctx.wrap_socket(c.sock, server_hostname=server_name, session=session)
    return c


def seen_header(resp, name):
    """A header as the echo stub received it (its JSON answer), or None."""
    for n, v in resp.json()["headers"]:
        if n.lower() == name:
            return v
    return None


def peer_names(conn):
    """The DNS names of the certificate the gateway presented."""
    cert = conn.sock.getpeercert()
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


class TlsListenTestCase(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.certs = Certs()
        self.ca = self.certs.ca_path
        self.stub = self.start_stub("tls-backend", "echo")

    def tls_gateway(self, tls, plain_port=None, limits=None, **extra):
        """A gateway with one TLS listener (tls: the listen entry's `tls`),
        and a plain one too when plain_port is given."""
        port = free_port()
        conf = make_config(port, {"u": upstream(self.stub)}, [route("r", "u")], limits=limits,
                           **extra)
        conf["listen"] = [{"address": "127.0.0.1:%d" % port, "tls": tls}]
        if plain_port:
            conf["listen"].append("127.0.0.1:%d" % plain_port)
        return self.start_gateway_text(to_yaml(conf), port)

    def one_cert(self, names=("gw.test",), kind="ecdsa"):
        c = self.certs.server(list(names), kind=kind)
        return {"cert": c.cert, "key": c.key}


class HandshakeTests(TlsListenTestCase):
    def test_request_over_tls_with_alpn_http11(self):
        """A client offering h2 and http/1.1 gets http/1.1; the request is
        proxied, the upstream sees X-Forwarded-Proto: https, and the access
        log line names the TLS version and the SNI."""
        gw = self.tls_gateway(self.one_cert())
        ctx = client_context(self.ca, alpn=["h2", "http/1.1"])
        with tls_conn(gw.port, ctx) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(c.sock.version(), "TLSv1.3")
            c.request("GET", "/hello")
            r = c.read_response()
            self.assertStatus(r, 200)
            self.assertEqual(seen_header(r, "x-forwarded-proto"), "https")
            c.request("GET", "/again")  # keep-alive over TLS
            self.assertStatus(c.read_response(), 200)
        rec = gw.access_records(2)
        self.assertEqual((rec[0]["tls"], rec[0]["sni"]), ("TLSv1.3", "gw.test"))

    def test_curl_with_the_ca(self):
        """What a new user does: curl --cacert against the TLS port."""
        if not shutil.which("curl"):
            self.fail("curl is not installed (tests/deps.sh installs it)")
        gw = self.tls_gateway(self.one_cert())
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "5", "--cacert", self.ca, "--resolve",
             "gw.test:%d:127.0.0.1" % gw.port, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
             "https://gw.test:%d/x" % gw.port], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout, "200 1.1", out.stderr)

    def test_tls12_works_and_tls11_is_refused(self):
        gw = self.tls_gateway(self.one_cert())
        ctx12 = client_context(self.ca, max_version=ssl.TLSVersion.TLSv1_2)
        with tls_conn(gw.port, ctx12) as c:
            self.assertEqual(c.sock.version(), "TLSv1.2")
            c.request("GET", "/")
            self.assertStatus(c.read_response(), 200)
        ctx11 = client_context(self.ca, min_version=ssl.TLSVersion.TLSv1_1,
                               max_version=ssl.TLSVersion.TLSv1_1)
        ctx11.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client side allows it
        with self.assertRaises(ssl.SSLError) as e:
            tls_conn(gw.port, ctx11).close()
        self.assertRegex(str(e.exception), "(?i)protocol version|unsupported protocol")

    def test_min_version_tls13_refuses_tls12(self):
        tls = self.one_cert()
        tls["min_version"] = "TLSv1.3"
        gw = self.tls_gateway(tls)
        with self.assertRaises(ssl.SSLError):
            tls_conn(gw.port, client_context(self.ca, max_version=ssl.TLSVersion.TLSv1_2)).close()
        with tls_conn(gw.port, client_context(self.ca)) as c:
            self.assertEqual(c.sock.version(), "TLSv1.3")

    def test_rsa_certificate(self):
        gw = self.tls_gateway(self.one_cert(kind="rsa"))
        with tls_conn(gw.port, client_context(self.ca)) as c:
            c.request("GET", "/")
            self.assertStatus(c.read_response(), 200)


class SniTests(TlsListenTestCase):
    def test_sni_picks_the_certificate_and_the_first_is_the_default(self):
        a = self.certs.server(["a.test"])
        b = self.certs.server(["b.test", "*.b.test"], kind="rsa")
        gw = self.tls_gateway({"certificates": [
            {"cert": a.cert, "key": a.key},
            {"cert": b.cert, "key": b.key, "server_names": ["b.test", "*.b.test"]},
        ]})
        ctx = client_context(self.ca)
        with tls_conn(gw.port, ctx, "a.test") as c:
            self.assertEqual(peer_names(c), ["a.test"])
        with tls_conn(gw.port, ctx, "b.test") as c:
            self.assertEqual(peer_names(c), ["*.b.test", "b.test"])
            c.request("GET", "/", host="b.test")
            self.assertStatus(c.read_response(), 200)
        with tls_conn(gw.port, ctx, "api.b.test") as c:
            self.assertEqual(peer_names(c), ["*.b.test", "b.test"])
        # an unknown name gets the default (first) certificate
        nocheck = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        nocheck.check_hostname = False
        nocheck.verify_mode = ssl.CERT_NONE
        c = Conn(gw.port)
        c.sock = nocheck.wrap_socket(c.sock, server_hostname="other.test")
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        self.assertEqual(der, ssl.PEM_cert_to_DER_cert(open(a.leaf).read()))
        recs = gw.access_records(1)
        self.assertEqual(recs[0]["sni"], "b.test")


class ResumptionTests(TlsListenTestCase):
    def resume(self, gw, max_version):
        ctx = client_context(self.ca, max_version=max_version)
        with tls_conn(gw.port, ctx) as c:
            c.request("GET", "/first")
            self.assertStatus(c.read_response(), 200)  # TLS 1.3 tickets come after the handshake
            session = c.sock.session
            self.assertFalse(c.sock.session_reused)
        with tls_conn(gw.port, ctx, session=session) as c:
            reused = c.sock.session_reused
            c.request("GET", "/second")
            self.assertStatus(c.read_response(), 200)
        return reused

    def test_tls13_ticket_resumption(self):
        gw = self.tls_gateway(self.one_cert())
        self.assertTrue(self.resume(gw, ssl.TLSVersion.TLSv1_3))

    def test_tls12_ticket_resumption(self):
        gw = self.tls_gateway(self.one_cert())
        self.assertTrue(self.resume(gw, ssl.TLSVersion.TLSv1_2))

    def test_session_tickets_false_means_full_handshakes(self):
        tls = self.one_cert()
        tls["session_tickets"] = False
        gw = self.tls_gateway(tls)
        self.assertFalse(self.resume(gw, ssl.TLSVersion.TLSv1_3))

    def reload_with_tls(self, gw, tls):
        """Rewrites the listener's tls section (one more route, too) and
        reloads with SIGHUP; waits for the reload's log line."""
        conf = make_config(gw.port, {"u": upstream(self.stub)},
                           [route("extra", "u", path_prefix="/extra"), route("r", "u")])
        conf["listen"] = [{"address": "127.0.0.1:%d" % gw.port, "tls": tls}]
        with open(gw.config_path, "w") as f:
            f.write(to_yaml(conf))
        mark = len(gw.stderr_lines())
        gw.signal(signal.SIGHUP)
        self.assertIsNotNone(gw.wait_stderr("serves new requests", timeout=5, start=mark),
                             gw.stderr_text())

    def session_after_reload(self, gw, tls, max_version):
        """A session from before a reload to tls: is it resumed after?"""
        ctx = client_context(self.ca, max_version=max_version)
        with tls_conn(gw.port, ctx) as c:
            c.request("GET", "/before")
            self.assertStatus(c.read_response(), 200)
            session = c.sock.session
        self.reload_with_tls(gw, tls)
        with tls_conn(gw.port, ctx, session=session) as c:
            reused = c.sock.session_reused
            c.request("GET", "/extra/after")
            self.assertStatus(c.read_response(), 200, "the reloaded config serves")
        return reused

    def test_sessions_resume_across_a_reload(self):
        """A reload that keeps the listener keeps its ticket keys: a session
        from before resumes after (TLS 1.3 and 1.2), so a reload during a
        peak does not turn every reconnect into a full handshake."""
        tls = self.one_cert()
        gw = self.tls_gateway(tls)
        self.assertTrue(self.session_after_reload(gw, tls, ssl.TLSVersion.TLSv1_3), "TLS 1.3")
        self.assertTrue(self.session_after_reload(gw, tls, ssl.TLSVersion.TLSv1_2), "TLS 1.2")

    def test_new_ticket_key_rotation_on_reload_means_new_keys(self):
        tls = self.one_cert()
        gw = self.tls_gateway(tls)
        changed = dict(tls, ticket_key_rotation="30m")
        self.assertFalse(self.session_after_reload(gw, changed, ssl.TLSVersion.TLSv1_3))
        # and the new keys are kept by the reload after
        self.assertTrue(self.session_after_reload(gw, changed, ssl.TLSVersion.TLSv1_3))

    def test_openssl_s_client_reports_reused(self):
        """The check a user runs by hand: -sess_out, then -sess_in says Reused."""
        gw = self.tls_gateway(self.one_cert())
        sess = os.path.join(tmp_dir(), "sess-%d.pem" % gw.port)
        base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % gw.port, "-servername",
                "gw.test", "-CAfile", self.ca, "-tls1_2"]
        first = subprocess.run(base + ["-sess_out", sess], input=b"", capture_output=True,
                               timeout=10)
        self.assertIn(b"New, TLSv1.2", first.stdout)
        second = subprocess.run(base + ["-sess_in", sess], input=b"", capture_output=True,
                                timeout=10)
        self.assertIn(b"Reused, TLSv1.2", second.stdout)


class HostileTlsClientTests(TlsListenTestCase):
    def test_plain_http_on_the_tls_port_is_closed_cleanly(self):
        gw = self.tls_gateway(self.one_cert())
        c = Conn(gw.port)
        c.send(b"GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n", ignore_errors=True)
        closed, extra = c.wait_closed(timeout=3.0)
        c.close()
        self.assertTrue(closed, "the gateway kept a plain-HTTP connection open on its TLS port")
        self.assertNotIn(b"HTTP/1.1", extra)  # nothing was served in clear text
        self.assertTrue(gw.alive())
        with tls_conn(gw.port, client_context(self.ca)) as t:
            t.request("GET", "/")
            self.assertStatus(t.read_response(), 200)

    def test_stalled_handshake_is_cut_at_header_timeout(self):
        gw = self.tls_gateway(self.one_cert(), limits={"header_timeout": "1s"})
        silent = Conn(gw.port, timeout=5)
        partial = Conn(gw.port, timeout=5)
        partial.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello that stops
        start = time.monotonic()
        for c in (silent, partial):
            closed, _ = c.wait_closed(timeout=4.0)
            self.assertTrue(closed, "a stalled handshake was not cut")
            c.close()
        self.assertLess(time.monotonic() - start, 4.0)

    def test_refusals_are_sent_through_tls(self):
        """A head the guard refuses (400) and one too slow (408) are
        answered with the gateway's JSON error, encrypted, then closed."""
        gw = self.tls_gateway(self.one_cert(), limits={"header_timeout": "1s"})
        ctx = client_context(self.ca)
        with tls_conn(gw.port, ctx) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: gw.test\r\nBad Header: x\r\n\r\n")
            self.assertGatewayError(c.read_response(), 400, "bad_request")
            self.assertClosed(c)
        with tls_conn(gw.port, ctx) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: gw.test\r\n")  # never ends
            self.assertGatewayError(c.read_response(timeout=4), 408, "request_timeout")

    def test_large_streamed_response_and_http10_over_tls(self):
        size = 6 << 20
        self.stub.set("size", size=size, chunked=True, piece=65536)
        gw = self.tls_gateway(self.one_cert())
        with tls_conn(gw.port, client_context(self.ca), timeout=20) as c:
            c.request("GET", "/big")
            r = c.read_response(timeout=20, store=False)
            self.assertStatus(r, 200)
            self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)))
        with tls_conn(gw.port, client_context(self.ca), timeout=20) as c:
            c.request("GET", "/big10", version="HTTP/1.0")
            r = c.read_response(timeout=20, store=False)
            self.assertStatus(r, 200)
            self.assertEqual((r.body_len, r.body_sha256), (size, generated_sha256(size)))

    def test_pipelined_requests_and_many_small_answers_over_tls(self):
        """Three requests in one TLS record, then 300 in a row on one
        connection: every answer whole and in order (answers are written
        with SSL_write at once when nothing is queued)."""
        gw = self.tls_gateway(self.one_cert())
        with tls_conn(gw.port, client_context(self.ca)) as c:
            c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i for i in range(3)))
            for i in range(3):
                r = c.read_response()
                self.assertStatus(r, 200)
                self.assertEqual(r.json()["target"], "/p%d" % i)
            for i in range(300):
                c.request("GET", "/k%d" % i)
                self.assertEqual(c.read_response().json()["target"], "/k%d" % i)

    def test_request_sent_while_the_previous_waits_over_tls(self):
        """The next request arrives (a TLS record the gateway does not read
        yet) while the previous one waits for a slow upstream: both answered,
        in order, five times on one connection."""
        self.stub.set_path("/slow", "echo", delay=0.4)
        gw = self.tls_gateway(self.one_cert())
        with tls_conn(gw.port, client_context(self.ca)) as c:
            for i in range(5):
                c.request("GET", "/slow")
                self.stub.wait_requests(2 * i + 1)
                c.request("GET", "/after/%d" % i)
                self.assertEqual(c.read_response().json()["target"], "/slow", "round %d" % i)
                self.assertEqual(c.read_response().json()["target"], "/after/%d" % i)

    def test_plain_and_tls_listeners_side_by_side(self):
        plain = free_port()
        gw = self.tls_gateway(self.one_cert(), plain_port=plain)
        with tls_conn(gw.port, client_context(self.ca)) as c:
            c.request("GET", "/")
            self.assertEqual(seen_header(c.read_response(), "x-forwarded-proto"), "https")
        with Conn(plain) as c:
            c.request("GET", "/")
            self.assertEqual(seen_header(c.read_response(), "x-forwarded-proto"), "http")


class CertificateReloadTests(TlsListenTestCase):
    def test_reload_serves_the_new_certificate_and_refuses_a_bad_one(self):
        first = self.certs.server(["gw.test", "one.test"])
        second = self.certs.server(["gw.test", "two.test"], kind="rsa")
        d = tmp_dir()
        cert = os.path.join(d, "live-cert-%d.pem" % os.getpid())
        key = os.path.join(d, "live-key-%d.pem" % os.getpid())
        shutil.copy(first.cert, cert)
        shutil.copy(first.key, key)
        gw = self.tls_gateway({"cert": cert, "key": key})
        ctx = client_context(self.ca)
        kept = tls_conn(gw.port, ctx)
        self.assertIn("one.test", peer_names(kept))
        # new files, same paths: a reload reads them again
        shutil.copy(second.cert, cert)
        shutil.copy(second.key, key)
        mark = len(gw.stderr_lines())
        gw.signal(signal.SIGHUP)
        self.assertIsNotNone(gw.wait_stderr("reload", timeout=5, start=mark))
        self.assertTrue(poll_until(lambda: "two.test" in peer_names(tls_conn(gw.port, ctx)), 5))
        kept.request("GET", "/")  # the open connection keeps working
        self.assertStatus(kept.read_response(), 200)
        kept.close()
        # a key that does not match: refused, the certificate in use stays
        shutil.copy(first.key, key)
        mark = len(gw.stderr_lines())
        gw.signal(signal.SIGHUP)
        found = gw.wait_stderr("does not match", timeout=5, start=mark)
        self.assertIsNotNone(found, gw.stderr_text())
        self.assertIn("reload refused", found[1])
        self.assertIn(key, found[1])
        with tls_conn(gw.port, ctx) as c:
            self.assertIn("two.test", peer_names(c))
            c.request("GET", "/")
            self.assertStatus(c.read_response(), 200)


class StartupErrorTests(TlsListenTestCase):
    def check(self, tls, pattern):
        port = free_port()
        conf = make_config(port, {"u": upstream(self.stub)}, [route("r", "u")])
        conf["listen"] = [{"address": "127.0.0.1:%d" % port, "tls": tls}]
        path = write_file(to_yaml(conf))
        out = run_gateway_cmd(["-c", path])
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertRegex(out.stderr, r"%s:\d+:\d+: .*%s" % (re.escape(path), pattern))
        return out

    def test_missing_file(self):
        c = self.certs.server(["gw.test"])
        self.check({"cert": c.cert + ".missing", "key": c.key}, "No such file")

    def test_key_not_matching(self):
        a = self.certs.server(["gw.test"])
        b = self.certs.server(["gw.test"])
        self.check({"cert": a.cert, "key": b.key}, "does not match")

    def test_expired_certificate_is_a_warning(self):
        c = self.certs.server(["gw.test"], expired=True)
        gw = self.tls_gateway({"cert": c.cert, "key": c.key})
        self.assertTrue(any("expired" in l for l in gw.stderr_lines()), gw.stderr_text())

if __name__ == "__main__":
    import unittest
    unittest.main()
