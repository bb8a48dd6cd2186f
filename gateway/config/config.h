/*
 * The gateway's configuration: an immutable snapshot built from YAML and
 * fully validated before anything uses it.
 *
 * A snapshot is reference counted: the process holds one reference to the
 * current snapshot, every request holds one to the snapshot it started on,
 * so a reload can swap the current one while requests finish on theirs.
 *
 * Ownership: gw_config_load returns a snapshot with one reference; every
 * string and array below is owned by the snapshot and freed with the last
 * gw_config_unref.
 */
#ifndef GW_CONFIG_CONFIG_H
#define GW_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/types.h>

#include "../util/errlist.h"
#include "../../modules/flags/flag_value.h"

/* Method bits, equal to libevent's EVHTTP_REQ_* values. */
enum gw_method {
	GW_METHOD_GET = 1 << 0,
	GW_METHOD_POST = 1 << 1,
	GW_METHOD_HEAD = 1 << 2,
	GW_METHOD_PUT = 1 << 3,
	GW_METHOD_DELETE = 1 << 4,
	GW_METHOD_OPTIONS = 1 << 5,
	GW_METHOD_TRACE = 1 << 6,
	GW_METHOD_CONNECT = 1 << 7,
	GW_METHOD_PATCH = 1 << 8,
};

enum gw_balance {
	GW_BALANCE_ROUND_ROBIN = 0,
	GW_BALANCE_LEAST_REQUEST,
	GW_BALANCE_RANDOM,
};

/*
 * A route's priority: which requests give way first when the gateway or an
 * upstream is overloaded (SPEC section 5). The value is the rank used by
 * the queues and the overload level: lower is more important. A route
 * without `priority` is normal.
 */
enum gw_priority {
	GW_PRIORITY_CRITICAL = 0,
	GW_PRIORITY_NORMAL = 1,
	GW_PRIORITY_SHEDDABLE = 2,
};
#define GW_PRIORITY_COUNT 3

/* "critical", "normal", "sheddable". */
const char *gw_priority_name(enum gw_priority p);

/* An IP address and port, resolved at load time (never on the event loop). */
struct gw_sockaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* ---- TLS (README "TLS"; built by gateway/tls/) -------------------------- */

/*
 * One certificate of a TLS listener. Paths are as written (relative to
 * the working directory).
 *
 * Ownership: the snapshot owns the strings and one reference to ctx,
 * released with the snapshot (gw_tls_listen_conf_free); connections that
 * still use ctx hold their own references (SSL_new, SSL_set_SSL_CTX), so
 * it lives on after a reload until they are done.
 */
struct gw_tls_cert_conf {
	char *cert; /* PEM: the certificate, then its chain (intermediates) */
	char *key;  /* PEM: its private key, unencrypted */
	/* SNI names that pick this certificate, lower case: exact names, or
	 * "*.example.com" (exactly one more label). Empty for the first
	 * certificate when not written: it is the default anyway. */
	char **server_names;
	size_t nserver_names;
	SSL_CTX *ctx; /* listener: this certificate's context, built at load */
};

/* `min_version` of a listener. */
enum gw_tls_version {
	GW_TLS_VERSION_1_2 = 0,
	GW_TLS_VERSION_1_3,
};

/*
 * `tls` of a listen entry: TLS termination. Built at load into one SSL_CTX
 * per certificate (gateway/tls/tls_server.h); a certificate that cannot
 * be loaded refuses the whole configuration.
 *
 * Ownership: the snapshot owns the array, the strings and the contexts'
 * references (see gw_tls_cert_conf); ctx is borrowed from certificates[0].
 */
struct gw_tls_listen_conf {
	struct gw_tls_cert_conf *certificates; /* >= 1; [0] is the default */
	size_t ncertificates;
	enum gw_tls_version min_version; /* default TLSv1.2; the maximum is TLSv1.3 */
	char *ciphers;                   /* TLS 1.2 list, OpenSSL syntax; never NULL */
	char *ciphersuites;              /* TLS 1.3 list; NULL: OpenSSL's default */
	bool session_tickets;            /* default true */
	uint64_t ticket_key_rotation_ms; /* default 1h, 1s..24h */
	/* The context every accepted connection starts with (SSL_new(ctx)):
	 * certificates[0].ctx, whose SNI callback switches to the others. */
	SSL_CTX *ctx;
};

/*
 * `tls` of an upstream: TLS to its servers (`tls: {}`: system CAs,
 * verification on). Built at load (gateway/tls/tls_client.h).
 *
 * Ownership: the snapshot owns the strings and one reference to ctx,
 * released with the snapshot (gw_tls_upstream_conf_free); each SSL made
 * from it holds its own.
 */
struct gw_tls_upstream_conf {
	char *ca;          /* PEM bundle to verify servers with; NULL: the system's */
	char *server_name; /* SNI and name checked instead of each server's host; NULL: the host */
	bool verify;       /* default true: chain and host name (or IP) */
	char *cert;        /* client certificate (mutual TLS) and its key; both or neither */
	char *key;
	SSL_CTX *ctx; /* built at load */
};

struct gw_listen_conf {
	char *address; /* as written: "0.0.0.0:8080", "[::1]:8080" */
	struct gw_sockaddr addr;
	struct gw_tls_listen_conf *tls; /* NULL for plain HTTP; owned by the snapshot */
};

struct gw_limits_conf {
	uint32_t max_connections;   /* default 10000 */
	uint64_t max_header_bytes;  /* default 16k */
	uint64_t max_body_bytes;    /* default 8m */
	uint64_t header_timeout_ms; /* default 10s */
	uint64_t body_timeout_ms;   /* default 30s */
	uint64_t idle_timeout_ms;   /* default 60s */
	/* a client with response bytes waiting must take 32 KiB of them (or
	 * all) within each send_timeout, or it is closed; default 60s */
	uint64_t send_timeout_ms;
	/* underscores_in_headers: drop (default) or keep request headers whose
	 * name contains '_' (gw_request_header_dropped) */
	bool keep_underscores_in_headers;
	/* request bodies buffered in the whole process (gateway/body_budget.h);
	 * default 256m, or max_body_bytes when that is larger */
	uint64_t max_buffered_body_bytes;
};

/*
 * shedding: the process-wide overload level and the upstream queues
 * (modules/shedding, modules/concurrency). Plain values.
 */
struct gw_shedding_conf {
	uint32_t max_inflight;          /* requests in flight in the process; default 2000 */
	uint64_t target_queue_delay_ms; /* standing queue delay that means overload; default 20ms */
	uint64_t max_loop_lag_ms;       /* event-loop lag that means overload; default 50ms */
	uint64_t retry_after_ms;        /* Retry-After of shed answers (+-20%); default 2s */
	bool dry_run;                   /* count and log what would be shed, shed nothing */
};

/* An upstream's `concurrency_limit`: off, a fixed number, or adaptive. */
enum gw_climit_mode {
	GW_CLIMIT_OFF = 0,
	GW_CLIMIT_FIXED,
	GW_CLIMIT_ADAPTIVE,
};

struct gw_server_conf {
	char *address; /* as written: "127.0.0.1:9001" or "localhost:9001" */
	struct gw_sockaddr addr;
	uint32_t weight; /* 1..1000, default 1 */
};

/* Active health checks of an upstream's servers (upstream/health.h). */
struct gw_health_check_conf {
	char *path;                   /* starts with '/'; default "/healthz" */
	uint64_t interval_ms;         /* 1ms..1h, default 5s */
	uint64_t timeout_ms;          /* 1ms..1h, default 1s, <= interval_ms */
	uint32_t unhealthy_threshold; /* failed checks in a row that mark down; 1..100, default 3 */
	uint32_t healthy_threshold;   /* passed checks in a row that mark up; 1..100, default 2 */
};

/* Passive outlier detection of an upstream's servers (upstream/health.h). */
struct gw_outlier_conf {
	uint32_t consecutive_failures;  /* failed tries in a row that eject; 1..1000, default 5 */
	uint64_t base_ejection_time_ms; /* x the server's ejections so far; 1ms..1h, default 30s */
	uint32_t max_ejection_percent;  /* of the pool ejected at once; 0..100, default 10 */
};

struct gw_upstream_conf {
	char *name;
	size_t index; /* position in gw_config.upstreams */
	struct gw_server_conf *servers;
	size_t nservers;                 /* >= 1 */
	enum gw_balance balance;         /* default least_request */
	uint64_t connect_timeout_ms;     /* default 1s */
	uint32_t max_connections;        /* per server, whole process; default 256 */
	uint32_t keepalive;              /* idle connections kept per server; default 32 */
	enum gw_climit_mode climit_mode; /* default off */
	uint32_t climit_fixed;           /* the limit with GW_CLIMIT_FIXED, whole process */
	/* Valid only when the has_ flag is set (the key is present); the
	 * path string is owned by the snapshot. */
	bool has_health_check;
	struct gw_health_check_conf health_check;
	bool has_outlier_detection;
	struct gw_outlier_conf outlier_detection;
	/* A server back from a failed health state or an ejection ramps from
	 * 10% to 100% of its weight over this (upstream/health.h); 0..1h,
	 * default 5s, 0: off. */
	uint64_t slow_start_ms;
	struct gw_tls_upstream_conf *tls; /* NULL: plain HTTP; owned by the snapshot */
};

struct gw_header_match {
	char *name;  /* compared case-insensitively */
	char *value; /* compared exactly */
};

/*
 * redis: where fleet-wide flags and operator toggles come from
 * (modules/flags/flag_sync.h). Strings are owned by the snapshot.
 */
struct gw_redis_conf {
	char *address;      /* as written: "127.0.0.1:6379", "[::1]:6379" or "/run/redis.sock" */
	char *host;         /* the IP literal, without brackets; NULL for a unix socket */
	unsigned port;      /* 1..65535; 0 for a unix socket */
	char *unix_path;    /* NULL for TCP */
	char *password_env; /* environment variable holding the AUTH password; NULL: no AUTH */
	char *prefix;       /* of every key and of the channel; default "gw:" */
	uint64_t connect_timeout_ms; /* default 250ms */
	uint64_t command_timeout_ms; /* every command, AUTH included; default 250ms */
	uint64_t poll_interval_ms;   /* full re-read even without notifications; default 5s */
	char *cache_file;            /* last known good values; NULL: none */
};

/*
 * admin: the admin API (gateway/admin/admin.h). Present only when the file
 * has an `admin` section. A listen address that is not loopback needs a
 * token (checked at load).
 */
struct gw_admin_conf {
	char *listen; /* as written; default "127.0.0.1:9901" */
	struct gw_sockaddr addr;
	char *token_env; /* environment variable holding the bearer token; NULL: none */
};

/* One entry of the top-level `flags` section: a flag and its default. */
struct gw_flag_conf {
	char *name;
	struct gw_flag_value def;
	uint32_t seed; /* gw_flag_seed(name): where every bucket hash of the flag starts */
};

/* A flag value a profile sets; flag indexes gw_config.flags. */
struct gw_profile_flag {
	size_t flag;
	struct gw_flag_value value;
};

/* One entry of `profiles`: what `SET gw:ops:profile NAME` switches on. */
struct gw_profile_conf {
	char *name;
	struct gw_profile_flag *flags; /* owned by the snapshot */
	size_t nflags;
	int shed_level; /* GW_SHED_LEVEL_AUTO (default) or 0..2 */
};

/*
 * A route's `flag: {name, when_off: {status} | {upstream}}`. While the flag
 * is off for a request, the request is answered flag_off with
 * when_off_status, or sent to when_off_upstream instead: then it runs as
 * when_off_route, a copy of the route (same name, index, match and
 * modules, so the same breaker and budget) whose upstream is
 * when_off_upstream. The copy shares every string and array of the route
 * and owns none: freeing it frees the copy alone.
 */
struct gw_route_flag {
	char *name;
	size_t index;                               /* in gw_config.flags */
	unsigned when_off_status;                   /* 400..599, default 404 */
	struct gw_upstream_conf *when_off_upstream; /* NULL: answer when_off_status */
	struct gw_route_conf *when_off_route;       /* owned; NULL with when_off_upstream NULL */
};

/* Longest module configuration a route can carry (modules/module.h). */
#define GW_MAX_MODULES 16

struct gw_route_conf {
	char *name;
	size_t index; /* position in gw_config.routes */
	/* match: every present condition must hold */
	char *path_prefix; /* default "/" */
	size_t path_prefix_len;
	char *host;       /* NULL = any; compared case-insensitively, port ignored */
	unsigned methods; /* GW_METHOD_* bits; 0 = any */
	struct gw_header_match *headers;
	size_t nheaders;
	/* action */
	struct gw_upstream_conf *upstream; /* points into the same snapshot */
	bool strip_prefix;                 /* default false */
	uint64_t timeout_ms;               /* default 15s */
	enum gw_priority priority;         /* default normal */
	struct gw_route_flag *flag;        /* NULL: no flag; owned by the snapshot */
	/* Per-module configuration, indexed like modules/registry.c; NULL when
	 * the route does not configure that module. Owned by the snapshot. */
	void *module_conf[GW_MAX_MODULES];
};

struct gw_config {
	atomic_int refs;
	char *file;

	struct gw_listen_conf *listens;
	size_t nlistens;
	unsigned workers;          /* resolved: "auto" becomes the number of cores */
	uint64_t drain_timeout_ms; /* default 10s */
	char *access_log;          /* "stdout" (default), "off", or a path */
	struct gw_limits_conf limits;
	struct gw_shedding_conf shedding;

	struct gw_upstream_conf *upstreams;
	size_t nupstreams;
	struct gw_route_conf *routes;
	size_t nroutes;

	bool has_admin; /* the `admin` section is present */
	struct gw_admin_conf admin;
	bool has_redis; /* the `redis` section is present */
	struct gw_redis_conf redis;
	struct gw_flag_conf *flags; /* the `flags` section, in file order */
	size_t nflags;
	struct gw_profile_conf *profiles; /* the `profiles` section, in file order */
	size_t nprofiles;
	/* The file's bytes as loaded: 64-bit FNV-1a in hex ("" from a string). */
	char hash[17];
};

/*
 * Loads and validates FILE. Returns a snapshot with one reference, or NULL
 * after adding every error found ("FILE:LINE:COL: message") to errs, in
 * file order (line, then column).
 */
struct gw_config *gw_config_load(const char *file, struct gw_errlist *errs);
/* Same from memory (tests); name appears in messages. */
struct gw_config *gw_config_load_string(const char *name, const char *yaml,
                                        struct gw_errlist *errs);

struct gw_config *gw_config_ref(struct gw_config *config);
void gw_config_unref(struct gw_config *config);

const struct gw_upstream_conf *gw_config_find_upstream(const struct gw_config *config,
                                                       const char *name);

/* Index of the flag (or profile) called name, or -1. */
int gw_config_find_flag(const struct gw_config *config, const char *name);
int gw_config_find_profile(const struct gw_config *config, const char *name);

/* The rule for route names: printable ASCII, inner spaces allowed, no '/',
 * 1-128 bytes (a route name is a path segment of the admin API). */
bool gw_config_valid_route_name(const char *s);

/*
 * Parses "IP:PORT" or "[IPv6]:PORT" or "HOST:PORT" (resolved now, first
 * answer of getaddrinfo), port 1..65535. 0, or -1 with *why set to a short
 * reason (static or thread-local storage: valid until the next call).
 */
int gw_parse_sockaddr(const char *text, struct gw_sockaddr *out, const char **why);
/* Same for an address to bind to: port 0 (any port) is accepted too. */
int gw_parse_bind_sockaddr(const char *text, struct gw_sockaddr *out, const char **why);

#endif
