"""TLS keys and certificates for the integration tests, made at test time
with the `openssl` command (nothing secret is committed).

    from tlstest import TlsFiles

    tls = TlsFiles()                          # a fresh directory under the run's tmp_dir()
    ca = tls.ca()                             # a test CA (ECDSA P-256)
    srv = tls.server_cert(ca, dns=["localhost", "api.test"], ips=["127.0.0.1"],
                          key_type="rsa")     # RSA 2048, signed by ca
    ecdsa = tls.server_cert(ca, dns=["shop.test", "*.shop.test"])
    old = tls.expired_cert(ca, dns=["old.test"])
    cli = tls.client_cert(ca, "gateway")      # for mutual TLS
    stray = tls.other_key()                   # a key that matches no certificate

    # gateway config:   tls: {cert: srv.cert, key: srv.key}
    # curl:             curl --cacert ca.cert https://localhost:PORT/
    # upstream config:  tls: {ca: ca.cert, cert: cli.cert, key: cli.key}

Every method returns a Cert (or a path) whose files exist when it returns:

    Cert.cert   what a server or client presents: the certificate followed by
                its intermediates, if any (a full chain, as the gateway's
                `cert` expects)
    Cert.leaf   the certificate alone
    Cert.key    its private key, PEM, unencrypted (PKCS#8)
    Cert.ca     the root CA certificate to trust it with (its own path for a
                CA)
    Cert.name   its subject CN

Key types: "ec" (ECDSA P-256, the default) or "rsa" (RSA 2048; rsa_bits to
change). Validity: 30 days from one day ago by default; expired and
not-yet-valid certificates have fixed dates in the past (2020) and the
future (2099), so messages that print them are stable. Certificates are
signed with SHA-256 through `openssl ca` (the only OpenSSL 3.0 command that
takes explicit start and end dates) with a small database of its own in
the directory; a TlsFiles is for one thread (test modules running in
parallel each have their own).

`python3 tests/integration/tlstest.py` makes one of everything and checks
it with `openssl verify`.
"""

import datetime
import os
import shutil
import subprocess
import tempfile

OPENSSL = shutil.which("openssl") or "openssl"


class TlsError(AssertionError):
    pass


class Cert:
    """Paths of a certificate and its key (see the module's docstring)."""

    def __init__(self, cert, leaf, key, ca, name):
        self.cert = cert
        self.leaf = leaf
        self.key = key
        self.ca = ca
        self.name = name
        self.chain = []  # intermediates after the leaf in self.cert (internal)

    def __repr__(self):
        return "Cert(%r, cert=%r, key=%r)" % (self.name, self.cert, self.key)


def _utc(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


def _default_directory():
    try:
        import gwtest  # the run's temporary directory, removed by run.py
        return tempfile.mkdtemp(prefix="tls-", dir=gwtest.tmp_dir())
    except ImportError:
        return tempfile.mkdtemp(prefix="gw-tls-")


class TlsFiles:
    """A directory of test keys and certificates (see the module's docstring).

    directory: where the files go (created if needed); default a new
    directory under gwtest.tmp_dir() (or the system's temporary directory
    when gwtest cannot be imported)."""

    def __init__(self, directory=None):
        self.dir = directory or _default_directory()
        os.makedirs(os.path.join(self.dir, "newcerts"), exist_ok=True)
        self._count = 0
        self._write("index.txt", "")
        self._write("serial", "1000\n")
        self._write("ca.cnf", _CA_CONFIG % {"dir": self.dir})

    # ---- what tests call ------------------------------------------------

    def ca(self, name="gateway test CA", key_type="ec", rsa_bits=2048):
        """A self-signed root CA."""
        base = self._base(name)
        key = self._key(base, key_type, rsa_bits)
        cert = base + ".pem"
        self._run("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "3650",
                  "-subj", "/CN=" + name, "-config", self._req_config(),
                  "-extensions", "v3_ca", "-sha256")
        return Cert(cert, cert, key, cert, name)

    def intermediate(self, ca, name="gateway test intermediate", key_type="ec", rsa_bits=2048):
        """An intermediate CA signed by ca; certificates it signs carry it in
        their .cert (full chain)."""
        return self._issue(ca, name, key_type, rsa_bits, "v3_ca", "", None, None)

    def server_cert(self, ca, dns=(), ips=(), name=None, key_type="ec", rsa_bits=2048,
                    days=30, expired=False, not_yet_valid=False):
        """A server certificate (extendedKeyUsage serverAuth) for the DNS names
        and IP addresses given (its subjectAltName), signed by ca (a root or
        an intermediate). name: its CN, default the first DNS name or IP."""
        dns, ips = list(dns), list(ips)
        if not dns and not ips:
            raise TlsError("server_cert needs at least one DNS name or IP address")
        name = name or (dns + ips)[0]
        start, end = self._dates(days, expired, not_yet_valid)
        san = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
        return self._issue(ca, name, key_type, rsa_bits, "v3_server", san, start, end)

    def expired_cert(self, ca, dns=("expired.test",), ips=(), key_type="ec"):
        """A server certificate that expired on 2020-01-02 00:00:00 UTC."""
        return self.server_cert(ca, dns=dns, ips=ips, key_type=key_type, expired=True)

    def not_yet_valid_cert(self, ca, dns=("future.test",), ips=(), key_type="ec"):
        """A server certificate valid from 2099-01-01 00:00:00 UTC."""
        return self.server_cert(ca, dns=dns, ips=ips, key_type=key_type, not_yet_valid=True)

    def client_cert(self, ca, name="gateway client", key_type="ec", rsa_bits=2048, days=30):
        """A client certificate (extendedKeyUsage clientAuth), for mutual TLS."""
        start, end = self._dates(days, False, False)
        return self._issue(ca, name, key_type, rsa_bits, "v3_client", "", start, end)

    def other_key(self, key_type="ec", rsa_bits=2048):
        """Path of a private key that matches no certificate."""
        return self._key(self._base("stray-key"), key_type, rsa_bits)

    def bundle(self, *certs, name="bundle"):
        """Path of one PEM file holding the given certificate files (paths or
        Certs, their .cert), in order: a CA bundle, or a chain by hand."""
        path = self._base(name) + ".pem"
        with open(path, "w") as out:
            for c in certs:
                with open(c.cert if isinstance(c, Cert) else c) as f:
                    out.write(f.read())
        return path

    # ---- the openssl commands ---------------------------------------------

    def _run(self, *args):
        p = subprocess.run([OPENSSL] + list(args), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        if p.returncode != 0:
            raise TlsError("openssl %s failed: %s" % (" ".join(args), p.stderr.strip()))
        return p.stdout

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _base(self, name):
        """A fresh path prefix in the directory, named after name."""
        self._count += 1
        safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)
        return os.path.join(self.dir, "%02d-%s" % (self._count, safe))

    def _key(self, base, key_type, rsa_bits):
        path = base + ".key"
        if key_type == "ec":
            self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", path)
        elif key_type == "rsa":
            self._run("genpkey", "-algorithm", "RSA", "-pkeyopt",
                      "rsa_keygen_bits:%d" % rsa_bits, "-out", path)
        else:
            raise TlsError("key_type must be 'ec' or 'rsa', not %r" % (key_type,))
        os.chmod(path, 0o600)
        return path

    def _req_config(self):
        return self._write("req.cnf", _REQ_CONFIG)

    def _dates(self, days, expired, not_yet_valid):
        if expired and not_yet_valid:
            raise TlsError("a certificate cannot be both expired and not yet valid")
        if expired:
            return "20190101000000Z", "20200102000000Z"
        if not_yet_valid:
            return "20990101000000Z", "20991231000000Z"
        now = datetime.datetime.now(datetime.timezone.utc)
        return _utc(now - datetime.timedelta(days=1)), _utc(now + datetime.timedelta(days=days))

    def _issue(self, ca, name, key_type, rsa_bits, extensions, san, start, end):
        """A certificate for a new key, signed by ca with `openssl ca`."""
        base = self._base(name)
        key = self._key(base, key_type, rsa_bits)
        csr, leaf = base + ".csr", base + ".pem"
        self._run("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + name,
                  "-config", self._req_config())
        ext = self._write(os.path.basename(base) + ".ext",
                          _EXTENSIONS % {"san": ("subjectAltName = " + san) if san else "",
                                         "ku": "digitalSignature,keyEncipherment"
                                         if key_type == "rsa" else "digitalSignature"})
        if start is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            start, end = _utc(now - datetime.timedelta(days=1)), _utc(now + datetime.timedelta(days=3650))
        self._run("ca", "-batch", "-config", os.path.join(self.dir, "ca.cnf"),
                  "-cert", ca.leaf, "-keyfile", ca.key, "-in", csr, "-out", leaf,
                  "-startdate", start, "-enddate", end, "-extfile", ext,
                  "-extensions", extensions, "-notext", "-md", "sha256")
        c = Cert(leaf, leaf, key, ca.ca, name)
        c.chain = ([ca.leaf] if ca.leaf != ca.ca else []) + ca.chain
        if c.chain:
            c.cert = self.bundle(leaf, *c.chain, name=name + "-fullchain")
        return c


# `openssl ca`: a database of its own, any subject, the extensions from -extfile only.
_CA_CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = %(dir)s
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[policy_any]
commonName = supplied
"""

# `openssl req`: the subject comes from -subj; v3_ca for the root.
_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_EXTENSIONS = """\
[v3_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,%(ku)s
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
%(san)s

[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,%(ku)s
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _self_check():
    """Makes one of everything and checks it with `openssl verify`."""
    tmp = tempfile.mkdtemp(prefix="gw-tlstest-")
    try:
        tls = TlsFiles(tmp)
        ca = tls.ca()
        inter = tls.intermediate(ca)
        made = {
            "rsa": tls.server_cert(ca, dns=["localhost"], ips=["127.0.0.1", "::1"], key_type="rsa"),
            "ecdsa": tls.server_cert(ca, dns=["shop.test", "*.shop.test"]),
            "chained": tls.server_cert(inter, dns=["chained.test"]),
            "client": tls.client_cert(ca),
        }
        for what, c in made.items():
            out = tls._run("verify", "-CAfile", ca.cert, "-untrusted", c.cert, c.leaf)
            assert out.strip().endswith(": OK"), (what, out)
            pub_cert = tls._run("x509", "-in", c.leaf, "-noout", "-pubkey")
            pub_key = tls._run("pkey", "-in", c.key, "-pubout")
            assert pub_cert == pub_key, what
        text = tls._run("x509", "-in", made["rsa"].leaf, "-noout", "-text")
        assert "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" in text, text
        assert "Public-Key: (2048 bit)" in text and "TLS Web Server Authentication" in text
        assert "prime256v1" in tls._run("x509", "-in", made["ecdsa"].leaf, "-noout", "-text")
        assert open(made["chained"].cert).read().count("BEGIN CERTIFICATE") == 2
        old = tls.expired_cert(ca)
        assert "notAfter=Jan  2 00:00:00 2020 GMT" in tls._run(
            "x509", "-in", old.leaf, "-noout", "-enddate")
        future = tls.not_yet_valid_cert(ca)
        assert "notBefore=Jan  1 00:00:00 2099 GMT" in tls._run(
            "x509", "-in", future.leaf, "-noout", "-startdate")
        stray = tls.other_key()
        assert tls._run("pkey", "-in", stray, "-pubout") != tls._run(
            "pkey", "-in", made["ecdsa"].key, "-pubout")
        print("tlstest: ok (%s)" % ", ".join(sorted(made)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    _self_check()
