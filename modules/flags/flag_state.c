/*
 * Feature flags: layers, resolution and snapshots (flag_state.h).
 */
#include "flag_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../../gateway/util/alloc.h"
#include "../../gateway/util/log.h"

const char *gw_flag_source_name(enum gw_flag_source s)
{
	switch (s) {
	case GW_FLAG_SRC_DEFAULT:
		return "default";
	case GW_FLAG_SRC_CACHE:
		return "cache";
	case GW_FLAG_SRC_REDIS:
		return "redis";
	case GW_FLAG_SRC_PROFILE:
		return "profile";
	case GW_FLAG_SRC_OVERRIDE:
		return "override";
	}
	return "?";
}

/* ---- layers ------------------------------------------------------------ */

struct gw_flags_layer *gw_flags_layer_new(const struct gw_config *config)
{
	struct gw_flags_layer *l = gw_calloc(1, sizeof(*l));
	size_t nf = config->nflags ? config->nflags : 1, nr = config->nroutes ? config->nroutes : 1;

	l->nflags = config->nflags;
	l->nroutes = config->nroutes;
	l->has_flag = gw_calloc(nf, sizeof(*l->has_flag));
	l->flags = gw_calloc(nf, sizeof(*l->flags));
	l->has_breaker = gw_calloc(nr, sizeof(*l->has_breaker));
	l->breakers = gw_calloc(nr, sizeof(*l->breakers));
	l->breaker_expires_ms = gw_calloc(nr, sizeof(*l->breaker_expires_ms));
	return l;
}

struct gw_flags_layer *gw_flags_layer_copy(const struct gw_flags_layer *l)
{
	struct gw_flags_layer *c = gw_malloc(sizeof(*c));
	size_t nf = l->nflags ? l->nflags : 1, nr = l->nroutes ? l->nroutes : 1;

	*c = *l;
	c->has_flag = gw_malloc(nf * sizeof(*c->has_flag));
	memcpy(c->has_flag, l->has_flag, nf * sizeof(*c->has_flag));
	c->flags = gw_malloc(nf * sizeof(*c->flags));
	memcpy(c->flags, l->flags, nf * sizeof(*c->flags));
	c->has_breaker = gw_malloc(nr * sizeof(*c->has_breaker));
	memcpy(c->has_breaker, l->has_breaker, nr * sizeof(*c->has_breaker));
	c->breakers = gw_malloc(nr * sizeof(*c->breakers));
	memcpy(c->breakers, l->breakers, nr * sizeof(*c->breakers));
	c->breaker_expires_ms = gw_malloc(nr * sizeof(*c->breaker_expires_ms));
	memcpy(c->breaker_expires_ms, l->breaker_expires_ms, nr * sizeof(*c->breaker_expires_ms));
	return c;
}

struct gw_flags_layer *gw_flags_layer_rekey(const struct gw_flags_layer *l,
                                            const struct gw_config *from,
                                            const struct gw_config *to)
{
	struct gw_flags_layer *n = gw_flags_layer_new(to);

	n->cached = l->cached;
	for (size_t i = 0; i < to->nflags; i++) {
		int j = gw_config_find_flag(from, to->flags[i].name);

		if (j >= 0 && (size_t)j < l->nflags && l->has_flag[j]) {
			n->has_flag[i] = true;
			n->flags[i] = l->flags[j];
		}
	}
	n->has_shed_level = l->has_shed_level;
	n->shed_level = l->shed_level;
	n->shed_expires_ms = l->shed_expires_ms;
	if (l->has_profile && l->profile < from->nprofiles) {
		int j = gw_config_find_profile(to, from->profiles[l->profile].name);

		n->has_profile = j >= 0;
		n->profile = j >= 0 ? (size_t)j : 0;
		n->profile_expires_ms = l->profile_expires_ms;
	}
	for (size_t r = 0; r < to->nroutes; r++) {
		for (size_t j = 0; j < from->nroutes && j < l->nroutes; j++) {
			if (strcmp(from->routes[j].name, to->routes[r].name) != 0)
				continue;
			n->has_breaker[r] = l->has_breaker[j];
			n->breakers[r] = l->breakers[j];
			n->breaker_expires_ms[r] = l->breaker_expires_ms[j];
			break;
		}
	}
	return n;
}

void gw_flags_layer_free(struct gw_flags_layer *l)
{
	if (!l)
		return;
	free(l->has_flag);
	free(l->flags);
	free(l->has_breaker);
	free(l->breakers);
	free(l->breaker_expires_ms);
	free(l);
}

static bool same_expiry(int64_t a, int64_t b, int64_t slack_ms)
{
	if (a == 0 || b == 0)
		return a == b;
	return a > b ? a - b <= slack_ms : b - a <= slack_ms;
}

bool gw_flags_layer_equal(const struct gw_flags_layer *a, const struct gw_flags_layer *b,
                          int64_t slack_ms)
{
	if (a->nflags != b->nflags || a->nroutes != b->nroutes || a->cached != b->cached)
		return false;
	for (size_t i = 0; i < a->nflags; i++) {
		if (a->has_flag[i] != b->has_flag[i])
			return false;
		if (a->has_flag[i] && !gw_flag_value_equal(a->flags[i], b->flags[i]))
			return false;
	}
	if (a->has_shed_level != b->has_shed_level ||
	    (a->has_shed_level && (a->shed_level != b->shed_level ||
	                           !same_expiry(a->shed_expires_ms, b->shed_expires_ms, slack_ms))))
		return false;
	if (a->has_profile != b->has_profile ||
	    (a->has_profile &&
	     (a->profile != b->profile ||
	      !same_expiry(a->profile_expires_ms, b->profile_expires_ms, slack_ms))))
		return false;
	for (size_t i = 0; i < a->nroutes; i++) {
		if (a->has_breaker[i] != b->has_breaker[i])
			return false;
		if (a->has_breaker[i] &&
		    (a->breakers[i] != b->breakers[i] ||
		     !same_expiry(a->breaker_expires_ms[i], b->breaker_expires_ms[i], slack_ms)))
			return false;
	}
	return true;
}

void gw_flags_read_clear(struct gw_flags_read *rd)
{
	for (size_t i = 0; i < rd->nfields; i++) {
		free(rd->fields[i]);
		free(rd->values[i]);
	}
	free(rd->fields);
	free(rd->values);
	for (size_t i = 0; i < rd->nops; i++)
		free(rd->ops[i]);
	free(rd->ops);
	free(rd->ops_pttl);
	memset(rd, 0, sizeof(*rd));
}

/* ---- complaints: a bad value is logged once ---------------------------- */

void gw_flags_complaints_init(struct gw_flags_complaints *c, const struct gw_config *config)
{
	memset(c, 0, sizeof(*c));
	c->nslots = config->nflags + GW_OPS_BREAKER0 + config->nroutes + 1;
	c->bad = gw_calloc(c->nslots, sizeof(*c->bad));
}

void gw_flags_complaints_free(struct gw_flags_complaints *c)
{
	for (size_t i = 0; i < c->nslots; i++)
		free(c->bad[i]);
	free(c->bad);
	for (size_t i = 0; i < c->nunknown; i++)
		free(c->unknown[i]);
	free(c->unknown);
	memset(c, 0, sizeof(*c));
}

/* True the first time text is bad in slot (then log), false while it stays the same. */
static bool complain(struct gw_flags_complaints *c, size_t slot, const char *text)
{
	if (c->bad[slot] && strcmp(c->bad[slot], text) == 0)
		return false;
	free(c->bad[slot]);
	c->bad[slot] = gw_strdup(text);
	return true;
}

static void settle(struct gw_flags_complaints *c, size_t slot)
{
	free(c->bad[slot]);
	c->bad[slot] = NULL;
}

/* A value from Redis, quoted for a log line: printable ASCII, at most 64 bytes. */
static const char *shown(const char *v, char *buf, size_t size)
{
	size_t n = 0;

	if (!v)
		return "(binary)";
	for (; *v && n + 5 < size && n < 64; v++) {
		unsigned char ch = (unsigned char)*v;

		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			buf[n++] = (char)ch;
		else
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", ch);
	}
	if (*v && n + 4 < size) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static bool was_unknown(const struct gw_flags_complaints *c, const char *name)
{
	for (size_t i = 0; i < c->nunknown; i++)
		if (strcmp(c->unknown[i], name) == 0)
			return true;
	return false;
}

/* ---- applying a read ----------------------------------------------------- */

static const char *prefix_of(const struct gw_config *config)
{
	return config->redis.prefix ? config->redis.prefix : "";
}

/* now + pttl, saturated: a key set to expire at the end of time (PEXPIREAT
 * near 2^63) has a PTTL that overflows our clock when it runs ahead of
 * Redis's (found by tests/fuzz/fuzz_flags.c). */
static int64_t end_time(int64_t pttl, int64_t now_wall_ms)
{
	if (pttl <= 0)
		return 0;
	if (now_wall_ms > 0 && pttl > INT64_MAX - now_wall_ms)
		return INT64_MAX;
	return now_wall_ms + pttl;
}

static void update_flags(struct gw_flags_layer *layer, const struct gw_config *config,
                         const struct gw_flags_read *rd, struct gw_flags_complaints *c)
{
	size_t hash_slot = c->nslots - 1;
	char **unknown = gw_calloc(rd->nfields ? rd->nfields : 1, sizeof(*unknown));
	bool *seen = gw_calloc(config->nflags ? config->nflags : 1, sizeof(*seen));
	size_t nunknown = 0;
	char buf[300];

	if (rd->flags_bad) {
		if (complain(c, hash_slot, "not a hash"))
			gw_log_warn("redis: %sflags is not a hash: flag values kept as they were",
			            prefix_of(config));
		free(unknown);
		free(seen);
		return;
	}
	settle(c, hash_slot);
	for (size_t i = 0; i < rd->nfields; i++) {
		int idx = gw_config_find_flag(config, rd->fields[i]);
		const char *v = rd->values[i];
		struct gw_flag_value fv;

		if (idx < 0) {
			if (!was_unknown(c, rd->fields[i]))
				gw_log_warn("redis: %sflags has '%s', which is not a flag of this "
				            "gateway (no default in 'flags'): ignored",
				            prefix_of(config),
				            shown(rd->fields[i], buf, sizeof(buf)));
			unknown[nunknown++] = gw_strdup(rd->fields[i]);
			continue;
		}
		seen[idx] = true;
		if (v && gw_flag_value_parse(v, strlen(v), &fv) == GW_FLAG_PARSE_OK) {
			layer->has_flag[idx] = true;
			layer->flags[idx] = fv;
			settle(c, (size_t)idx);
			continue;
		}
		if (complain(c, (size_t)idx, v ? v : "")) {
			char was[GW_FLAG_VALUE_TEXT];

			gw_log_warn("redis: ignoring %sflags %s = '%s' (expected on, off or N%%); "
			            "keeping %s",
			            prefix_of(config), rd->fields[i], shown(v, buf, sizeof(buf)),
			            layer->has_flag[idx]
			                ? gw_flag_value_format(layer->flags[idx], was, sizeof(was))
			                : "the default");
		}
	}
	for (size_t i = 0; i < config->nflags; i++) {
		if (!seen[i]) {
			layer->has_flag[i] = false;
			settle(c, i);
		}
	}
	for (size_t i = 0; i < c->nunknown; i++)
		free(c->unknown[i]);
	free(c->unknown);
	c->unknown = unknown;
	c->nunknown = nunknown;
	free(seen);
}

static void update_shed_level(struct gw_flags_layer *layer, const struct gw_config *config,
                              const struct gw_flags_read *rd, struct gw_flags_complaints *c,
                              int64_t now)
{
	size_t slot = config->nflags + GW_OPS_SHED_LEVEL;
	const char *v = rd->ops[GW_OPS_SHED_LEVEL];
	char buf[300];
	int level;

	if (!v) {
		layer->has_shed_level = false;
		settle(c, slot);
		return;
	}
	if (gw_shed_level_parse(v, strlen(v), &level) == 0) {
		layer->has_shed_level = level != GW_SHED_LEVEL_AUTO;
		layer->shed_level = level;
		layer->shed_expires_ms = end_time(rd->ops_pttl[GW_OPS_SHED_LEVEL], now);
		settle(c, slot);
		return;
	}
	if (complain(c, slot, v))
		gw_log_warn("redis: ignoring %sops:shed_level = '%s' (expected auto, 0, 1 or 2); "
		            "keeping the previous value",
		            prefix_of(config), shown(v, buf, sizeof(buf)));
}

/* "none" and "" mean no profile, as no key does. */
static void update_profile(struct gw_flags_layer *layer, const struct gw_config *config,
                           const struct gw_flags_read *rd, struct gw_flags_complaints *c,
                           int64_t now)
{
	size_t slot = config->nflags + GW_OPS_PROFILE;
	const char *v = rd->ops[GW_OPS_PROFILE];
	char buf[300];
	int idx;

	if (!v || v[0] == '\0' || strcmp(v, "none") == 0) {
		layer->has_profile = false;
		settle(c, slot);
		return;
	}
	idx = gw_config_find_profile(config, v);
	if (idx >= 0) {
		layer->has_profile = true;
		layer->profile = (size_t)idx;
		layer->profile_expires_ms = end_time(rd->ops_pttl[GW_OPS_PROFILE], now);
		settle(c, slot);
		return;
	}
	if (complain(c, slot, v))
		gw_log_warn("redis: ignoring %sops:profile = '%s' (no such profile in 'profiles'); "
		            "keeping the previous value",
		            prefix_of(config), shown(v, buf, sizeof(buf)));
}

static int parse_breaker(const char *v, enum gw_breaker_force *out)
{
	if (strcmp(v, "auto") == 0)
		*out = GW_BREAKER_FORCE_AUTO;
	else if (strcmp(v, "open") == 0)
		*out = GW_BREAKER_FORCE_OPEN;
	else if (strcmp(v, "closed") == 0)
		*out = GW_BREAKER_FORCE_CLOSED;
	else
		return -1;
	return 0;
}

static void update_breaker(struct gw_flags_layer *layer, const struct gw_config *config,
                           const struct gw_flags_read *rd, struct gw_flags_complaints *c,
                           size_t route, int64_t now)
{
	size_t key = GW_OPS_BREAKER0 + route, slot = config->nflags + key;
	const char *v = rd->ops[key];
	enum gw_breaker_force f;
	char buf[300];

	if (!v) {
		layer->has_breaker[route] = false;
		settle(c, slot);
		return;
	}
	if (parse_breaker(v, &f) == 0) {
		layer->has_breaker[route] = f != GW_BREAKER_FORCE_AUTO;
		layer->breakers[route] = f;
		layer->breaker_expires_ms[route] = end_time(rd->ops_pttl[key], now);
		settle(c, slot);
		return;
	}
	if (complain(c, slot, v))
		gw_log_warn("redis: ignoring %sops:breaker:%s = '%s' (expected auto, open or "
		            "closed); keeping the previous value",
		            prefix_of(config), config->routes[route].name,
		            shown(v, buf, sizeof(buf)));
}

void gw_flags_layer_update(struct gw_flags_layer *layer, const struct gw_config *config,
                           const struct gw_flags_read *rd, struct gw_flags_complaints *c,
                           int64_t now_wall_ms)
{
	layer->cached = false;
	update_flags(layer, config, rd, c);
	if (rd->nops != GW_OPS_BREAKER0 + config->nroutes)
		return;
	update_shed_level(layer, config, rd, c, now_wall_ms);
	update_profile(layer, config, rd, c, now_wall_ms);
	for (size_t r = 0; r < config->nroutes; r++)
		update_breaker(layer, config, rd, c, r, now_wall_ms);
}

/* ---- resolution ----------------------------------------------------------- */

static bool live(int64_t expires_ms, int64_t now_wall_ms)
{
	return expires_ms == 0 || expires_ms > now_wall_ms;
}

static bool profile_sets(const struct gw_profile_conf *p, size_t flag, struct gw_flag_value *out)
{
	for (size_t i = 0; p && i < p->nflags; i++) {
		if (p->flags[i].flag == flag) {
			*out = p->flags[i].value;
			return true;
		}
	}
	return false;
}

/*
 * Resolution order (SPEC section 6), for each value on its own: the admin
 * override of this gateway, then the Redis ops keys (the profile named by
 * gw:ops:profile for flags; gw:ops:shed_level, then the profile's level,
 * for the overload level; gw:ops:breaker:R for breakers), then the gw:flags
 * hash, then the YAML default. A layer's value only counts while its TTL
 * (seen as an end time) has not run out, so a forgotten peak-mode switch
 * ends on time even when Redis is unreachable at that moment.
 */
struct gw_flags_snap *gw_flags_resolve(struct gw_config *config,
                                       const struct gw_flags_layer *remote,
                                       const struct gw_flags_layer *override, int64_t now_wall_ms)
{
	struct gw_flags_snap *s = gw_calloc(1, sizeof(*s));
	enum gw_flag_source remote_src =
	    remote && remote->cached ? GW_FLAG_SRC_CACHE : GW_FLAG_SRC_REDIS;
	const struct gw_profile_conf *profile = NULL;

	atomic_init(&s->refs, 1);
	s->config = gw_config_ref(config);
	s->nflags = config->nflags;
	s->flags = gw_calloc(s->nflags ? s->nflags : 1, sizeof(*s->flags));
	s->nroutes = config->nroutes;
	s->breakers = gw_calloc(s->nroutes ? s->nroutes : 1, sizeof(*s->breakers));
	s->breaker_sources = gw_calloc(s->nroutes ? s->nroutes : 1, sizeof(*s->breaker_sources));

	s->profile = -1;
	if (remote && remote->has_profile && remote->profile < config->nprofiles &&
	    live(remote->profile_expires_ms, now_wall_ms)) {
		s->profile = (int)remote->profile;
		s->profile_source = remote_src;
		profile = &config->profiles[remote->profile];
	}

	for (size_t i = 0; i < s->nflags; i++) {
		struct gw_flag_resolved *f = &s->flags[i];

		if (override && override->has_flag[i]) {
			f->value = override->flags[i];
			f->source = GW_FLAG_SRC_OVERRIDE;
		} else if (profile_sets(profile, i, &f->value)) {
			f->source = GW_FLAG_SRC_PROFILE;
		} else if (remote && remote->has_flag[i]) {
			f->value = remote->flags[i];
			f->source = remote_src;
		} else {
			f->value = config->flags[i].def;
			f->source = GW_FLAG_SRC_DEFAULT;
		}
	}

	s->shed_level = GW_SHED_LEVEL_AUTO;
	s->shed_source = GW_FLAG_SRC_DEFAULT;
	if (override && override->has_shed_level) {
		s->shed_level = override->shed_level;
		s->shed_source = GW_FLAG_SRC_OVERRIDE;
	} else if (remote && remote->has_shed_level && live(remote->shed_expires_ms, now_wall_ms)) {
		s->shed_level = remote->shed_level;
		s->shed_source = remote_src;
	} else if (profile && profile->shed_level != GW_SHED_LEVEL_AUTO) {
		s->shed_level = profile->shed_level;
		s->shed_source = GW_FLAG_SRC_PROFILE;
	}

	for (size_t r = 0; r < s->nroutes; r++) {
		if (override && override->has_breaker[r]) {
			s->breakers[r] = override->breakers[r];
			s->breaker_sources[r] = GW_FLAG_SRC_OVERRIDE;
		} else if (remote && remote->has_breaker[r] &&
		           live(remote->breaker_expires_ms[r], now_wall_ms)) {
			s->breakers[r] = remote->breakers[r];
			s->breaker_sources[r] = remote_src;
		}
	}
	return s;
}

struct gw_flags_snap *gw_flags_snap_ref(struct gw_flags_snap *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void gw_flags_snap_unref(struct gw_flags_snap *s)
{
	/* acq_rel: whoever frees sees every write made before the other unrefs. */
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	gw_config_unref(s->config);
	free(s->flags);
	free(s->breakers);
	free(s->breaker_sources);
	free(s);
}

bool gw_flags_snap_equal(const struct gw_flags_snap *a, const struct gw_flags_snap *b)
{
	if (a->config != b->config || a->nflags != b->nflags || a->nroutes != b->nroutes ||
	    a->shed_level != b->shed_level || a->shed_source != b->shed_source ||
	    a->profile != b->profile || a->profile_source != b->profile_source)
		return false;
	for (size_t i = 0; i < a->nflags; i++)
		if (!gw_flag_value_equal(a->flags[i].value, b->flags[i].value) ||
		    a->flags[i].source != b->flags[i].source)
			return false;
	for (size_t r = 0; r < a->nroutes; r++)
		if (a->breakers[r] != b->breakers[r] ||
		    a->breaker_sources[r] != b->breaker_sources[r])
			return false;
	return true;
}

/* ---- change log ------------------------------------------------------------ */

/* "redis", or "profile peak" for a value set by the active profile. */
static const char *source_text(const struct gw_flags_snap *s, enum gw_flag_source src, char *buf,
                               size_t size)
{
	if (src != GW_FLAG_SRC_PROFILE || s->profile < 0)
		return gw_flag_source_name(src);
	snprintf(buf, size, "profile %s", s->config->profiles[s->profile].name);
	return buf;
}

static const char *breaker_force_name(enum gw_breaker_force f)
{
	switch (f) {
	case GW_BREAKER_FORCE_OPEN:
		return "open";
	case GW_BREAKER_FORCE_CLOSED:
		return "closed";
	case GW_BREAKER_FORCE_AUTO:
		break;
	}
	return "auto";
}

void gw_flags_log_changes(const struct gw_flags_snap *old, const struct gw_flags_snap *s)
{
	const struct gw_config *config = s->config;
	char src[160], value[GW_FLAG_VALUE_TEXT];

	if (old && old->config != s->config)
		old = NULL; /* another config: compare with the defaults */
	if (old ? old->profile != s->profile || old->profile_source != s->profile_source
	        : s->profile >= 0)
		gw_log_info("profile = %s (%s)",
		            s->profile >= 0 ? config->profiles[s->profile].name : "none",
		            gw_flag_source_name(s->profile_source));
	for (size_t i = 0; i < s->nflags; i++) {
		const struct gw_flag_resolved *f = &s->flags[i];
		bool changed = old ? !gw_flag_value_equal(old->flags[i].value, f->value) ||
		                         old->flags[i].source != f->source
		                   : f->source != GW_FLAG_SRC_DEFAULT;

		if (changed)
			gw_log_info("flag %s = %s (%s)", config->flags[i].name,
			            gw_flag_value_format(f->value, value, sizeof(value)),
			            source_text(s, f->source, src, sizeof(src)));
	}
	if (old ? old->shed_level != s->shed_level || old->shed_source != s->shed_source
	        : s->shed_source != GW_FLAG_SRC_DEFAULT)
		gw_log_info("shed_level = %s (%s)", gw_shed_level_name(s->shed_level),
		            source_text(s, s->shed_source, src, sizeof(src)));
	for (size_t r = 0; r < s->nroutes; r++) {
		const struct gw_route_conf *route = &config->routes[r];
		bool changed = old ? old->breakers[r] != s->breakers[r] ||
		                         old->breaker_sources[r] != s->breaker_sources[r]
		                   : s->breaker_sources[r] != GW_FLAG_SRC_DEFAULT;

		if (!changed)
			continue;
		gw_log_info("breaker %s = %s (%s)", route->name, breaker_force_name(s->breakers[r]),
		            gw_flag_source_name(s->breaker_sources[r]));
	}
}

/* ---- the request path ---------------------------------------------------- */

bool gw_flags_is_on(const struct gw_flags_snap *s, size_t index, const char *key, size_t key_len)
{
	if (index >= s->nflags)
		return false;
	return gw_flag_value_on(s->flags[index].value, s->config->flags[index].seed, key, key_len);
}

const struct gw_route_conf *gw_flags_admit(const struct gw_flags_snap *s,
                                           const struct gw_config *config,
                                           const struct gw_route_conf *route,
                                           const struct evkeyvalq *headers, const char *client_ip)
{
	const struct gw_route_flag *f = route->flag;
	const char *key = NULL;
	bool on;

	if (!f)
		return route;
	if (headers)
		key = evhttp_find_header(headers, "X-User-ID");
	if (!key || !key[0])
		key = client_ip ? client_ip : "";
	if (s && s->config == config)
		on = gw_flags_is_on(s, f->index, key, strlen(key));
	else /* no snapshot for this config (yet): the YAML default */
		on = f->index < config->nflags &&
		     gw_flag_value_on(config->flags[f->index].def, config->flags[f->index].seed,
		                      key, strlen(key));
	if (on)
		return route;
	return f->when_off_route; /* NULL: answer flag_off */
}
