/*
 * YAML text to a tree of gw_node (yaml_tree.h), through libyaml's event API.
 *
 * Why events and not yaml_parser_load: the document API follows aliases
 * (a cyclic or exponentially expanding graph from a few bytes), has no
 * nesting limit and keeps duplicate keys silently. Reading events, the
 * builder sees every anchor and alias before it means anything, counts the
 * depth itself, and checks each mapping for duplicates once it is complete.
 *
 * Errors come in two kinds. Some leave a tree that says exactly what the
 * file says minus the offending part (a duplicate key: the first is kept;
 * an anchor: the node is kept without it); they are counted in
 * doc->nerrors so the caller can still report the errors of the rest of the
 * file. Others leave no trustworthy tree (an alias, a second document); the
 * builder then reports what it can and the load fails. A libyaml error or
 * nesting too deep ends the reading, so nothing after it is reported.
 */
#include "yaml_tree.h"
#include "../util/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A config file is small; this only stops a mistaken path to a huge file. */
#define GW_YAML_MAX_FILE (16u << 20)

/*
 * State of one parse. The parser and the input belong to the caller of
 * build_tree; the builder owns nothing but the nodes it returns.
 */
struct builder {
	yaml_parser_t parser;
	const char *name;
	const unsigned char *text; /* the input, to place reader errors */
	size_t len;
	struct gw_errlist *errs;
	unsigned nerrors; /* errors that left a usable tree */
	bool broken;      /* errors that did not */
	bool failed;      /* no more events: libyaml gave up, or the builder did */
};

static void report(struct builder *b, size_t line0, size_t col0, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds "NAME:LINE:COL: message"; line0 and col0 are libyaml's 0-based marks. */
static void report(struct builder *b, size_t line0, size_t col0, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_errlist_add(b->errs, "%s:%zu:%zu: %s", b->name, line0 + 1, col0 + 1, msg);
}

/*
 * libyaml's reader (encoding) errors carry a byte offset but no mark: find
 * the line and column of that offset in the input.
 */
static void offset_to_mark(const struct builder *b, size_t offset, size_t *line0, size_t *col0)
{
	size_t line = 0, start = 0;

	if (offset > b->len)
		offset = b->len;
	for (size_t i = 0; i < offset; i++) {
		if (b->text[i] == '\n') {
			line++;
			start = i + 1;
		}
	}
	*line0 = line;
	*col0 = offset - start;
}

static void report_parser_error(struct builder *b)
{
	const yaml_parser_t *p = &b->parser;
	const char *problem = p->problem ? p->problem : "invalid YAML";
	size_t line0, col0;

	b->failed = true;
	switch (p->error) {
	case YAML_READER_ERROR:
		offset_to_mark(b, p->problem_offset, &line0, &col0);
		if (p->problem_value != -1)
			report(b, line0, col0, "%s (byte 0x%02x)", problem,
			       (unsigned)p->problem_value & 0xff);
		else
			report(b, line0, col0, "%s", problem);
		break;
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (p->context)
			report(b, p->problem_mark.line, p->problem_mark.column,
			       "%s (%s at %zu:%zu)", problem, p->context, p->context_mark.line + 1,
			       p->context_mark.column + 1);
		else
			report(b, p->problem_mark.line, p->problem_mark.column, "%s", problem);
		break;
	default:
		report(b, p->mark.line, p->mark.column, "%s", problem);
		break;
	}
}

/* The next event, or -1 after reporting libyaml's error. */
static int next_event(struct builder *b, yaml_event_t *ev)
{
	if (b->failed)
		return -1;
	if (!yaml_parser_parse(&b->parser, ev)) {
		report_parser_error(b);
		return -1;
	}
	return 0;
}

static struct gw_node *node_new(enum gw_node_type type, const yaml_mark_t *mark)
{
	struct gw_node *n = gw_calloc(1, sizeof(*n));

	n->type = type;
	n->line = (unsigned)mark->line + 1;
	n->col = (unsigned)mark->column + 1;
	return n;
}

static void node_free(struct gw_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->count; i++) {
		if (n->keys)
			node_free(n->keys[i]);
		node_free(n->items[i]);
	}
	free(n->keys);
	free(n->items);
	free(n->value);
	free(n);
}

/*
 * Appends an entry. The arrays grow by doubling whenever count reaches a
 * power of two, so no capacity needs to be stored in the public node.
 */
static void node_push(struct gw_node *n, struct gw_node *key, struct gw_node *item)
{
	if ((n->count & (n->count - 1)) == 0) {
		size_t cap = n->count ? n->count * 2 : 1;

		n->items = gw_realloc(n->items, cap * sizeof(*n->items));
		if (n->type == GW_NODE_MAP)
			n->keys = gw_realloc(n->keys, cap * sizeof(*n->keys));
	}
	if (n->type == GW_NODE_MAP)
		n->keys[n->count] = key;
	n->items[n->count++] = item;
}

static void check_anchor(struct builder *b, const yaml_char_t *anchor, const yaml_mark_t *mark)
{
	if (!anchor)
		return;
	report(b, mark->line, mark->column, "anchors are not allowed (&%s)", (const char *)anchor);
	b->nerrors++;
}

static struct gw_node *parse_node(struct builder *b, yaml_event_t *ev, unsigned depth);

static void parse_seq_items(struct builder *b, struct gw_node *seq, unsigned depth)
{
	yaml_event_t ev;

	while (next_event(b, &ev) == 0) {
		struct gw_node *item;

		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return;
		}
		item = parse_node(b, &ev, depth + 1);
		if (item)
			node_push(seq, NULL, item);
	}
}

struct key_ref {
	const char *key;
	size_t index;
};

static int key_ref_cmp(const void *pa, const void *pb)
{
	const struct key_ref *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);

	if (c)
		return c;
	return a->index < b->index ? -1 : a->index > b->index;
}

/*
 * Reports and drops every key that already appeared earlier in the same
 * mapping; the first occurrence wins. Sorting (key, position) pairs finds
 * the duplicates in O(n log n): a hostile file with a huge mapping must not
 * turn a pairwise comparison into minutes of CPU. Errors are then emitted in
 * file order.
 */
static void drop_duplicate_keys(struct builder *b, struct gw_node *map)
{
	struct key_ref *refs;
	size_t *first; /* first[i] = index of the earlier twin of entry i, or i */
	size_t kept = 0;

	if (map->count < 2)
		return;
	refs = gw_malloc(map->count * sizeof(*refs));
	first = gw_malloc(map->count * sizeof(*first));
	for (size_t i = 0; i < map->count; i++) {
		refs[i].key = map->keys[i]->value;
		refs[i].index = i;
		first[i] = i;
	}
	qsort(refs, map->count, sizeof(*refs), key_ref_cmp);
	for (size_t i = 1; i < map->count; i++)
		if (strcmp(refs[i].key, refs[i - 1].key) == 0)
			first[refs[i].index] = first[refs[i - 1].index];
	for (size_t i = 0; i < map->count; i++) {
		const struct gw_node *twin = map->keys[first[i]];

		if (first[i] == i) {
			map->keys[kept] = map->keys[i];
			map->items[kept++] = map->items[i];
			continue;
		}
		report(b, map->keys[i]->line - 1, map->keys[i]->col - 1,
		       "duplicate key '%s' (first defined at %u:%u)", map->keys[i]->value,
		       twin->line, twin->col);
		b->nerrors++;
		node_free(map->keys[i]);
		node_free(map->items[i]);
	}
	map->count = kept;
	free(refs);
	free(first);
}

static void parse_map_entries(struct builder *b, struct gw_node *map, unsigned depth)
{
	yaml_event_t ev;

	while (next_event(b, &ev) == 0) {
		struct gw_node *key, *value;

		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			drop_duplicate_keys(b, map);
			return;
		}
		key = parse_node(b, &ev, depth + 1);
		if (next_event(b, &ev) < 0) {
			node_free(key);
			return;
		}
		value = parse_node(b, &ev, depth + 1);
		if (key && key->type != GW_NODE_SCALAR) {
			report(b, key->line - 1, key->col - 1,
			       "mapping keys must be strings, got %s", gw_node_type_name(key));
			b->nerrors++;
		} else if (key && value) {
			node_push(map, key, value);
			continue;
		}
		node_free(key);
		node_free(value);
	}
}

static struct gw_node *parse_scalar(struct builder *b, const yaml_event_t *ev)
{
	struct gw_node *n = node_new(GW_NODE_SCALAR, &ev->start_mark);
	const char *value = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	check_anchor(b, ev->data.scalar.anchor, &ev->start_mark);
	if (memchr(value, '\0', len)) {
		report(b, ev->start_mark.line, ev->start_mark.column,
		       "NUL characters are not allowed");
		b->broken = true;
	}
	n->value = gw_strndup(value, len);
	n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
	            ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return n;
}

/*
 * Builds the node that starts with ev, consuming ev and, for a collection,
 * every event up to its end. Returns NULL when nothing usable was built
 * (an alias, too deep, or libyaml failed: b->failed).
 */
static struct gw_node *parse_node(struct builder *b, yaml_event_t *ev, unsigned depth)
{
	yaml_event_t start = *ev; /* the marks and the type; freed below */
	struct gw_node *n = NULL;
	const yaml_char_t *anchor = NULL;

	switch (start.type) {
	case YAML_SCALAR_EVENT:
		n = parse_scalar(b, ev);
		yaml_event_delete(ev);
		return n;
	case YAML_ALIAS_EVENT:
		report(b, start.start_mark.line, start.start_mark.column,
		       "aliases are not allowed (*%s)", (const char *)ev->data.alias.anchor);
		b->broken = true;
		yaml_event_delete(ev);
		return NULL;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	default:
		/* libyaml never sends another event here; refuse rather than loop. */
		report(b, start.start_mark.line, start.start_mark.column, "unexpected YAML event");
		b->broken = true;
		yaml_event_delete(ev);
		return NULL;
	}
	check_anchor(b, anchor, &start.start_mark);
	yaml_event_delete(ev);
	if (depth > GW_YAML_MAX_DEPTH) {
		/*
		 * Stop reading here rather than skip the rest of the subtree:
		 * libyaml's scanner does work proportional to the flow depth for
		 * every token, so a few hundred KiB of "[[[[..." would keep it busy
		 * for minutes. Nothing after this point is reported.
		 */
		report(b, start.start_mark.line, start.start_mark.column,
		       "nesting deeper than %d levels", GW_YAML_MAX_DEPTH);
		b->failed = true;
		return NULL;
	}
	if (start.type == YAML_SEQUENCE_START_EVENT) {
		n = node_new(GW_NODE_SEQ, &start.start_mark);
		parse_seq_items(b, n, depth);
	} else {
		n = node_new(GW_NODE_MAP, &start.start_mark);
		parse_map_entries(b, n, depth);
	}
	if (b->failed) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* Expects an event of the given type, which carries nothing to keep. */
static int expect_event(struct builder *b, yaml_event_type_t type, yaml_event_t *ev)
{
	if (next_event(b, ev) < 0)
		return -1;
	if (ev->type != type) {
		report(b, ev->start_mark.line, ev->start_mark.column, "unexpected YAML event");
		b->broken = true;
		yaml_event_delete(ev);
		return -1;
	}
	yaml_event_delete(ev);
	return 0;
}

/*
 * stream-start, then either stream-end (no document: empty) or exactly one
 * document, then stream-end. Returns the root, or NULL.
 */
static struct gw_node *build_tree(struct builder *b)
{
	struct gw_node *root = NULL;
	yaml_event_t ev;

	if (expect_event(b, YAML_STREAM_START_EVENT, &ev) < 0 || next_event(b, &ev) < 0)
		return NULL;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		return NULL;
	}
	yaml_event_delete(&ev); /* document start */
	if (next_event(b, &ev) < 0)
		return NULL;
	root = parse_node(b, &ev, 1);
	if (b->failed || expect_event(b, YAML_DOCUMENT_END_EVENT, &ev) < 0 ||
	    next_event(b, &ev) < 0)
		return root;
	if (ev.type == YAML_DOCUMENT_START_EVENT) {
		report(b, ev.start_mark.line, ev.start_mark.column,
		       "multiple documents are not allowed");
		b->broken = true;
	}
	yaml_event_delete(&ev);
	return root;
}

int gw_yaml_load_string(const char *name, const char *text, size_t len, struct gw_yaml_doc *doc,
                        struct gw_errlist *errs)
{
	struct builder b = {
	    .name = name,
	    .text = (const unsigned char *)text,
	    .len = len,
	    .errs = errs,
	};
	struct gw_node *root;

	memset(doc, 0, sizeof(*doc));
	if (!yaml_parser_initialize(&b.parser)) {
		gw_errlist_add(errs, "%s: cannot initialise the YAML parser", name);
		return -1;
	}
	yaml_parser_set_input_string(&b.parser, b.text, len);
	root = build_tree(&b);
	yaml_parser_delete(&b.parser);

	if (b.failed || b.broken) {
		node_free(root);
		return -1;
	}
	if (!root || gw_node_is_null(root)) {
		/* Nothing, comments only, "---" alone, or "~": an empty file. */
		gw_errlist_add(errs, "%s:1:1: empty configuration", name);
		node_free(root);
		return -1;
	}
	doc->file = gw_strdup(name);
	doc->root = root;
	doc->nerrors = b.nerrors;
	return 0;
}

/* Reads the whole of file into *text (NUL-terminated), or reports why not. */
static int read_file(const char *file, char **text, size_t *len, struct gw_errlist *errs)
{
	FILE *f = fopen(file, "rb");
	size_t cap = 4096, used = 0;
	char *buf;

	if (!f) {
		gw_errlist_add(errs, "%s: cannot open: %s", file, strerror(errno));
		return -1;
	}
	buf = gw_malloc(cap);
	for (;;) {
		size_t n = fread(buf + used, 1, cap - used - 1, f);

		used += n;
		if (n == 0)
			break;
		if (used > GW_YAML_MAX_FILE) {
			gw_errlist_add(errs, "%s: larger than %u MiB", file,
			               GW_YAML_MAX_FILE >> 20);
			goto fail;
		}
		if (cap - used - 1 == 0) {
			cap *= 2;
			buf = gw_realloc(buf, cap);
		}
	}
	if (ferror(f)) {
		gw_errlist_add(errs, "%s: cannot read: %s", file, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}

int gw_yaml_load(const char *file, struct gw_yaml_doc *doc, struct gw_errlist *errs)
{
	char *text;
	size_t len;
	int rc;

	memset(doc, 0, sizeof(*doc));
	if (read_file(file, &text, &len, errs) < 0)
		return -1;
	rc = gw_yaml_load_string(file, text, len, doc, errs);
	free(text);
	return rc;
}

void gw_yaml_free(struct gw_yaml_doc *doc)
{
	if (!doc)
		return;
	node_free(doc->root);
	free(doc->file);
	memset(doc, 0, sizeof(*doc));
}

const struct gw_node *gw_node_get(const struct gw_node *map, const char *key)
{
	if (!map || map->type != GW_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->count; i++)
		if (strcmp(map->keys[i]->value, key) == 0)
			return map->items[i];
	return NULL;
}

bool gw_node_is_null(const struct gw_node *node)
{
	if (!node || node->type != GW_NODE_SCALAR || node->quoted)
		return false;
	return node->value[0] == '\0' || strcmp(node->value, "~") == 0 ||
	       strcmp(node->value, "null") == 0 || strcmp(node->value, "Null") == 0 ||
	       strcmp(node->value, "NULL") == 0;
}

const char *gw_node_type_name(const struct gw_node *node)
{
	if (!node)
		return "nothing";
	switch (node->type) {
	case GW_NODE_MAP:
		return "a mapping";
	case GW_NODE_SEQ:
		return "a list";
	case GW_NODE_SCALAR:
	default:
		return gw_node_is_null(node) ? "an empty value" : "a string";
	}
}
