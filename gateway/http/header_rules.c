/*
 * Header rules shared by both directions of the proxy: hop-by-hop names,
 * request ids, and the comma-separated list syntax they both need.
 */
#include "header_rules.h"
#include "request_head.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_ID_MAX 128

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Elements are split on commas only; quoted strings are not special because
 * none of the lists this is used for (Connection, Transfer-Encoding,
 * Content-Length) may contain one.
 */
bool gw_http_list_next(const char **pos, const char *end, const char **elem, size_t *elem_len)
{
	const char *p = *pos;

	for (;;) {
		const char *start, *stop;

		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end) {
			*pos = p;
			return false;
		}
		start = p;
		while (p < end && *p != ',')
			p++;
		for (stop = p; stop > start && is_ows(stop[-1]); stop--)
			;
		if (stop > start) {
			*pos = p;
			*elem = start;
			*elem_len = (size_t)(stop - start);
			return true;
		}
	}
}

bool gw_http_list_has(const char *value, size_t len, const char *token, size_t token_len)
{
	const char *pos = value;
	const char *elem;
	size_t elem_len;

	if (!value)
		return false;
	while (gw_http_list_next(&pos, value + len, &elem, &elem_len))
		if (gw_http_ieq(elem, elem_len, token, token_len))
			return true;
	return false;
}

/* The fixed set of RFC 9110 7.6.1 plus Proxy-Connection; the length switch
 * settles most names without comparing a byte. */
static bool is_fixed_hop_by_hop(const char *name, size_t n)
{
	switch (n) {
	case 2:
		return gw_http_ieq(name, n, "te", 2);
	case 7:
		return gw_http_ieq(name, n, "trailer", 7) || gw_http_ieq(name, n, "upgrade", 7);
	case 10:
		return gw_http_ieq(name, n, "connection", 10) ||
		       gw_http_ieq(name, n, "keep-alive", 10);
	case 16:
		return gw_http_ieq(name, n, "proxy-connection", 16);
	case 17:
		return gw_http_ieq(name, n, "transfer-encoding", 17);
	}
	return false;
}

bool gw_header_is_hop_by_hop(const char *name, size_t name_len, const char *connection_value,
                             size_t connection_len)
{
	if (is_fixed_hop_by_hop(name, name_len))
		return true;
	return gw_http_list_has(connection_value, connection_len, name, name_len);
}

bool gw_request_header_dropped(const char *name, size_t name_len, const char *connection_value,
                               size_t connection_len, bool keep_underscores)
{
	if (!keep_underscores && memchr(name, '_', name_len) != NULL)
		return true;
	return gw_header_is_hop_by_hop(name, name_len, connection_value, connection_len);
}

/*
 * Date headers. Formatted by hand (strftime would follow the locale and
 * cost more); days from the civil-from-days algorithm, so any epoch second
 * works without gmtime's static state.
 */
static void put2(char *out, unsigned v)
{
	out[0] = (char)('0' + v / 10 % 10);
	out[1] = (char)('0' + v % 10);
}

void gw_http_date_format(int64_t epoch_s, char out[GW_HTTP_DATE_LEN + 1])
{
	static const char wdays[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int64_t days = epoch_s / 86400;
	int64_t secs = epoch_s % 86400;
	int64_t z, era, doe, yoe, y, doy, mp;
	unsigned d, m;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	if (m <= 2)
		y++;
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;

	memcpy(out, wdays[((days % 7) + 7) % 7], 3);
	out[3] = ',';
	out[4] = ' ';
	put2(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, months[m - 1], 3);
	out[11] = ' ';
	put2(out + 12, (unsigned)(y / 100));
	put2(out + 14, (unsigned)(y % 100));
	out[16] = ' ';
	put2(out + 17, (unsigned)(secs / 3600));
	out[19] = ':';
	put2(out + 20, (unsigned)(secs / 60 % 60));
	out[22] = ':';
	put2(out + 23, (unsigned)(secs % 60));
	memcpy(out + 25, " GMT", 5);
}

struct date_cache {
	int64_t second;
	char text[GW_HTTP_DATE_LEN + 1];
};

static _Thread_local struct date_cache date_cache = {.second = -1};

const char *gw_http_date_now(void)
{
	struct date_cache *dc = &date_cache;
	struct timespec ts;

	/* The coarse clock is a read of the vDSO page: no syscall per answer. */
	if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
		ts.tv_sec = time(NULL);
	if ((int64_t)ts.tv_sec != dc->second) {
		dc->second = (int64_t)ts.tv_sec;
		gw_http_date_format(dc->second, dc->text);
	}
	return dc->text;
}

/*
 * Request ids. They must be unique, not secret (they are echoed to clients
 * and logged), and cheap: one per request on every worker. So each thread
 * runs its own xorshift128+ generator, seeded once from getrandom() through
 * splitmix64 (which turns any seed, even zero, into a well-mixed non-zero
 * state). A fork would leave parent and child with the same state and thus
 * the same ids: a pthread_atfork handler bumps a generation counter, and a
 * thread whose state is from an older generation seeds itself again.
 */
struct rid_state {
	uint64_t s[2];
	unsigned int generation;
	bool seeded;
};

static _Thread_local struct rid_state rid_state;
static atomic_uint rid_generation;
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;

static void rid_after_fork_child(void)
{
	atomic_fetch_add_explicit(&rid_generation, 1, memory_order_relaxed);
}

static void rid_register_atfork(void)
{
	pthread_atfork(NULL, NULL, rid_after_fork_child);
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* getrandom() cannot fail for 16 bytes once the pool is ready, but a kernel
 * without it (ENOSYS) or a seccomp filter must not stop the gateway: fall
 * back to what differs between threads and processes. */
static void rid_seed_bytes(uint64_t seed[2])
{
	struct timespec ts;
	ssize_t n;

	do
		n = getrandom(seed, 2 * sizeof(seed[0]), 0);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)(2 * sizeof(seed[0])))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	seed[0] ^= (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
	seed[1] ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&rid_state;
}

static void rid_seed(struct rid_state *st, unsigned int generation)
{
	uint64_t seed[2] = {0, 0};

	/* Any seeded state implies the handler exists: registering here, before
	 * the first use, keeps pthread_once off the per-id path. */
	pthread_once(&rid_once, rid_register_atfork);
	rid_seed_bytes(seed);
	st->s[0] = splitmix64(&seed[0]);
	st->s[1] = splitmix64(&seed[1]);
	if (st->s[0] == 0 && st->s[1] == 0)
		st->s[1] = 1;
	st->generation = generation;
	st->seeded = true;
}

static uint64_t xorshift128plus(struct rid_state *st)
{
	uint64_t s1 = st->s[0];
	const uint64_t s0 = st->s[1];

	st->s[0] = s0;
	s1 ^= s1 << 23;
	st->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return st->s[1] + s0;
}

static void put_hex64(char *out, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--) {
		out[i] = digits[v & 0xf];
		v >>= 4;
	}
}

void gw_request_id_new(char out[33])
{
	struct rid_state *st = &rid_state;
	unsigned int generation;

	generation = atomic_load_explicit(&rid_generation, memory_order_relaxed);
	if (!st->seeded || st->generation != generation)
		rid_seed(st, generation);
	put_hex64(out, xorshift128plus(st));
	put_hex64(out + 16, xorshift128plus(st));
	out[32] = '\0';
}

/*
 * A client's id is echoed in headers, JSON error bodies and the JSON access
 * log, so only bytes that need no quoting anywhere are kept: printable ASCII
 * without space, quotes or backslash.
 */
bool gw_request_id_acceptable(const char *value, size_t len)
{
	if (!value || len == 0 || len > REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\')
			return false;
	}
	return true;
}
