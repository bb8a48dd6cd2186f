"""Rules of the source tree that keep the core's structure from sliding back:

- every use of evhttp's private structure (event2/http_struct.h) and every
  raw socket call on a client connection's socket behind evhttp's back is in
  gateway/evhttp_adapter.c, which checks the libevent version it was written
  against;
- the client connection guard does not know transactions or the server (it
  hears of its request through an owner callback and counts connections
  through the cap the worker hands it);
- upstream pools and connections do not reach into the worker (their event
  base, random seed and draining flag come at creation);
- the transaction does not call modules by name (only through the pipeline).

These read the C sources: they fail when an edit breaks a rule, whatever the
gateway's behaviour."""

import os
import re
import unittest

from gwtest import ROOT

GATEWAY_DIR = os.path.join(ROOT, "gateway")


def sources():
    for dirpath, _, files in os.walk(GATEWAY_DIR):
        for f in files:
            if f.endswith((".c", ".h")):
                path = os.path.join(dirpath, f)
                yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


def code_only(text):
    """The text without comments and string literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def includes(path):
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    return {os.path.basename(m) for m in re.findall(r'#include "([^"]+)"', text)}


class SourceRuleTests(unittest.TestCase):
    def test_private_evhttp_structure_only_in_the_adapter(self):
        """http_struct.h and writes to evhttp_request fields appear only in
        gateway/evhttp_adapter.c."""
        offenders = []
        for path, text in sources():
            if path == "gateway/evhttp_adapter.c":
                continue
            if "event2/http_struct.h" in code_only(text):
                offenders.append(path + ": includes event2/http_struct.h")
            if re.search(r"\breq->(major|minor|type|chunked|flags|evcon|kind)\b", code_only(text)):
                offenders.append(path + ": touches a field of struct evhttp_request")
        self.assertEqual(offenders, [])

    def test_adapter_checks_the_libevent_version(self):
        text = open(os.path.join(GATEWAY_DIR, "evhttp_adapter.c"), encoding="utf-8").read()
        self.assertIn("LIBEVENT_VERSION_NUMBER", text)
        self.assertIn("#error", text)
        build = open(os.path.join(ROOT, "meson.build"), encoding="utf-8").read()
        self.assertRegex(build, r"dependency\('libevent',\s*version\s*:")

    def test_raw_socket_calls_on_client_sockets_only_in_the_adapter(self):
        """client_conn, txn and relay never send, dup, shutdown or reset a
        client socket themselves."""
        offenders = []
        for name in ("client_conn.c", "txn.c", "relay.c", "reply.c"):
            text = code_only(open(os.path.join(GATEWAY_DIR, name), encoding="utf-8").read())
            for call in ("send", "dup", "shutdown", "connect", "evbuffer_write", "write"):
                if re.search(r"(?<![\w>.])%s\s*\(" % call, text):
                    offenders.append("%s calls %s()" % (name, call))
            if "SO_LINGER" in text:
                offenders.append(name + " sets SO_LINGER")
        self.assertEqual(offenders, [])

    def test_client_conn_knows_neither_transactions_nor_the_server(self):
        inc = includes("gateway/client_conn.c") | includes("gateway/client_conn.h")
        self.assertNotIn("txn.h", inc)
        self.assertNotIn("server.h", inc)
        text = code_only(open(os.path.join(GATEWAY_DIR, "client_conn.c"), encoding="utf-8").read())
        self.assertNotRegex(text, r"\bgw_txn_\w+\s*\(")
        self.assertNotRegex(text, r"\bgw_server_\w+\s*\(")

    def test_pools_and_upstream_connections_do_not_reach_into_the_worker(self):
        for path in ("gateway/upstream/pool.c", "gateway/upstream/pool.h",
                     "gateway/upstream/upconn.c", "gateway/upstream/upconn.h"):
            self.assertNotIn("worker.h", includes(path), path)
            text = code_only(open(os.path.join(ROOT, path), encoding="utf-8").read())
            self.assertNotRegex(text, r"\bgw_worker\b", path)

    def test_transaction_calls_no_module_by_name(self):
        text = code_only(open(os.path.join(GATEWAY_DIR, "txn.c"), encoding="utf-8").read())
        for module in ("breaker", "retry", "hedge_", "shed", "rate_limit", "concurrency",
                       "flags_", "fallback"):
            self.assertNotRegex(text, r"\bgw_%s\w*\s*\(" % module, module)


if __name__ == "__main__":
    unittest.main()
