/*
 * Token buckets per key in a table of fixed memory (bucket_table.h).
 */
#include "bucket_table.h"

#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../gateway/util/alloc.h"

/* Largest fixed-point scale: 10^6 units per token per ms of `per` (see below). */
#define SCALE_MAX 1000000ull
/* Bounds on the fixed-point numbers, so that sums of two or three never wrap. */
#define UNITS_MAX (1ull << 62)
#define RATE_MIN  1e-9
#define RATE_MAX  1e12
#define PER_MAX   (1ull << 30)
/* Shards: at most this many, each with at least SHARD_MIN_KEYS entries. */
#define SHARDS_MAX     32u
#define SHARD_MIN_KEYS 64u
/* Entries an eviction looks at, from the least recently used end. */
#define EVICT_SAMPLE 8u
/* Entry index meaning "none": entry 0 of each shard is never used. */
#define NONE       0u
#define CACHE_LINE 64

/*
 * One key's bucket. Lives in its shard's array, allocated with the table;
 * a slot is reused in place when its key is evicted. Guarded by the shard's
 * lock.
 */
struct gw_bucket_entry {
	uint64_t hash;    /* the key's keyed hash: the key itself is not kept */
	uint64_t credit;  /* tokens left, in units (table->token units per token) */
	uint64_t last_ms; /* latest now_ms seen: credit is as of then */
	uint32_t chain;   /* next entry with the same chain head, or NONE */
	uint32_t newer;   /* LRU neighbour used more recently, or NONE */
	uint32_t older;   /* LRU neighbour used less recently, or NONE */
};

/*
 * A slice of the table: the keys whose hash picks it, with its own lock.
 * Owned by the table; its arrays are allocated at creation and freed with it.
 * Aligned to a cache line so two shards' locks never share one.
 */
struct gw_bucket_shard {
	alignas(CACHE_LINE) pthread_mutex_t lock;
	struct gw_bucket_entry *entries; /* cap + 1: [1..used] in use, [0] unused */
	uint32_t *heads;                 /* mask + 1 chain heads (entry index or NONE) */
	uint32_t mask;
	uint32_t cap;    /* entries this shard may hold */
	uint32_t used;   /* entries in use: they fill up once, then are recycled */
	uint32_t newest; /* LRU list ends, or NONE */
	uint32_t oldest;
};

/*
 * Owned by its creator (bucket_table.h). The numbers are fixed at creation
 * and read without a lock; the buckets live in the shards.
 */
struct gw_bucket_table {
	uint64_t sip[2];  /* hash key, random per table */
	uint64_t token;   /* units in one token */
	uint64_t cap;     /* units in a full bucket: burst * token */
	uint64_t rate;    /* units added per ms */
	uint64_t fill_ms; /* ms from empty to full: ceil(cap / rate) */
	uint32_t nshards;
	size_t bytes;
	struct gw_bucket_shard *shards;
};

/* ---- hashing ------------------------------------------------------------- */

/*
 * Keys are identified by SipHash-2-4 (Aumasson & Bernstein) under a random
 * 128-bit key drawn per table. Why a keyed hash and not FNV or similar: the
 * keys come from clients (X-Api-Key values), and with an unkeyed hash an
 * attacker could compute keys that land on a victim's bucket (sharing it
 * drains the victim), all in one shard, or in one hash chain. Under a secret
 * key none of that can be aimed. Keeping only the 64-bit hash makes every
 * entry the same small size whatever the key's length (no maximum length:
 * the whole key is hashed, the request head limit bounds it); the price is
 * that two keys with equal hashes share a bucket, about n^2 / 2^65 likely for
 * n keys held (3e-10 for 100 000), and then both are merely limited together.
 */
static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = rotl(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = rotl(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = rotl(v2, 32);                                                                 \
	} while (0)

static uint64_t siphash24(const uint64_t k[2], const unsigned char *in, size_t len)
{
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ull;
	uint64_t v1 = k[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ull;
	uint64_t v3 = k[1] ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;
	const unsigned char *end = in + (len - left);

	for (; in != end; in += 8) {
		m = load_le64(in);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < left; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The hash key. GRND_NONBLOCK: at early boot, before the kernel's pool is
 * ready, fail rather than stall the gateway's start; the fallback (addresses
 * under ASLR, so different per process) is weaker but still not a constant.
 */
static void seed(uint64_t k[2], const void *salt)
{
	if (getrandom(k, 2 * sizeof(k[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(k[0])))
		return;
	k[0] = (uint64_t)(uintptr_t)salt * 0x9e3779b97f4a7c15ull;
	k[1] = (uint64_t)(uintptr_t)&seed * 0xc2b2ae3d27d4eb4full ^ k[0];
}

/* ---- the table ----------------------------------------------------------- */

/*
 * Fixed-point arithmetic. Why not tokens as a double: a request arriving
 * exactly when a token is due must get it, and a double that adds 0.007 per
 * ms may hold 6.9999999 rather than 7 at 1000 ms, refuse, and shift the grant
 * by a ms; counts per second then wobble between 6 and 8. Integers don't.
 *
 * With S = scale, one token is per_ms * S units and a ms adds rate * S units
 * (rounded to an integer). For a rate with at most log10(S) decimals both are
 * exact, so R per P admits exactly R per P in steady state, the fraction of a
 * token carrying from one request to the next. S is the largest power of ten
 * up to 10^6 that keeps a full bucket (burst * per_ms * S) and the rate under
 * 2^62; with the config's bounds (burst <= 10^8, per <= 1h) S is at least
 * 10^3. Under 2^62, credit + elapsed * rate cannot wrap: elapsed is cut to
 * fill_ms first, so the sum stays under cap + cap + rate < 2^64.
 */
struct gw_bucket_table *gw_bucket_table_new(double rate, uint64_t per_ms, uint32_t burst,
                                            uint32_t max_keys)
{
	struct gw_bucket_table *t = gw_calloc(1, sizeof(*t));
	uint64_t scale = SCALE_MAX;
	uint32_t nshards;
	size_t shards_size;

	if (!(rate >= RATE_MIN)) /* NaN too */
		rate = RATE_MIN;
	if (rate > RATE_MAX)
		rate = RATE_MAX;
	if (per_ms < 1)
		per_ms = 1;
	if (per_ms > PER_MAX)
		per_ms = PER_MAX;
	if (burst == 0)
		burst = rate >= UINT32_MAX ? UINT32_MAX : (uint32_t)fmax(1.0, ceil(rate));
	if (max_keys == 0)
		max_keys = 1;
	/* burst * per_ms < 2^62 by the clamps: scale 1 always fits. */
	while (scale > 1 && ((double)burst * (double)per_ms * (double)scale > (double)UNITS_MAX ||
	                     rate * (double)scale > (double)UNITS_MAX))
		scale /= 10;
	t->token = per_ms * scale;
	t->cap = (uint64_t)burst * t->token;
	t->rate = (uint64_t)llround(rate * (double)scale);
	if (t->rate == 0)
		t->rate = 1;
	t->fill_ms = t->cap / t->rate + (t->cap % t->rate != 0);

	nshards = max_keys / SHARD_MIN_KEYS;
	if (nshards < 1)
		nshards = 1;
	if (nshards > SHARDS_MAX)
		nshards = SHARDS_MAX;
	t->nshards = nshards;
	shards_size = nshards * sizeof(struct gw_bucket_shard);
	t->shards = aligned_alloc(CACHE_LINE, shards_size);
	if (!t->shards) {
		fprintf(stderr, "gateway: out of memory allocating %zu bytes\n", shards_size);
		abort();
	}
	memset(t->shards, 0, shards_size);
	t->bytes = sizeof(*t) + shards_size;
	for (uint32_t i = 0; i < nshards; i++) {
		struct gw_bucket_shard *s = &t->shards[i];
		uint32_t heads = 1;

		s->cap = max_keys / nshards + (i < max_keys % nshards);
		while (heads < s->cap)
			heads <<= 1;
		s->mask = heads - 1;
		/*
		 * calloc, and NONE == 0: nothing is written into these arrays
		 * until a key needs it, so the pages of a large, idle table are
		 * not resident.
		 */
		s->entries = gw_calloc((size_t)s->cap + 1, sizeof(*s->entries));
		s->heads = gw_calloc(heads, sizeof(*s->heads));
		pthread_mutex_init(&s->lock, NULL);
		t->bytes += ((size_t)s->cap + 1) * sizeof(*s->entries) + heads * sizeof(*s->heads);
	}
	seed(t->sip, t);
	return t;
}

void gw_bucket_table_free(struct gw_bucket_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nshards; i++) {
		pthread_mutex_destroy(&t->shards[i].lock);
		free(t->shards[i].entries);
		free(t->shards[i].heads);
	}
	free(t->shards);
	free(t);
}

/* ---- one shard: the hash chains and the LRU list ------------------------- */

static uint32_t shard_find(const struct gw_bucket_shard *s, uint64_t hash)
{
	uint32_t i = s->heads[hash & s->mask];

	while (i != NONE && s->entries[i].hash != hash)
		i = s->entries[i].chain;
	return i;
}

static void lru_unlink(struct gw_bucket_shard *s, uint32_t i)
{
	struct gw_bucket_entry *e = &s->entries[i];

	if (e->newer != NONE)
		s->entries[e->newer].older = e->older;
	else
		s->newest = e->older;
	if (e->older != NONE)
		s->entries[e->older].newer = e->newer;
	else
		s->oldest = e->newer;
}

static void lru_push_newest(struct gw_bucket_shard *s, uint32_t i)
{
	struct gw_bucket_entry *e = &s->entries[i];

	e->newer = NONE;
	e->older = s->newest;
	if (s->newest != NONE)
		s->entries[s->newest].newer = i;
	else
		s->oldest = i;
	s->newest = i;
}

static void chain_unlink(struct gw_bucket_shard *s, uint32_t i)
{
	uint32_t *link = &s->heads[s->entries[i].hash & s->mask];

	while (*link != i)
		link = &s->entries[*link].chain;
	*link = s->entries[i].chain;
}

/* A bucket's credit at now_ms, refilled but not stored. */
static uint64_t credit_at(const struct gw_bucket_table *t, const struct gw_bucket_entry *e,
                          uint64_t now_ms)
{
	uint64_t elapsed, credit;

	if (now_ms <= e->last_ms)
		return e->credit;
	elapsed = now_ms - e->last_ms;
	if (elapsed >= t->fill_ms)
		return t->cap;
	credit = e->credit + elapsed * t->rate;
	return credit < t->cap ? credit : t->cap;
}

/*
 * Eviction, when a new key arrives and its shard is full.
 *
 * What is lost by evicting a bucket is its deficit (cap - credit): the key
 * comes back as a new one, with a full bucket. So a bucket that has refilled
 * to full costs nothing to forget, and the best victim is the one closest to
 * full. Looking at every entry would make a take O(max_keys) under the lock;
 * instead, like Redis's sampled eviction (evict.c), look at the EVICT_SAMPLE
 * least recently used entries of the shard, stop at the first full one, and
 * otherwise take the one with the most credit, the least recently used among
 * equals. Old entries are the likeliest to have refilled, so the first look
 * usually ends it.
 *
 * What it guarantees, against a flood of new keys (say 100 000 X-Api-Key
 * values, each sent once) as against anything else:
 *   - A key is evicted while its bucket is not full only when it is among
 *     the EVICT_SAMPLE least recently used of its shard: at least cap - 8
 *     other keys of its shard were used since it last was (with 100 000 keys
 *     in 32 shards, some 3 100 per shard, i.e. ~100 000 in the table). A
 *     busy key, used more often than that, is never evicted by any flood.
 *   - Even then, it goes only if nothing in the sample is closer to full.
 *     A flood key costs its sender a request and leaves a bucket one token
 *     short of full, refilling; a key that is being limited has less credit
 *     than that (with burst >= 2; with burst 1 all are alike, the least
 *     recent goes and one token is forgiven), so as long as one flood key is
 *     in the sample (they are the keys used just after it), the flood evicts
 *     its own keys and the limited key keeps its bucket however long the
 *     flood lasts, used meanwhile or not. Draining its flood keys first
 *     costs the attacker a bucket's worth of admitted requests per key.
 *   - An evicted key comes back with a full bucket: at most `burst` tokens
 *     are forgiven, never more, and no key is ever refused because of other
 *     keys (the table fails open, by the least the sample allows).
 * Shards are chosen by the keyed hash, so a flood cannot be aimed at one
 * shard, and each shard's LRU order is a fair sample of the table's.
 */
static uint32_t shard_evict(const struct gw_bucket_table *t, struct gw_bucket_shard *s,
                            uint64_t now_ms)
{
	uint32_t victim = s->oldest, i = s->oldest;
	uint64_t best = 0;

	for (uint32_t n = 0; n < EVICT_SAMPLE && i != NONE; n++, i = s->entries[i].newer) {
		uint64_t credit = credit_at(t, &s->entries[i], now_ms);

		if (credit == t->cap) {
			victim = i;
			break;
		}
		if (n == 0 || credit > best) {
			victim = i;
			best = credit;
		}
	}
	chain_unlink(s, victim);
	lru_unlink(s, victim);
	return victim;
}

/* The entry of hash, made (full, at now_ms) if the shard has none. */
static uint32_t shard_get(const struct gw_bucket_table *t, struct gw_bucket_shard *s, uint64_t hash,
                          uint64_t now_ms)
{
	uint32_t i = shard_find(s, hash), *head;
	struct gw_bucket_entry *e;

	if (i != NONE) {
		lru_unlink(s, i);
		lru_push_newest(s, i);
		return i;
	}
	i = s->used < s->cap ? ++s->used : shard_evict(t, s, now_ms);
	e = &s->entries[i];
	head = &s->heads[hash & s->mask];
	e->hash = hash;
	e->credit = t->cap;
	e->last_ms = now_ms;
	e->chain = *head;
	*head = i;
	lru_push_newest(s, i);
	return i;
}

/* ---- taking a token ------------------------------------------------------ */

/*
 * Under the shard's lock only the lookup and the bucket arithmetic: refill
 * for the time since the bucket was last seen, then take a token or say how
 * long until one is there. The hash is computed before taking the lock.
 *
 * Workers cache the clock per loop iteration, so takes of one key may come
 * with slightly older times than one already applied: such a take refills
 * nothing, last_ms keeps the newest time (so no interval is counted twice),
 * and its wait is counted from its own now to when the token is due.
 */
uint64_t gw_bucket_take(struct gw_bucket_table *t, const char *key, size_t key_len, uint64_t now_ms)
{
	static const unsigned char empty[1];
	uint64_t hash = siphash24(t->sip, key_len ? (const unsigned char *)key : empty, key_len);
	struct gw_bucket_shard *s = &t->shards[((hash >> 32) * t->nshards) >> 32];
	struct gw_bucket_entry *e;
	uint64_t wait = 0, deficit;

	pthread_mutex_lock(&s->lock);
	e = &s->entries[shard_get(t, s, hash, now_ms)];
	e->credit = credit_at(t, e, now_ms);
	if (now_ms > e->last_ms)
		e->last_ms = now_ms;
	if (e->credit >= t->token) {
		e->credit -= t->token;
	} else {
		deficit = t->token - e->credit;
		wait = (e->last_ms - now_ms) + deficit / t->rate + (deficit % t->rate != 0);
	}
	pthread_mutex_unlock(&s->lock);
	return wait;
}

uint32_t gw_bucket_table_keys(struct gw_bucket_table *t)
{
	uint32_t keys = 0;

	for (uint32_t i = 0; i < t->nshards; i++) {
		pthread_mutex_lock(&t->shards[i].lock);
		keys += t->shards[i].used;
		pthread_mutex_unlock(&t->shards[i].lock);
	}
	return keys;
}

size_t gw_bucket_table_bytes(const struct gw_bucket_table *t)
{
	return t->bytes;
}
