/*
 * The cache file (redis.cache_file): the last good values read from Redis,
 * on disk, so that a gateway starting while Redis is down starts with them
 * instead of the YAML defaults.
 *
 * A small JSON object, written whole to a temporary file in the same
 * directory, fsync'd, then renamed over the old one (and the directory
 * fsync'd), so a reader sees the old file or the new one, never half of
 * one:
 *
 *   {"version":1,"written":"2026-11-28T08:23:16.103Z",
 *    "flags":{"checkout_v2":"30%"},
 *    "shed_level":{"value":"1","expires_ms":1795250000000},
 *    "profile":{"value":"peak","expires_ms":0},
 *    "breakers":{"checkout":{"value":"open","expires_ms":0}}}
 *
 * expires_ms is the wall-clock end of a value read with a TTL (0: none): a
 * value whose end has passed is not loaded. Names the config does not know
 * (a flag removed since) and values that do not parse are skipped.
 */
#ifndef GW_MODULES_FLAGS_FLAG_CACHE_H
#define GW_MODULES_FLAGS_FLAG_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "flag_state.h"

/* 0, or -1 with why filled ("cannot write ...: No space left on device"). */
int gw_flags_cache_write(const char *path, const struct gw_config *config,
                         const struct gw_flags_layer *layer, char *why, size_t why_size);

/*
 * Fills layer (from gw_flags_layer_new, empty) from the file and marks it
 * cached. 0, or -1 with why filled (missing file, not JSON, wrong version);
 * the layer is then left empty.
 */
int gw_flags_cache_read(const char *path, const struct gw_config *config,
                        struct gw_flags_layer *layer, int64_t now_wall_ms, char *why,
                        size_t why_size);

/*
 * The same from the file's bytes in memory, text[0..len) (no NUL needed);
 * name stands for the file in why.
 */
int gw_flags_cache_parse(const char *name, const char *text, size_t len,
                         const struct gw_config *config, struct gw_flags_layer *layer,
                         int64_t now_wall_ms, char *why, size_t why_size);

#endif
