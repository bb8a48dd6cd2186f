"""Seeded random mutations of valid request heads: the gateway answers each
with a well-formed response that is either the upstream's 200 or a gateway
error (X-Gateway-Error + JSON), never a library error page, never a crash,
and forwards nothing the upstream cannot parse."""

import random

from gwtest import Conn, GatewayTestCase, HttpError

BASES = [
    b"GET /m/a?x=1 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: t/1\r\nAccept: */*\r\nX-Tenant: acme\r\n",
    b"DELETE /m/b HTTP/1.1\r\nHost: gw.test\r\nX-Request-ID: abc\r\nConnection: keep-alive\r\n",
    b"GET http://gw.test/m/c HTTP/1.1\r\nHost: gw.test\r\nTE: trailers\r\nVia: 1.0 x\r\n",
]
INSERTS = [b"\r", b"\n", b"\x00", b" ", b"\t", b":", b"\x7f", b"\xff", b"/", b"%", b"\r\n", b"\r\n ", b"..", b"?"]


def mutate(rng, base):
    head = bytearray(base)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(head))
        op = rng.randrange(3)
        if op == 0:
            head[pos] = rng.randrange(256)
        elif op == 1:
            head[pos:pos] = rng.choice(INSERTS)
        else:
            del head[pos:pos + rng.randint(1, 4)]
    return bytes(head) + b"\r\n"


class MutationTests(GatewayTestCase):
    def test_300_mutated_heads(self):
        """300 mutated heads (seed 1234): every answer is well formed and either
        the upstream's 200 or a gateway error; the gateway stays up."""
        stub = self.start_stub("fz")
        gw = self.simple_gateway(stub, limits={"header_timeout": "1s", "body_timeout": "1s"})
        rng = random.Random(1234)
        problems = []
        for i in range(300):
            data = mutate(rng, BASES[i % len(BASES)])
            try:
                with Conn(gw.port, timeout=4) as c:
                    c.send(data, ignore_errors=True)
                    r = c.read_response(timeout=4)
            except HttpError as e:
                if not gw.alive():
                    self.fail("gateway died on case %d %r; stderr:\n%s" % (i, data, gw.stderr_text()))
                problems.append((i, data, "no well-formed response: %s" % str(e)[:200]))
                continue
            code = r.header("X-Gateway-Error")
            if code is None:
                ok = r.status == 200 and r.json().get("server") == "fz"
                if not ok:
                    problems.append((i, data, "neither proxied 200 nor gateway error: " + r.describe()))
            else:
                try:
                    body = r.json()
                except AssertionError as e:
                    problems.append((i, data, str(e)))
                    continue
                if body.get("error") != code:
                    problems.append((i, data, "error body %r vs header %r" % (body, code)))
        self.assertTrue(gw.alive(), "gateway died; stderr:\n" + gw.stderr_text())
        self.assertEqual(problems[:10], [], "%d of 300 cases misbehaved" % len(problems))
