/*
 * tls_loadgen: TLS handshake and keep-alive request rates against one HTTPS
 * server on loopback, with OpenSSL directly (no libevent, no HTTP library).
 *
 *   tls_loadgen --connect 127.0.0.1:PORT --mode full|resumed|keepalive
 *               [--connections N] [--threads T] [--duration D] [--warmup W]
 *               [--path P] [--tls 1.2|1.3] [--no-request] [--server-pid PID]...
 *               [--json FILE] [--check]
 *
 * Closed loop: N connection slots (spread over T threads, one epoll loop
 * each, edge-triggered, non-blocking sockets with OpenSSL's socket BIO), each
 * running one operation after the other as fast as the server answers:
 *
 *   full       a new TCP connection, a full handshake (the client offers no
 *              session), one "GET P" with "Connection: close", the whole
 *              response read, close_notify, close. One operation = one
 *              connection.
 *   resumed    the same, offering the session ticket the server sent on the
 *              slot's previous connection (TLS 1.3: a NewSessionTicket, PSK
 *              with (EC)DHE, so the key exchange still runs and only the
 *              certificate and its signature are skipped; TLS 1.2: an RFC
 *              5077 ticket, no key exchange at all). A handshake that was
 *              not resumed (SSL_session_reused() == 0) is counted as an
 *              error "not_resumed", not as an operation. Each slot's first
 *              connection (no ticket yet) only primes it: not counted.
 *   keepalive  N connections opened once (handshakes during the warm-up),
 *              then "GET P" after "GET P" on each, one in flight at a time.
 *              One operation = one request.
 *
 * --no-request (full, resumed): the handshake only, then close_notify and
 * close, no HTTP. With TLS 1.3 the client's handshake ends when it has sent
 * its Finished, before the server has read it: the client then waits for the
 * server's first session ticket (sent once the server has read that
 * Finished), so a server that sends no ticket cannot be measured this way.
 * The default (one request) proves the server completed the handshake and
 * could use the connection.
 *
 * Operations are counted when they end within the measured window (after
 * the warm-up, for the duration); the rate is those divided by the window.
 * Latency: full/resumed, connect() to the last byte of the response (also
 * "handshake_ms": connect() to the end of the client's handshake); keepalive,
 * first byte of the request written to the last byte of the response.
 *
 * Whether the client or the server was the bottleneck is measured, not
 * assumed: the client's own CPU time (getrusage) and, with --server-pid, the
 * server's (the sum of /proc/PID/task/TID/schedstat run times, nanoseconds)
 * over the window, as utilisation and as CPU microseconds per operation, and
 * the busy share of every CPU (/proc/stat).
 *
 * --check: one full connection and one request, then the peer's protocol,
 * cipher, group, signature, certificate (key type, bits, SHA-256
 * fingerprint); exit 0 only if it got a 2xx.
 *
 * Output: one JSON object on stdout (and in --json FILE). Loopback only: the
 * address must be in 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define NS_PER_US    1000ull
#define NS_PER_MS    1000000ull
#define NS_PER_S     1000000000ull
#define RBUF_SIZE    16384
#define MAX_EVENTS   256
#define MAX_PIDS     64
#define MAX_CPUS     64
#define SCAN_NS      (20 * NS_PER_MS)
#define RETRY_NS     (10 * NS_PER_MS) /* after a failed connect() */
#define CHECK_MAX_NS (5 * NS_PER_S)

/* ---------------------------------------------------------------------- */
/* Latency histogram (microseconds, log-linear)                           */
/* ---------------------------------------------------------------------- */

/*
 * Values below 256 us get a bucket each; above, each power of two is split
 * into 128 buckets (at most 0.8% wide). 2^36 us is the cap.
 */
#define H_EXACT   256u
#define H_SUB     128u
#define H_MAX_EXP 36u
#define H_BUCKETS (H_EXACT + (H_MAX_EXP - 8u) * H_SUB)

struct hist {
	uint64_t count, max_us, sum_us;
	uint64_t b[H_BUCKETS];
};

static unsigned hist_index(uint64_t us)
{
	unsigned msb, shift;

	if (us < H_EXACT)
		return (unsigned)us;
	if (us >= (1ull << H_MAX_EXP))
		return H_BUCKETS - 1;
	msb = 63u - (unsigned)__builtin_clzll(us); /* >= 8 */
	shift = msb - 7u;
	return H_EXACT + (msb - 8u) * H_SUB + (unsigned)((us >> shift) - H_SUB);
}

static uint64_t hist_high(unsigned idx)
{
	unsigned k, msb, shift;

	if (idx < H_EXACT)
		return idx;
	k = idx - H_EXACT;
	msb = k / H_SUB + 8u;
	shift = msb - 7u;
	return ((uint64_t)(H_SUB + k % H_SUB + 1u) << shift) - 1u;
}

static void hist_record(struct hist *h, uint64_t ns)
{
	uint64_t us = ns / NS_PER_US;

	h->b[hist_index(us)]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

static void hist_add(struct hist *d, const struct hist *s)
{
	d->count += s->count;
	d->sum_us += s->sum_us;
	if (s->max_us > d->max_us)
		d->max_us = s->max_us;
	for (unsigned i = 0; i < H_BUCKETS; i++)
		d->b[i] += s->b[i];
}

static double hist_pct_ms(const struct hist *h, double p)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = hist_high(i);
			return (double)(v > h->max_us ? h->max_us : v) / 1000.0;
		}
	}
	return (double)h->max_us / 1000.0;
}

/* ---------------------------------------------------------------------- */
/* Options, shared state                                                  */
/* ---------------------------------------------------------------------- */

enum mode { MODE_FULL, MODE_RESUMED, MODE_KEEPALIVE };
static const char *const mode_names[] = {"full", "resumed", "keepalive"};

enum err_kind {
	E_CONNECT,     /* connect() failed */
	E_HANDSHAKE,   /* the TLS handshake failed */
	E_NOT_RESUMED, /* resumed mode: the server did a full handshake */
	E_STATUS,      /* an answer that is not 2xx */
	E_PARSE,       /* a response we could not parse (or unsolicited bytes) */
	E_CLOSED,      /* the server closed or reset before the response ended */
	E_TIMEOUT,     /* an operation took longer than --timeout */
	E_COUNT
};
static const char *const err_names[] = {"connect", "handshake", "not_resumed", "status",
                                        "parse",   "closed",    "timeout"};

static struct {
	struct sockaddr_in addr;
	const char *target;
	enum mode mode;
	int connections, threads, tls13;
	bool request, check;
	double duration_s, warmup_s, timeout_s;
	const char *path, *sni, *alpn, *groups, *json_path;
	pid_t pids[MAX_PIDS];
	int npids;
	char req[512];
	size_t req_len;
	unsigned char alpn_wire[64];
	unsigned alpn_len;
	/* the clock */
	uint64_t t0, t_begin, t_end;
	atomic_bool stop;
} g;

struct peer_info {
	bool have;
	char protocol[32], cipher[64], group[32], sig[48], key_type[32], alpn[32];
	char fingerprint[100];
	int key_bits;
};

struct thread;

enum state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_TICKET, ST_WRITE, ST_READ };

struct slot {
	struct thread *th;
	enum state state;
	int fd;
	SSL *ssl;
	SSL_SESSION *sess;  /* resumed: the latest session (ticket) the server sent */
	bool offered;       /* resumed: this connection offered a session */
	bool not_resumed;   /* ... and the server did not accept it */
	bool hs_done;       /* the handshake completed on this connection */
	bool conn_close;    /* the response said Connection: close */
	bool got_ticket;    /* a session ticket arrived on this connection */
	uint64_t t_conn;    /* connect() time of this connection */
	uint64_t t_op;      /* start of the current operation */
	uint64_t retry_at;  /* ST_IDLE: when to connect again */
	size_t req_off;     /* bytes of the request written */
	size_t len;         /* bytes in buf (head not complete yet) */
	bool head_done;     /* the response head was parsed */
	uint64_t body_left; /* body bytes still to read */
	int status;
	char buf[RBUF_SIZE];
};

struct thread {
	pthread_t tid;
	int ep;
	SSL_CTX *ctx;
	struct slot *slots;
	int nslots;
	/* counters: in the window, and outside it (warm-up) */
	uint64_t ops, errors[E_COUNT], errors_outside, ops_outside, reconnects, primed;
	struct hist lat, hs;
	struct peer_info peer;
	char first_error[256];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static bool in_window(uint64_t t)
{
	return t >= g.t_begin && t < g.t_end;
}

/* ---------------------------------------------------------------------- */
/* One connection slot                                                    */
/* ---------------------------------------------------------------------- */

static void slot_start(struct slot *s);
static void drive(struct slot *s, uint32_t events);

static void note_error(struct thread *th, const char *what)
{
	unsigned long e;
	char ebuf[200];

	if (th->first_error[0])
		return;
	e = ERR_peek_last_error();
	if (e) {
		ERR_error_string_n(e, ebuf, sizeof ebuf);
		snprintf(th->first_error, sizeof th->first_error, "%s: %s", what, ebuf);
	} else {
		snprintf(th->first_error, sizeof th->first_error, "%s%s%s", what, errno ? ": " : "",
		         errno ? strerror(errno) : "");
	}
}

static void slot_close(struct slot *s, bool graceful)
{
	if (s->ssl) {
		if (graceful && s->hs_done)
			SSL_shutdown(s->ssl); /* our close_notify; the peer's is not awaited */
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	ERR_clear_error();
	s->state = ST_IDLE;
}

static void slot_fail(struct slot *s, enum err_kind k, const char *what)
{
	struct thread *th = s->th;
	uint64_t now = now_ns();

	note_error(th, what);
	if (in_window(now))
		th->errors[k]++;
	else
		th->errors_outside++;
	slot_close(s, false);
	if (g.check) {
		atomic_store(&g.stop, true);
		return;
	}
	if (k == E_CONNECT) {
		s->retry_at = now + RETRY_NS;
		return;
	}
	slot_start(s);
}

static void record_peer(struct slot *s)
{
	struct peer_info *p = &s->th->peer;
	X509 *cert;
	int nid;
	const unsigned char *alpn;
	unsigned alpn_len;

	if (p->have)
		return;
	p->have = true;
	snprintf(p->protocol, sizeof p->protocol, "%s", SSL_get_version(s->ssl));
	snprintf(p->cipher, sizeof p->cipher, "%s", SSL_get_cipher_name(s->ssl));
	nid = SSL_get_negotiated_group(s->ssl);
	snprintf(p->group, sizeof p->group, "%s", nid > 0 ? OBJ_nid2sn(nid & 0xffff) : "none");
	if (SSL_get_peer_signature_type_nid(s->ssl, &nid) && nid != NID_undef) {
		int hash = NID_undef;
		SSL_get_peer_signature_nid(s->ssl, &hash);
		snprintf(p->sig, sizeof p->sig, "%s+%s", OBJ_nid2sn(nid),
		         hash != NID_undef ? OBJ_nid2sn(hash) : "?");
	} else {
		snprintf(p->sig, sizeof p->sig, "none");
	}
	SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
	snprintf(p->alpn, sizeof p->alpn, "%.*s", (int)alpn_len,
	         alpn_len ? (const char *)alpn : "");
	cert = SSL_get0_peer_certificate(s->ssl);
	if (cert) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		EVP_PKEY *pk = X509_get0_pubkey(cert);
		if (pk) {
			snprintf(p->key_type, sizeof p->key_type, "%s",
			         EVP_PKEY_get0_type_name(pk));
			p->key_bits = EVP_PKEY_get_bits(pk);
		}
		if (X509_digest(cert, EVP_sha256(), md, &mdlen)) {
			for (unsigned i = 0; i < mdlen && 3 * i + 3 < sizeof p->fingerprint; i++)
				sprintf(p->fingerprint + 3 * i, "%02X%s", md[i],
				        i + 1 < mdlen ? ":" : "");
		}
	}
}

/* An operation ended well: count it, then go on. Returns true if the slot
 * was restarted (the caller must stop driving it). */
static bool op_done(struct slot *s)
{
	struct thread *th = s->th;
	uint64_t now = now_ns();
	bool count = true;

	if (g.mode == MODE_RESUMED && !s->offered) {
		th->primed++; /* the slot's first connection: no ticket to offer yet */
		count = false;
	} else if (s->not_resumed) {
		if (in_window(now))
			th->errors[E_NOT_RESUMED]++;
		else
			th->errors_outside++;
		if (!th->first_error[0])
			snprintf(th->first_error, sizeof th->first_error,
			         "the server did not resume the offered session");
		count = false;
	}
	if (count) {
		if (in_window(now)) {
			th->ops++;
			hist_record(&th->lat, now - s->t_op);
		} else {
			th->ops_outside++;
		}
	}
	if (g.check) {
		slot_close(s, true);
		atomic_store(&g.stop, true);
		return true;
	}
	if (g.mode == MODE_KEEPALIVE && !s->conn_close) {
		s->state = ST_WRITE;
		s->req_off = 0;
		s->t_op = now;
		return false;
	}
	if (g.mode == MODE_KEEPALIVE)
		th->reconnects++;
	slot_close(s, true);
	slot_start(s);
	return true;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct slot *s = SSL_get_app_data(ssl);

	if (!s)
		return 0;
	s->got_ticket = true;
	if (g.mode != MODE_RESUMED)
		return 0; /* full mode: tickets are never offered */
	if (s->sess)
		SSL_SESSION_free(s->sess);
	s->sess = sess; /* we keep the reference */
	return 1;
}

static void slot_start(struct slot *s)
{
	struct thread *th = s->th;
	struct epoll_event ev;
	int one = 1, r;

	s->t_conn = s->t_op = now_ns();
	s->offered = s->not_resumed = s->hs_done = s->conn_close = s->got_ticket = false;
	s->req_off = 0;
	s->len = 0;
	s->head_done = false;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		slot_fail(s, E_CONNECT, "socket");
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	r = connect(s->fd, (const struct sockaddr *)&g.addr, sizeof g.addr);
	if (r < 0 && errno != EINPROGRESS) {
		slot_fail(s, E_CONNECT, "connect");
		return;
	}
	s->ssl = SSL_new(th->ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, s->fd)) {
		slot_fail(s, E_HANDSHAKE, "SSL_new");
		return;
	}
	SSL_set_app_data(s->ssl, s);
	SSL_set_connect_state(s->ssl);
	if (g.sni[0])
		SSL_set_tlsext_host_name(s->ssl, g.sni);
	if (g.mode == MODE_RESUMED && s->sess) {
		SSL_set_session(s->ssl, s->sess);
		s->offered = true;
	}
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	ev.data.ptr = s;
	if (epoll_ctl(th->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		slot_fail(s, E_CONNECT, "epoll_ctl");
		return;
	}
	s->state = r == 0 ? ST_HANDSHAKE : ST_CONNECTING;
	if (r == 0)
		drive(s, EPOLLOUT);
}

/* Parses a complete response head in s->buf[0..hlen). */
static bool parse_head(struct slot *s, size_t hlen)
{
	const char *p = s->buf, *end = s->buf + hlen, *line, *eol;
	bool have_cl = false;
	uint64_t cl = 0;

	if (hlen < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return false;
	if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return false;
	s->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	s->conn_close = p[7] == '0';
	line = memchr(p, '\n', hlen);
	while (line && ++line < end) {
		eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		size_t n = (size_t)(eol - line);
		if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
			const char *v = line + 15;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v < '0' || *v > '9')
				return false;
			cl = 0;
			while (*v >= '0' && *v <= '9')
				cl = cl * 10 + (uint64_t)(*v++ - '0');
			have_cl = true;
		} else if (n > 11 && strncasecmp(line, "connection:", 11) == 0) {
			for (const char *v = line + 11; v + 5 <= eol; v++)
				if (strncasecmp(v, "close", 5) == 0)
					s->conn_close = true;
		} else if (n > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
			return false; /* the upstream stub sends Content-Length */
		}
		line = eol;
	}
	if (!have_cl) {
		if (s->status == 204 || s->status == 304 || s->status < 200)
			cl = 0;
		else
			return false;
	}
	s->body_left = cl;
	return true;
}

/* Runs the slot's state machine until OpenSSL wants the socket. */
static void drive(struct slot *s, uint32_t events)
{
	struct thread *th = s->th;
	int r, e;

	for (;;) {
		switch (s->state) {
		case ST_IDLE:
			return;
		case ST_CONNECTING: {
			int err = 0;
			socklen_t l = sizeof err;
			getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (err || (events & (EPOLLERR | EPOLLHUP))) {
				errno = err;
				slot_fail(s, E_CONNECT, "connect");
				return;
			}
			if (!(events & EPOLLOUT))
				return;
			s->state = ST_HANDSHAKE;
			break;
		}
		case ST_HANDSHAKE:
			ERR_clear_error();
			r = SSL_connect(s->ssl);
			if (r != 1) {
				e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				slot_fail(s, E_HANDSHAKE, "handshake");
				return;
			}
			s->hs_done = true;
			if (g.mode != MODE_KEEPALIVE && in_window(now_ns()))
				hist_record(&th->hs, now_ns() - s->t_conn);
			if (s->offered && !SSL_session_reused(s->ssl))
				s->not_resumed = true;
			record_peer(s);
			if (g.mode == MODE_KEEPALIVE) {
				s->t_op = now_ns(); /* requests are timed from their write */
			} else if (!g.request) {
				if (g.tls13 && !s->got_ticket) {
					s->state = ST_TICKET;
					break;
				}
				op_done(s);
				return;
			}
			s->state = ST_WRITE;
			break;
		case ST_TICKET:
			/* --no-request with TLS 1.3: the server sends its tickets
			 * once it has read our Finished; the first one ends the
			 * operation (and is the next session, in resumed mode). */
			ERR_clear_error();
			r = SSL_read(s->ssl, s->buf, (int)sizeof s->buf);
			if (s->got_ticket) {
				op_done(s);
				return;
			}
			if (r > 0) {
				errno = 0;
				slot_fail(s, E_PARSE, "data before any session ticket");
				return;
			}
			e = SSL_get_error(s->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			slot_fail(s, E_CLOSED, "closed before sending a session ticket");
			return;
		case ST_WRITE:
			ERR_clear_error();
			r = SSL_write(s->ssl, g.req + s->req_off, (int)(g.req_len - s->req_off));
			if (r <= 0) {
				e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				slot_fail(s, E_CLOSED, "write");
				return;
			}
			s->req_off += (size_t)r;
			if (s->req_off < g.req_len)
				break;
			s->state = ST_READ;
			s->len = 0;
			s->head_done = false;
			break;
		case ST_READ:
			ERR_clear_error();
			if (!s->head_done) {
				if (s->len == sizeof s->buf) {
					slot_fail(s, E_PARSE, "response head too large");
					return;
				}
				r = SSL_read(s->ssl, s->buf + s->len,
				             (int)(sizeof s->buf - s->len));
			} else {
				r = SSL_read(s->ssl, s->buf, (int)sizeof s->buf);
			}
			if (r <= 0) {
				e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				slot_fail(s, E_CLOSED, "read");
				return;
			}
			if (!s->head_done) {
				size_t old = s->len, from = old > 3 ? old - 3 : 0;
				char *h;
				s->len += (size_t)r;
				h = memmem(s->buf + from, s->len - from, "\r\n\r\n", 4);
				if (!h)
					break;
				size_t hlen = (size_t)(h - s->buf) + 4;
				if (!parse_head(s, hlen)) {
					slot_fail(s, E_PARSE, "response head");
					return;
				}
				s->head_done = true;
				r = (int)(s->len - hlen); /* body bytes in this read */
			}
			if ((uint64_t)r > s->body_left) {
				slot_fail(s, E_PARSE, "bytes after the response");
				return;
			}
			s->body_left -= (uint64_t)r;
			if (s->body_left > 0)
				break;
			if (s->status < 200 || s->status > 299) {
				char what[64];
				snprintf(what, sizeof what, "status %d", s->status);
				errno = 0;
				slot_fail(s, E_STATUS, what);
				return;
			}
			if (op_done(s))
				return;
			break;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Threads                                                                */
/* ---------------------------------------------------------------------- */

static int skip_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

static SSL_CTX *make_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int v = g.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_max_proto_version(ctx, v);
	/* No chain building or verification (a self-signed test certificate;
	 * OpenSSL would build the chain even with SSL_VERIFY_NONE and ignore
	 * the result): client CPU the server does not spend. The client still
	 * checks the server's handshake signature (CertificateVerify), as the
	 * protocol requires. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, skip_chain, NULL);
	/* Tickets go to new_session_cb (kept per slot in resumed mode, only
	 * noticed otherwise), never to OpenSSL's internal client cache; full
	 * mode never offers a session. */
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	if (g.alpn_len && SSL_CTX_set_alpn_protos(ctx, g.alpn_wire, g.alpn_len) != 0)
		goto fail;
	if (g.groups && !SSL_CTX_set1_groups_list(ctx, g.groups))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void *thread_main(void *arg)
{
	struct thread *th = arg;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t next_scan = 0, timeout_ns = (uint64_t)(g.timeout_s * (double)NS_PER_S);

	for (int i = 0; i < th->nslots; i++)
		slot_start(&th->slots[i]);
	while (!atomic_load_explicit(&g.stop, memory_order_relaxed)) {
		uint64_t now = now_ns();
		int n, ms;

		if (now >= g.t_end)
			break;
		if (now >= next_scan) {
			for (int i = 0; i < th->nslots; i++) {
				struct slot *s = &th->slots[i];
				if (s->state == ST_IDLE) {
					if (now >= s->retry_at)
						slot_start(s);
				} else if (now - s->t_op > timeout_ns) {
					errno = ETIMEDOUT;
					slot_fail(s, E_TIMEOUT, "timeout");
				}
			}
			next_scan = now + SCAN_NS;
		}
		ms = (int)((next_scan - now + NS_PER_MS - 1) / NS_PER_MS);
		if (now + (uint64_t)ms * NS_PER_MS > g.t_end)
			ms = (int)((g.t_end - now + NS_PER_MS - 1) / NS_PER_MS);
		n = epoll_wait(th->ep, evs, MAX_EVENTS, ms);
		for (int i = 0; i < n; i++)
			drive(evs[i].data.ptr, evs[i].events);
	}
	for (int i = 0; i < th->nslots; i++) {
		slot_close(&th->slots[i], false);
		if (th->slots[i].sess)
			SSL_SESSION_free(th->slots[i].sess);
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* CPU accounting                                                         */
/* ---------------------------------------------------------------------- */

/* Run time of every thread of PID, nanoseconds (schedstat; falls back to
 * utime + stime in clock ticks). -1 if the process is gone. */
static int64_t proc_cpu_ns(pid_t pid)
{
	char path[64], buf[512];
	DIR *d;
	struct dirent *de;
	int64_t total = 0;
	bool any = false;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;
		unsigned long long run;
		if (de->d_name[0] == '.')
			continue;
		snprintf(buf, sizeof buf, "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
		f = fopen(buf, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &run) == 1) {
			total += (int64_t)run;
			any = true;
		}
		fclose(f);
	}
	closedir(d);
	if (!any) {
		FILE *f;
		unsigned long ut = 0, st = 0;
		char *p;
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (!f)
			return -1;
		if (!fgets(buf, sizeof buf, f)) {
			fclose(f);
			return -1;
		}
		fclose(f);
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		                 &st) != 2)
			return -1;
		total = (int64_t)((ut + st) * (NS_PER_S / (unsigned long)sysconf(_SC_CLK_TCK)));
	}
	return total;
}

struct sample {
	uint64_t t;
	int64_t server_ns; /* -1: a server process was gone */
	uint64_t client_ns;
	int ncpu;
	unsigned long long busy[MAX_CPUS], total[MAX_CPUS];
};

static void take_sample(struct sample *sm)
{
	struct rusage ru;
	FILE *f;
	char line[512];

	sm->t = now_ns();
	sm->server_ns = 0;
	for (int i = 0; i < g.npids; i++) {
		int64_t v = proc_cpu_ns(g.pids[i]);
		if (v < 0) {
			sm->server_ns = -1;
			break;
		}
		sm->server_ns += v;
	}
	getrusage(RUSAGE_SELF, &ru);
	sm->client_ns =
	    (uint64_t)ru.ru_utime.tv_sec * NS_PER_S + (uint64_t)ru.ru_utime.tv_usec * NS_PER_US +
	    (uint64_t)ru.ru_stime.tv_sec * NS_PER_S + (uint64_t)ru.ru_stime.tv_usec * NS_PER_US;
	sm->ncpu = 0;
	f = fopen("/proc/stat", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f) && sm->ncpu < MAX_CPUS) {
		unsigned long long v[10] = {0}, tot = 0;
		int cpu;
		if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
			continue;
		if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
		           &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5)
			continue;
		for (int i = 0; i < 8; i++)
			tot += v[i];
		sm->total[sm->ncpu] = tot;
		sm->busy[sm->ncpu] = tot - v[3] - v[4]; /* minus idle and iowait */
		sm->ncpu++;
	}
	fclose(f);
}

static void sleep_until(uint64_t t)
{
	while (!atomic_load(&g.stop)) {
		uint64_t now = now_ns();
		struct timespec ts;
		uint64_t d;
		if (now >= t)
			return;
		d = t - now;
		if (d > 50 * NS_PER_MS)
			d = 50 * NS_PER_MS; /* so --check can stop early */
		ts.tv_sec = (time_t)(d / NS_PER_S);
		ts.tv_nsec = (long)(d % NS_PER_S);
		nanosleep(&ts, NULL);
	}
}

/* ---------------------------------------------------------------------- */
/* Output                                                                 */
/* ---------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f,
	        "  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
	        "\"p99.9\": %.3f, \"max\": %.3f, \"mean\": %.3f},\n",
	        name, h->count, hist_pct_ms(h, 50), hist_pct_ms(h, 90), hist_pct_ms(h, 99),
	        hist_pct_ms(h, 99.9), (double)h->max_us / 1000.0,
	        h->count ? (double)h->sum_us / (double)h->count / 1000.0 : 0.0);
}

static void print_json(FILE *f, struct thread *ths, const struct sample *a, const struct sample *b)
{
	static struct hist lat, hs;
	uint64_t ops = 0, errs[E_COUNT] = {0}, err_total = 0, outside = 0, ops_outside = 0,
	         reconnects = 0, primed = 0;
	const struct peer_info *peer = NULL;
	const char *first_error = "";
	double win = (double)(b->t - a->t) / (double)NS_PER_S;
	double client_s = (double)(b->client_ns - a->client_ns) / (double)NS_PER_S;

	memset(&lat, 0, sizeof lat);
	memset(&hs, 0, sizeof hs);
	for (int i = 0; i < g.threads; i++) {
		struct thread *th = &ths[i];
		ops += th->ops;
		ops_outside += th->ops_outside;
		for (int k = 0; k < E_COUNT; k++)
			errs[k] += th->errors[k];
		outside += th->errors_outside;
		reconnects += th->reconnects;
		primed += th->primed;
		hist_add(&lat, &th->lat);
		hist_add(&hs, &th->hs);
		if (!peer && th->peer.have)
			peer = &th->peer;
		if (!first_error[0] && th->first_error[0])
			first_error = th->first_error;
	}
	for (int k = 0; k < E_COUNT; k++)
		err_total += errs[k];
	if (win <= 0)
		win = 1e-9;

	fprintf(f, "{\n  \"tool\": \"tls_loadgen\",\n  \"target\": ");
	json_str(f, g.target);
	fprintf(f, ",\n  \"mode\": \"%s\",\n  \"check\": %s,\n  \"request\": %s,\n  \"path\": ",
	        mode_names[g.mode], g.check ? "true" : "false", g.request ? "true" : "false");
	json_str(f, g.path);
	fprintf(f,
	        ",\n  \"tls\": \"%s\",\n  \"connections\": %d,\n  \"threads\": %d,\n"
	        "  \"warmup_s\": %.3f,\n  \"window_s\": %.3f,\n",
	        g.tls13 ? "1.3" : "1.2", g.connections, g.threads, g.warmup_s, win);
	fprintf(f, "  \"ops\": %" PRIu64 ",\n  \"rate\": %.1f,\n", ops, (double)ops / win);
	fprintf(f, "  \"errors\": {\"total\": %" PRIu64, err_total);
	for (int k = 0; k < E_COUNT; k++)
		fprintf(f, ", \"%s\": %" PRIu64, err_names[k], errs[k]);
	fprintf(f,
	        "},\n  \"errors_outside_window\": %" PRIu64 ",\n  \"ops_outside_window\": %" PRIu64
	        ",\n  \"reconnects\": %" PRIu64 ",\n  \"primed\": %" PRIu64 ",\n",
	        outside, ops_outside, reconnects, primed);
	json_hist(f, "latency_ms", &lat);
	if (g.mode != MODE_KEEPALIVE)
		json_hist(f, "handshake_ms", &hs);
	fprintf(f, "  \"client_cpu\": {\"seconds\": %.4f, \"util\": %.3f, \"us_per_op\": %.2f},\n",
	        client_s, client_s / win, ops ? client_s * 1e6 / (double)ops : 0.0);
	if (g.npids) {
		fprintf(f, "  \"server_cpu\": {\"pids\": [");
		for (int i = 0; i < g.npids; i++)
			fprintf(f, "%s%d", i ? ", " : "", (int)g.pids[i]);
		if (a->server_ns < 0 || b->server_ns < 0) {
			fprintf(f, "], \"error\": \"a server process was gone\"},\n");
		} else {
			double s = (double)(b->server_ns - a->server_ns) / (double)NS_PER_S;
			fprintf(f, "], \"seconds\": %.4f, \"util\": %.3f, \"us_per_op\": %.2f},\n",
			        s, s / win, ops ? s * 1e6 / (double)ops : 0.0);
		}
	}
	fprintf(f, "  \"cpu_busy\": [");
	for (int i = 0; i < a->ncpu && i < b->ncpu; i++) {
		unsigned long long dt = b->total[i] - a->total[i], db = b->busy[i] - a->busy[i];
		fprintf(f, "%s%.3f", i ? ", " : "", dt ? (double)db / (double)dt : 0.0);
	}
	fprintf(f, "],\n  \"peer\": ");
	if (peer) {
		fprintf(f, "{\"protocol\": ");
		json_str(f, peer->protocol);
		fprintf(f, ", \"cipher\": ");
		json_str(f, peer->cipher);
		fprintf(f, ", \"group\": ");
		json_str(f, peer->group);
		fprintf(f, ", \"signature\": ");
		json_str(f, peer->sig);
		fprintf(f, ", \"alpn\": ");
		json_str(f, peer->alpn);
		fprintf(f, ", \"key_type\": ");
		json_str(f, peer->key_type);
		fprintf(f, ", \"key_bits\": %d, \"cert_sha256\": ", peer->key_bits);
		json_str(f, peer->fingerprint);
		fprintf(f, "}");
	} else {
		fprintf(f, "null");
	}
	fprintf(f, ",\n  \"first_error\": ");
	json_str(f, first_error);
	fprintf(f, "\n}\n");
}

/* ---------------------------------------------------------------------- */
/* main                                                                   */
/* ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: tls_loadgen --connect 127.0.0.1:PORT --mode full|resumed|keepalive [options]\n"
	    "  --connections N   concurrent connections (32)\n"
	    "  --threads T       client threads, one epoll loop each (1)\n"
	    "  --duration D      measured seconds (5; fractions allowed)\n"
	    "  --warmup W        seconds before the measurement (1)\n"
	    "  --timeout S       an operation longer than S seconds is an error (5)\n"
	    "  --path P          request path (/small)\n"
	    "  --tls V           1.3 (default) or 1.2, the only version offered\n"
	    "  --no-request      full/resumed: the handshake only, no HTTP request\n"
	    "  --sni NAME        server name sent (localhost; \"\" for none)\n"
	    "  --alpn LIST       comma-separated ALPN offer (http/1.1; \"\" for none)\n"
	    "  --groups LIST     key exchange groups offered (OpenSSL's default)\n"
	    "  --server-pid PID  measure this process's CPU time too (repeatable)\n"
	    "  --json FILE       write the JSON result to FILE too\n"
	    "  --check           one full connection and one request; exit 0 on a 2xx\n");
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < 0)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct thread *ths;
	struct sample a, b;
	const char *tls = "1.3", *mode = NULL;
	char host[64];
	int port;

	g.connections = 32;
	g.threads = 1;
	g.duration_s = 5;
	g.warmup_s = 1;
	g.timeout_s = 5;
	g.path = "/small";
	g.sni = "localhost";
	g.alpn = "http/1.1";
	g.request = true;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true;
		if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(o, "--no-request") == 0) {
			g.request = false;
			continue;
		} else if (strcmp(o, "--check") == 0) {
			g.check = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "tls_loadgen: %s needs a value\n", o);
			return 2;
		}
		i++;
		if (strcmp(o, "--connect") == 0)
			g.target = v;
		else if (strcmp(o, "--mode") == 0)
			mode = v;
		else if (strcmp(o, "--connections") == 0)
			ok = (g.connections = atoi(v)) >= 1 && g.connections <= 100000;
		else if (strcmp(o, "--threads") == 0)
			ok = (g.threads = atoi(v)) >= 1 && g.threads <= 64;
		else if (strcmp(o, "--duration") == 0)
			ok = parse_double(v, &g.duration_s) && g.duration_s > 0;
		else if (strcmp(o, "--warmup") == 0)
			ok = parse_double(v, &g.warmup_s);
		else if (strcmp(o, "--timeout") == 0)
			ok = parse_double(v, &g.timeout_s) && g.timeout_s > 0;
		else if (strcmp(o, "--path") == 0)
			ok = (g.path = v)[0] == '/' && strlen(v) < 200 && !strpbrk(v, " \r\n");
		else if (strcmp(o, "--tls") == 0)
			tls = v;
		else if (strcmp(o, "--sni") == 0)
			g.sni = v;
		else if (strcmp(o, "--alpn") == 0)
			g.alpn = v;
		else if (strcmp(o, "--groups") == 0)
			g.groups = v;
		else if (strcmp(o, "--json") == 0)
			g.json_path = v;
		else if (strcmp(o, "--server-pid") == 0)
			ok = g.npids < MAX_PIDS && (g.pids[g.npids++] = atoi(v)) > 0;
		else {
			fprintf(stderr, "tls_loadgen: unknown option %s\n", o);
			usage(stderr);
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "tls_loadgen: bad value for %s: %s\n", o, v);
			return 2;
		}
	}
	if (!g.target || (!mode && !g.check)) {
		usage(stderr);
		return 2;
	}
	if (!mode || strcmp(mode, "full") == 0)
		g.mode = MODE_FULL;
	else if (strcmp(mode, "resumed") == 0)
		g.mode = MODE_RESUMED;
	else if (strcmp(mode, "keepalive") == 0)
		g.mode = MODE_KEEPALIVE;
	else {
		fprintf(stderr, "tls_loadgen: --mode full|resumed|keepalive\n");
		return 2;
	}
	if (strcmp(tls, "1.3") == 0)
		g.tls13 = 1;
	else if (strcmp(tls, "1.2") != 0) {
		fprintf(stderr, "tls_loadgen: --tls 1.2|1.3\n");
		return 2;
	}
	if (g.mode == MODE_KEEPALIVE && !g.request) {
		fprintf(stderr, "tls_loadgen: --no-request makes no sense with keepalive\n");
		return 2;
	}
	if (sscanf(g.target, "%63[0-9.]:%d", host, &port) != 2 || port < 1 || port > 65535 ||
	    inet_pton(AF_INET, host, &g.addr.sin_addr) != 1) {
		fprintf(stderr, "tls_loadgen: --connect wants IPV4:PORT, got %s\n", g.target);
		return 2;
	}
	if ((ntohl(g.addr.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "tls_loadgen: loopback only (127.0.0.0/8), got %s\n", host);
		return 2;
	}
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)port);
	if (g.check) {
		g.connections = g.threads = 1;
		g.warmup_s = 0;
		g.duration_s = (double)CHECK_MAX_NS / (double)NS_PER_S;
		g.mode = MODE_FULL;
	}
	if (g.threads > g.connections)
		g.threads = g.connections;
	/* ALPN wire format: length-prefixed names */
	for (const char *p = g.alpn; *p;) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n > 40 || g.alpn_len + 1 + n > sizeof g.alpn_wire) {
			fprintf(stderr, "tls_loadgen: bad --alpn %s\n", g.alpn);
			return 2;
		}
		g.alpn_wire[g.alpn_len++] = (unsigned char)n;
		memcpy(g.alpn_wire + g.alpn_len, p, n);
		g.alpn_len += (unsigned)n;
		p += n;
		if (*p == ',')
			p++;
	}
	g.req_len = (size_t)snprintf(
	    g.req, sizeof g.req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_loadgen\r\n%s\r\n",
	    g.path, g.sni[0] ? g.sni : "localhost",
	    g.mode == MODE_KEEPALIVE ? "" : "Connection: close\r\n");
	signal(SIGPIPE, SIG_IGN);

	ths = calloc((size_t)g.threads, sizeof *ths);
	if (!ths) {
		perror("calloc");
		return 1;
	}
	for (int i = 0; i < g.threads; i++) {
		struct thread *th = &ths[i];
		th->nslots = g.connections / g.threads + (i < g.connections % g.threads);
		th->slots = calloc((size_t)th->nslots, sizeof *th->slots);
		th->ep = epoll_create1(EPOLL_CLOEXEC);
		th->ctx = make_ctx();
		if (!th->slots || th->ep < 0 || !th->ctx) {
			fprintf(stderr, "tls_loadgen: set-up failed (memory, epoll or SSL_CTX: bad "
			                "--groups?)\n");
			ERR_print_errors_fp(stderr);
			return 1;
		}
		for (int j = 0; j < th->nslots; j++) {
			th->slots[j].th = th;
			th->slots[j].fd = -1;
		}
	}

	g.t0 = now_ns();
	g.t_begin = g.t0 + (uint64_t)(g.warmup_s * (double)NS_PER_S);
	g.t_end = g.t_begin + (uint64_t)(g.duration_s * (double)NS_PER_S);
	for (int i = 0; i < g.threads; i++) {
		if (pthread_create(&ths[i].tid, NULL, thread_main, &ths[i]) != 0) {
			fprintf(stderr, "tls_loadgen: pthread_create failed\n");
			return 1;
		}
	}
	sleep_until(g.t_begin);
	take_sample(&a);
	sleep_until(g.t_end);
	take_sample(&b);
	atomic_store(&g.stop, true);
	for (int i = 0; i < g.threads; i++)
		pthread_join(ths[i].tid, NULL);

	print_json(stdout, ths, &a, &b);
	if (g.json_path) {
		FILE *f = fopen(g.json_path, "w");
		if (!f) {
			perror(g.json_path);
			return 1;
		}
		print_json(f, ths, &a, &b);
		fclose(f);
	}
	if (g.check) {
		uint64_t errs = ths[0].errors_outside;
		for (int k = 0; k < E_COUNT; k++)
			errs += ths[0].errors[k];
		return ths[0].ops == 1 && errs == 0 ? 0 : 1;
	}
	for (int i = 0; i < g.threads; i++) {
		SSL_CTX_free(ths[i].ctx);
		free(ths[i].slots);
		close(ths[i].ep);
	}
	free(ths);
	return 0;
}
