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

#include "../util/errlist.h"

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

enum gw_priority {
	GW_PRIORITY_NORMAL = 0,
	GW_PRIORITY_CRITICAL,
	GW_PRIORITY_SHEDDABLE,
};

/* An IP address and port, resolved at load time (never on the event loop). */
struct gw_sockaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct gw_listen_conf {
	char *address; /* as written: "0.0.0.0:8080", "[::1]:8080" */
	struct gw_sockaddr addr;
	char *tls_cert; /* NULL for plain HTTP */
	char *tls_key;
};

struct gw_limits_conf {
	uint32_t max_connections;  /* default 10000 */
	uint64_t max_header_bytes; /* default 16k */
	uint64_t max_body_bytes;   /* default 8m */
	uint64_t header_timeout_ms; /* default 10s */
	uint64_t body_timeout_ms;   /* default 30s */
	uint64_t idle_timeout_ms;   /* default 60s */
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
	size_t nservers; /* >= 1 */
	enum gw_balance balance;     /* default round_robin */
	uint64_t connect_timeout_ms; /* default 1s */
	uint32_t max_connections;    /* per server, whole process; default 256 */
	uint32_t keepalive;          /* idle connections kept per server; default 32 */
	/* Valid only when the has_ flag is set (the key is present); the
	 * path string is owned by the snapshot. */
	bool has_health_check;
	struct gw_health_check_conf health_check;
	bool has_outlier_detection;
	struct gw_outlier_conf outlier_detection;
};

struct gw_header_match {
	char *name;  /* compared case-insensitively */
	char *value; /* compared exactly */
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
	bool strip_prefix;  /* default false */
	uint64_t timeout_ms; /* default 15s */
	enum gw_priority priority;
	/* Per-module configuration, indexed like modules/registry.c; NULL when
	 * the route does not configure that module. Owned by the snapshot. */
	void *module_conf[GW_MAX_MODULES];
};

struct gw_config {
	atomic_int refs;
	char *file;

	struct gw_listen_conf *listens;
	size_t nlistens;
	unsigned workers;        /* resolved: "auto" becomes the number of cores */
	uint64_t drain_timeout_ms; /* default 10s */
	char *access_log;        /* "stdout" (default), "off", or a path */
	struct gw_limits_conf limits;

	struct gw_upstream_conf *upstreams;
	size_t nupstreams;
	struct gw_route_conf *routes;
	size_t nroutes;
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

/*
 * Parses "IP:PORT" or "[IPv6]:PORT" or "HOST:PORT" (resolved now, first
 * answer of getaddrinfo), port 1..65535. 0, or -1 with *why set to a short
 * reason (static or thread-local storage: valid until the next call).
 */
int gw_parse_sockaddr(const char *text, struct gw_sockaddr *out, const char **why);
/* Same for an address to bind to: port 0 (any port) is accepted too. */
int gw_parse_bind_sockaddr(const char *text, struct gw_sockaddr *out, const char **why);

#endif
