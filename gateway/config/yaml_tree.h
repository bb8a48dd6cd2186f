/*
 * A YAML document as a small tree of nodes that remember where they came
 * from, so that every config error can name FILE:LINE:COL.
 *
 * Built from libyaml's event API with the hostile input in mind: aliases and
 * anchors are refused, nesting is capped, duplicate mapping keys are errors,
 * an empty document is an error.
 *
 * Ownership: gw_yaml_load returns a tree owned by the caller, released with
 * gw_yaml_free (all nodes and strings at once).
 */
#ifndef GW_CONFIG_YAML_TREE_H
#define GW_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/errlist.h"

enum gw_node_type { GW_NODE_SCALAR = 0, GW_NODE_MAP, GW_NODE_SEQ };

struct gw_node {
	enum gw_node_type type;
	unsigned line; /* 1-based */
	unsigned col;  /* 1-based */
	/* GW_NODE_SCALAR */
	char *value; /* NUL-terminated */
	bool quoted; /* written as '...' or "..." (never a null/number/bool) */
	/* GW_NODE_MAP: keys[i] (scalars) map to items[i]; GW_NODE_SEQ: items[i] */
	struct gw_node **keys;
	struct gw_node **items;
	size_t count;
};

/* Deepest nesting of mappings and lists accepted (the root counts as 1). */
#define GW_YAML_MAX_DEPTH 32

struct gw_yaml_doc {
	char *file; /* as given, used in messages */
	struct gw_node *root;
	/*
	 * Problems already added to errs that still left a usable tree (a
	 * duplicate key, of which the first one is kept; an anchor). The
	 * document is invalid all the same: the caller may walk the tree to
	 * report more errors, but must then fail.
	 */
	unsigned nerrors;
};

/*
 * Parses FILE. On success returns 0 and fills *doc (check doc->nerrors). On
 * failure returns -1, leaves nothing to free, and adds "FILE:LINE:COL:
 * message" lines to errs (an unreadable file gives "FILE: message").
 */
int gw_yaml_load(const char *file, struct gw_yaml_doc *doc, struct gw_errlist *errs);
/* Same, from a memory buffer; name is used in messages. */
int gw_yaml_load_string(const char *name, const char *text, size_t len, struct gw_yaml_doc *doc,
                        struct gw_errlist *errs);
void gw_yaml_free(struct gw_yaml_doc *doc);

/* The value of key in a map node, or NULL. */
const struct gw_node *gw_node_get(const struct gw_node *map, const char *key);
/* Human name of a node type for messages: "a string", "a mapping", "a list";
 * "an empty value" for a YAML null (nothing, "~" or "null", unquoted). */
const char *gw_node_type_name(const struct gw_node *node);
/* True for an unquoted empty, "~" or "null" scalar: YAML's null. */
bool gw_node_is_null(const struct gw_node *node);

#endif
