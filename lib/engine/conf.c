/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading and checking the YAML config (see conf.h and docs/CONFIG.md). Three passes
 * over the same text:
 *  1. walk: libyaml's event parser records every node's position into the diag
 *     ("servers[0].listen[1]" -> line:column) and, following the libcyaml schema,
 *     reports every unknown key, duplicate key, missing required key and wrong node
 *     kind at once (libcyaml itself stops at the first problem);
 *  2. libcyaml loads the structs; its log lines are routed into the diag, so the
 *     problems the walk does not model (a bad integer in a plugin option) still come
 *     out as file:line:column;
 *  3. checks that need no plugin: workers, HTTP endpoints, zones, listen addresses,
 *     and one zone served twice on one address.
 * Plugin options are checked later by the plugins' init hooks (view.c).
 * Thread: loader.
 */
#include "lib/engine/conf.h"
#include "lib/engine/hot.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cyaml/cyaml.h>
#include <libknot/libknot.h>
#include <yaml.h>

#include "lib/core/errcode.h"
#include "lib/core/parse.h"
/* One include per line of plugins.def: each declares struct tern_<name>_conf and
 * tern_<name>_conf_fields, which the plugins mapping below needs at compile time. */
#include "lib/plugins/cache/cache.h"
#include "lib/plugins/errors/errors.h"
#include "lib/plugins/file/file.h"
#include "lib/plugins/forward/forward.h"
#include "lib/plugins/hosts/hosts.h"
#include "lib/plugins/kubernetes/kubernetes.h"
#include "lib/plugins/local/local.h"
#include "lib/plugins/log/log.h"

#define CONF_MAX_BYTES   (16u << 20) /* a config larger than this is a mistake */
#define CONF_MAX_DEPTH   64          /* YAML nesting limit of the walk */
#define CONF_MAX_WORKERS 1024
#define LAMEDUCK_MAX_MS  3600000u    /* 1h */
#define LAMEDUCK_DEF_MS  5000u       /* health's default */
#define PATH_MAX_LEN     256         /* == sizeof(tern_diag.prefix) */

/* ---------------------------------------------------------------- schema -- */

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t plugins_fields[] = {
#define TERN_PLUGIN_X(name) CYAML_FIELD_MAPPING_PTR(#name, CYAML_FLAG_OPTIONAL, \
	struct tern_plugins_conf, name, tern_##name##_conf_fields),
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X
	CYAML_FIELD_END
};

static const cyaml_schema_field_t http_fields[] = {
	CYAML_FIELD_STRING_PTR("listen", CYAML_FLAG_OPTIONAL,
	                       struct tern_http_conf, listen, 0, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("lameduck", CYAML_FLAG_OPTIONAL,
	                       struct tern_http_conf, lameduck, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

/* zones/listen/plugins are optional to libcyaml so that check_server() can report a
 * missing one together with every other problem, in words of its own. */
static const cyaml_schema_field_t server_fields[] = {
	CYAML_FIELD_SEQUENCE("zones", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_server_conf, zones, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("listen", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_server_conf, listen, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING_PTR("plugins", CYAML_FLAG_OPTIONAL,
	                        struct tern_server_conf, plugins, plugins_fields),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t server_entry = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct tern_server_conf, server_fields),
};

/* workers is a string so that both `workers: auto` and `workers: 4` load. */
static const cyaml_schema_field_t top_fields[] = {
	CYAML_FIELD_STRING_PTR("workers", CYAML_FLAG_OPTIONAL,
	                       struct tern_conf, workers, 0, CYAML_UNLIMITED),
	CYAML_FIELD_UINT_PTR("hot_answers", CYAML_FLAG_OPTIONAL, struct tern_conf, hot_answers),
	CYAML_FIELD_MAPPING_PTR("metrics", CYAML_FLAG_OPTIONAL, struct tern_conf, metrics, http_fields),
	CYAML_FIELD_MAPPING_PTR("health", CYAML_FLAG_OPTIONAL, struct tern_conf, health, http_fields),
	CYAML_FIELD_MAPPING_PTR("ready", CYAML_FLAG_OPTIONAL, struct tern_conf, ready, http_fields),
	CYAML_FIELD_SEQUENCE("servers", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_conf, servers, &server_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t top_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct tern_conf, top_fields),
};

/* ------------------------------------------------------- pass 1: the walk -- */

struct walk {
	yaml_parser_t parser;
	struct tern_diag *diag;
	bool broken;  /* a syntax error was reported: stop */
};

static void walk_report(struct walk *w, const yaml_mark_t *m, const char *path,
                        const char *fmt, ...) TERN_PRINTF(4);

/* A problem at an exact mark (a key, which has no path of its own in the pos map). */
static void walk_report(struct walk *w, const yaml_mark_t *m, const char *path,
                        const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tern_diag_raw(w->diag, "%s:%zu:%zu: %s%s%s", w->diag->file, m->line + 1, m->column + 1,
	              path, path[0] ? ": " : "", text);
}

static bool walk_next(struct walk *w, yaml_event_t *ev)
{
	if (w->broken)
		return false;
	if (yaml_parser_parse(&w->parser, ev))
		return true;
	w->broken = true;
	const yaml_mark_t *m = &w->parser.problem_mark;
	if (w->parser.context != NULL)
		tern_diag_raw(w->diag, "%s:%zu:%zu: YAML syntax error: %s %s", w->diag->file,
		              m->line + 1, m->column + 1, w->parser.problem, w->parser.context);
	else
		tern_diag_raw(w->diag, "%s:%zu:%zu: YAML syntax error: %s", w->diag->file,
		              m->line + 1, m->column + 1,
		              w->parser.problem ? w->parser.problem : "unreadable input");
	return false;
}

enum node_kind { KIND_ANY, KIND_SCALAR, KIND_SEQUENCE, KIND_MAPPING };

/* What YAML node a schema value wants; KIND_ANY where the walk does not look. */
static enum node_kind schema_kind(const cyaml_schema_value_t *s)
{
	if (s == NULL)
		return KIND_ANY;
	switch (s->type) {
	case CYAML_INT: case CYAML_UINT: case CYAML_BOOL: case CYAML_ENUM:
	case CYAML_FLOAT: case CYAML_STRING:
		return KIND_SCALAR;
	case CYAML_FLAGS: case CYAML_SEQUENCE: case CYAML_SEQUENCE_FIXED:
		return KIND_SEQUENCE;
	case CYAML_MAPPING: case CYAML_BITFIELD:
		return KIND_MAPPING;
	default:
		return KIND_ANY;
	}
}

static const char *kind_want(const cyaml_schema_value_t *s)
{
	switch (s->type) {
	case CYAML_INT: case CYAML_UINT: case CYAML_FLOAT: return "a number";
	case CYAML_BOOL:                                   return "a boolean";
	case CYAML_MAPPING: case CYAML_BITFIELD:           return "a mapping";
	case CYAML_FLAGS: case CYAML_SEQUENCE: case CYAML_SEQUENCE_FIXED: return "a sequence";
	default:                                           return "a string";
	}
}

static bool scalar_is_null(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	if (!ev->data.scalar.plain_implicit)
		return false;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Report a node whose kind differs from what @p s wants. @return true if reported. */
static bool walk_check_kind(struct walk *w, const yaml_event_t *ev, const char *path,
                            const cyaml_schema_value_t *s)
{
	enum node_kind want = schema_kind(s);
	enum node_kind got = ev->type == YAML_SCALAR_EVENT ? KIND_SCALAR :
	                     ev->type == YAML_SEQUENCE_START_EVENT ? KIND_SEQUENCE :
	                     ev->type == YAML_MAPPING_START_EVENT ? KIND_MAPPING : KIND_ANY;
	if (want == KIND_ANY || got == KIND_ANY || want == got)
		return false;
	/* A pointer that may be NULL accepts a null scalar; libcyaml decides the rest. */
	if (got == KIND_SCALAR && (s->flags & CYAML_FLAG_POINTER_NULL) == CYAML_FLAG_POINTER_NULL)
		return false;
	if (got == KIND_SCALAR && scalar_is_null(ev))
		walk_report(w, &ev->start_mark, path, "expected %s, got an empty value%s",
		            kind_want(s), want == KIND_MAPPING ? " (write {} for no options)" : "");
	else if (got == KIND_SCALAR)
		walk_report(w, &ev->start_mark, path, "expected %s, got \"%s\"", kind_want(s),
		            (const char *)ev->data.scalar.value);
	else
		walk_report(w, &ev->start_mark, path, "expected %s, got %s", kind_want(s),
		            got == KIND_MAPPING ? "a mapping" : "a sequence");
	return true;
}

static bool walk_node(struct walk *w, yaml_event_t *ev, const char *path,
                      const cyaml_schema_value_t *s, unsigned depth);

static bool walk_sequence(struct walk *w, const char *path, const cyaml_schema_value_t *s,
                          unsigned depth)
{
	const cyaml_schema_value_t *entry = NULL;
	if (s != NULL && (s->type == CYAML_SEQUENCE || s->type == CYAML_SEQUENCE_FIXED))
		entry = s->sequence.entry;
	for (unsigned i = 0;; i++) {
		yaml_event_t ev;
		if (!walk_next(w, &ev))
			return false;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return true;
		}
		char child[PATH_MAX_LEN];
		snprintf(child, sizeof(child), "%s[%u]", path, i);
		if (!walk_node(w, &ev, child, entry, depth + 1))
			return false;
	}
}

static const cyaml_schema_field_t *find_field(const cyaml_schema_value_t *s, const char *key,
                                              size_t *index)
{
	bool nocase = (s->flags & CYAML_FLAG_CASE_INSENSITIVE) != 0;
	for (size_t i = 0; s->mapping.fields[i].key != NULL; i++) {
		const char *k = s->mapping.fields[i].key;
		if (nocase ? strcasecmp(k, key) == 0 : strcmp(k, key) == 0) {
			*index = i;
			return &s->mapping.fields[i];
		}
	}
	return NULL;
}

/* "errors, file, hosts, log" for the unknown-key message. */
static void list_keys(const cyaml_schema_field_t *fields, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; fields[i].key != NULL && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", fields[i].key);
}

static bool walk_mapping(struct walk *w, const yaml_event_t *start, const char *path,
                         const cyaml_schema_value_t *s, unsigned depth)
{
	const cyaml_schema_value_t *ms = (s != NULL && s->type == CYAML_MAPPING) ? s : NULL;
	uint64_t seen = 0; /* fields beyond 64 are not tracked for duplicates/required */
	for (;;) {
		yaml_event_t key;
		if (!walk_next(w, &key))
			return false;
		if (key.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&key);
			break;
		}
		char child[PATH_MAX_LEN];
		const cyaml_schema_value_t *vs = NULL;
		if (key.type != YAML_SCALAR_EVENT) {
			walk_report(w, &key.start_mark, path, "mapping keys must be plain strings");
			snprintf(child, sizeof(child), "%s", path);
			if (!walk_node(w, &key, child, NULL, depth + 1))
				return false;
		} else {
			const char *k = (const char *)key.data.scalar.value;
			snprintf(child, sizeof(child), "%s%s%s", path, path[0] ? "." : "", k);
			size_t idx = 0;
			const cyaml_schema_field_t *f = ms ? find_field(ms, k, &idx) : NULL;
			if (ms != NULL && f == NULL) {
				char known[256];
				list_keys(ms->mapping.fields, known, sizeof(known));
				if (known[0] == '\0')
					walk_report(w, &key.start_mark, child,
					            "unknown key (no keys are allowed here)");
				else
					walk_report(w, &key.start_mark, child,
					            "unknown %s (expected one of: %s)",
					            ms->mapping.fields == plugins_fields ? "plugin" : "key",
					            known);
			} else if (f != NULL && idx < 64 && (seen & (1ull << idx))) {
				walk_report(w, &key.start_mark, child, "duplicate key");
			} else if (f != NULL) {
				vs = &f->value;
			}
			if (f != NULL && idx < 64)
				seen |= 1ull << idx;
			yaml_event_delete(&key);
		}
		yaml_event_t val;
		if (!walk_next(w, &val))
			return false;
		if (!walk_node(w, &val, child, vs, depth + 1))
			return false;
	}
	if (ms == NULL)
		return true;
	for (size_t i = 0; ms->mapping.fields[i].key != NULL && i < 64; i++) {
		const cyaml_schema_field_t *f = &ms->mapping.fields[i];
		if (!(f->value.flags & CYAML_FLAG_OPTIONAL) && !(seen & (1ull << i)))
			walk_report(w, &start->start_mark, path, "missing required key \"%s\"", f->key);
	}
	return true;
}

/*
 * Record @p ev's node (takes ownership of @p ev) and everything under it at @p path;
 * @p s is its schema, NULL where unknown or already reported. @return false once the
 * text cannot be parsed any further.
 */
static bool walk_node(struct walk *w, yaml_event_t *ev, const char *path,
                      const cyaml_schema_value_t *s, unsigned depth)
{
	bool ok = true;
	if (ev->type != YAML_SCALAR_EVENT && ev->type != YAML_ALIAS_EVENT &&
	    ev->type != YAML_SEQUENCE_START_EVENT && ev->type != YAML_MAPPING_START_EVENT) {
		walk_report(w, &ev->start_mark, path, "unexpected YAML event");
		yaml_event_delete(ev);
		w->broken = true;
		return false;
	}
	if (tern_diag_add_pos(w->diag, path, (unsigned)ev->start_mark.line + 1,
	                      (unsigned)ev->start_mark.column + 1) != 0) {
		tern_diag_raw(w->diag, "%s: out of memory", w->diag->file);
		w->broken = true;
		ok = false;
	} else if (depth > CONF_MAX_DEPTH) {
		walk_report(w, &ev->start_mark, path, "nested too deeply (limit %u)", CONF_MAX_DEPTH);
		w->broken = true;
		ok = false;
	} else if (ev->type == YAML_ALIAS_EVENT) {
		/* libcyaml expands aliases against the schema itself. */
	} else {
		if (walk_check_kind(w, ev, path, s))
			s = NULL;
		if (ev->type == YAML_SEQUENCE_START_EVENT)
			ok = walk_sequence(w, path, s, depth);
		else if (ev->type == YAML_MAPPING_START_EVENT)
			ok = walk_mapping(w, ev, path, s, depth);
	}
	yaml_event_delete(ev);
	return ok;
}

/* Pass 1 over the whole text: positions and structural problems. */
static void walk_text(const char *text, size_t len, struct tern_diag *diag)
{
	struct walk w = { .diag = diag };
	if (!yaml_parser_initialize(&w.parser)) {
		tern_diag_raw(diag, "%s: out of memory", diag->file);
		return;
	}
	yaml_parser_set_input_string(&w.parser, (const unsigned char *)text, len);
	unsigned docs = 0;
	yaml_event_t ev;
	while (walk_next(&w, &ev)) {
		yaml_event_type_t type = ev.type;
		if (type == YAML_DOCUMENT_START_EVENT && ++docs == 2)
			walk_report(&w, &ev.start_mark, "", "only one YAML document is allowed");
		if (docs == 1 && (type == YAML_SCALAR_EVENT || type == YAML_ALIAS_EVENT ||
		    type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT)) {
			walk_node(&w, &ev, "", &top_schema, 0);
			continue;
		}
		yaml_event_delete(&ev);
		if (type == YAML_STREAM_END_EVENT || docs > 1)
			break;
	}
	yaml_parser_delete(&w.parser);
}

/* -------------------------------------------- pass 2: libcyaml, its log -- */

/*
 * libcyaml 1.3.1 logs a load error as "Load: <what>\n", then "Load: Backtrace:\n"
 * and one line per level, innermost first:
 *   "  in mapping field 'listen' (line: 4, column: 13)"
 *   "  in sequence entry '3' (line: 4, column: 20)"   (3 entries so far: index 2)
 *   "  in mapping (line: 1, column: 1)"
 * L:C is the 1-based start of the event it was looking at (for a bad value, the
 * value; behind an alias, the anchored node). The frames give back the YAML path.
 */
#define CAPTURE_FRAMES 32

struct cyaml_capture {
	char what[512];
	char path[PATH_MAX_LEN];  /* assembled from frames[] by capture_path() */
	char frames[CAPTURE_FRAMES][80];
	unsigned nframes;
	unsigned line, column;
	bool in_backtrace, have_pos;
};

static void capture_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct cyaml_capture *cap = ctx;
	char line[512];
	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, args);
	line[strcspn(line, "\n")] = '\0';
	const char *text = line;
	if (strncmp(text, "Load: ", 6) == 0)
		text += 6;
	if (strcmp(text, "Backtrace:") == 0) {
		cap->in_backtrace = true;
		return;
	}
	if (!cap->in_backtrace) {
		if (cap->what[0] == '\0')
			snprintf(cap->what, sizeof(cap->what), "%s", text);
		return;
	}
	const char *p = strstr(text, "(line: ");
	unsigned l, c;
	if (!cap->have_pos && p != NULL && sscanf(p, "(line: %u, column: %u)", &l, &c) == 2) {
		cap->line = l;
		cap->column = c;
		cap->have_pos = true;
	}
	/* One path component per frame: ".name" or "[index]" (or nothing). */
	char name[64];
	unsigned n;
	char *frame = cap->nframes < CAPTURE_FRAMES ? cap->frames[cap->nframes++] : NULL;
	if (frame == NULL)
		return;
	frame[0] = '\0';
	if (sscanf(text, " in mapping field '%63[^']'", name) == 1)
		snprintf(frame, sizeof(cap->frames[0]), ".%s", name);
	else if (sscanf(text, " in sequence entry '%u'", &n) == 1 && n > 0)
		snprintf(frame, sizeof(cap->frames[0]), "[%u]", n - 1);
}

/* "servers[1].listen[2]" from the frames, outermost first. */
static const char *capture_path(struct cyaml_capture *cap)
{
	size_t len = 0;
	cap->path[0] = '\0';
	for (unsigned i = cap->nframes; i-- > 0 && len < sizeof(cap->path);) {
		const char *f = cap->frames[i];
		if (len == 0 && f[0] == '.')
			f++;
		len += (size_t)snprintf(cap->path + len, sizeof(cap->path) - len, "%s", f);
	}
	return cap->path;
}

static const cyaml_config_t cyaml_base = {
	.log_fn = capture_log,
	.mem_fn = cyaml_mem, /* libc malloc/free: zones[] are replaced with malloc'd strings */
	.log_level = CYAML_LOG_ERROR,
	.flags = CYAML_CFG_DEFAULT, /* unknown keys are errors */
};

static int cyaml_pass(const char *text, size_t len, struct tern_diag *diag,
                      struct tern_conf **out)
{
	struct cyaml_capture cap = { .what = "" };
	cyaml_config_t cfg = cyaml_base;
	cfg.log_ctx = &cap;
	struct tern_conf *conf = NULL;
	cyaml_err_t err = cyaml_load_data((const uint8_t *)text, len, &cfg, &top_schema,
	                                  (cyaml_data_t **)&conf, NULL);
	if (err == CYAML_ERR_OOM)
		return TERN_ENOMEM;
	if (err != CYAML_OK) {
		const char *what = cap.what[0] ? cap.what : cyaml_strerror(err);
		const char *path = capture_path(&cap);
		if (cap.have_pos) {
			tern_diag_raw(diag, "%s:%u:%u: %s%s%s", diag->file, cap.line, cap.column,
			              path, path[0] ? ": " : "", what);
		} else {
			tern_diag_raw(diag, "%s: %s%s%s", diag->file, path, path[0] ? ": " : "", what);
		}
		return TERN_ECONFIG;
	}
	if (conf == NULL) { /* an empty document */
		conf = calloc(1, sizeof(*conf));
		if (conf == NULL)
			return TERN_ENOMEM;
	}
	*out = conf;
	return 0;
}

/* -------------------------------------------------------- pass 3: checks -- */

static void report_addr_error(struct tern_diag *d, const char *key, const char *s, int ret)
{
	if (ret == TERN_ERANGE)
		tern_diag_error(d, key, "port out of range in \"%s\" (1..65535)", s);
	else
		tern_diag_error(d, key, "invalid address \"%s\" (expected IP, IP:PORT or [IPv6]:PORT)",
		                s);
}

static void check_workers(struct tern_conf *conf, struct tern_diag *d)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t n = cpus < 1 ? 1 : (uint64_t)cpus;
	if (n > CONF_MAX_WORKERS)
		n = CONF_MAX_WORKERS;
	if (conf->workers != NULL && strcmp(conf->workers, "auto") != 0 &&
	    tern_parse_uint(conf->workers, 1, CONF_MAX_WORKERS, &n) != 0)
		tern_diag_error(d, "workers", "must be \"auto\" or 1..%u, got \"%s\"",
		                CONF_MAX_WORKERS, conf->workers);
	conf->nworkers = (unsigned)n;
	if (conf->hot_answers != NULL && *conf->hot_answers > TERN_HOT_MAX_ENTRIES)
		tern_diag_error(d, "hot_answers", "must be 0..%u, got %u", TERN_HOT_MAX_ENTRIES,
		                *conf->hot_answers);
	conf->hot_entries = conf->hot_answers ? *conf->hot_answers : TERN_HOT_DEFAULT_ENTRIES;
}

/*
 * An HTTP endpoint: listen is parsed into addr and then rewritten in canonical form
 * ("127.0.0.1:9153", also when it was absent), so comparing two configs' strings
 * compares addresses. @return 0 or TERN_ENOMEM.
 */
static int check_http(struct tern_http_conf *h, const char *name, uint16_t port,
                      const char *def_host, bool lameduck_ok, struct tern_diag *d)
{
	if (h == NULL)
		return 0;
	tern_diag_set_prefix(d, "%s", name);
	const char *listen = h->listen ? h->listen : def_host;
	int ret = tern_parse_addr(listen, port, &h->addr);
	if (ret != 0) {
		report_addr_error(d, "listen", listen, ret);
	} else {
		char buf[TERN_ADDR_STRLEN];
		tern_addr_str(&h->addr, buf, sizeof(buf));
		char *canon = strdup(buf);
		if (canon == NULL)
			return TERN_ENOMEM;
		free(h->listen);
		h->listen = canon;
	}

	h->lameduck_ms = lameduck_ok ? LAMEDUCK_DEF_MS : 0;
	if (h->lameduck == NULL)
		return 0;
	if (!lameduck_ok)
		tern_diag_error(d, "lameduck", "only health has a lameduck period");
	else if (tern_parse_duration(h->lameduck, &h->lameduck_ms) != 0)
		tern_diag_error(d, "lameduck", "invalid duration \"%s\" (e.g. 500ms, 5s, 1m30s)",
		                h->lameduck);
	else if (h->lameduck_ms > LAMEDUCK_MAX_MS)
		tern_diag_error(d, "lameduck", "\"%s\" is too long (at most 1h)", h->lameduck);
	return 0;
}

/* Lowercase FQDN of @p s (owned), or NULL if it is not a domain name. */
static char *normalise_zone(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return NULL;
	}
	knot_dname_t *dn = knot_dname_from_str_alloc(s);
	if (dn == NULL)
		return NULL;
	knot_dname_to_lower(dn);
	char *out = knot_dname_to_str_alloc(dn);
	knot_dname_free(dn, NULL);
	return out;
}

static bool plugins_empty(const struct tern_plugins_conf *p)
{
#define TERN_PLUGIN_X(name) if (p->name != NULL) return false;
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X
	return true;
}

/* @p zone_ok[i]: zones[i] is a valid name, now normalised. @return TERN_ENOMEM or 0. */
static int check_server(struct tern_server_conf *s, unsigned idx, bool *zone_ok,
                        struct tern_diag *d)
{
	tern_diag_set_prefix(d, "servers[%u]", idx);
	if (s->zones_count == 0)
		tern_diag_error(d, "zones", "at least one zone is required");
	for (unsigned i = 0; i < s->zones_count; i++) {
		char key[32];
		snprintf(key, sizeof(key), "zones[%u]", i);
		char *norm = normalise_zone(s->zones[i]);
		if (norm == NULL) {
			tern_diag_error(d, key, "invalid domain name \"%s\"", s->zones[i]);
			continue;
		}
		free(s->zones[i]);
		s->zones[i] = norm;
		zone_ok[i] = true;
		for (unsigned j = 0; j < i; j++) {
			if (zone_ok[j] && strcmp(s->zones[j], norm) == 0) {
				tern_diag_error(d, key, "zone %s listed twice (also zones[%u])", norm, j);
				zone_ok[i] = false; /* reported once, not again per address */
				break;
			}
		}
	}

	if (s->listen_count == 0)
		tern_diag_error(d, "listen", "at least one listen address is required");
	if (s->listen_count > 0) {
		s->addrs = calloc(s->listen_count, sizeof(*s->addrs));
		if (s->addrs == NULL)
			return TERN_ENOMEM;
	}
	for (unsigned i = 0; i < s->listen_count; i++) {
		char key[32];
		snprintf(key, sizeof(key), "listen[%u]", i);
		int ret = tern_parse_addr(s->listen[i], 53, &s->addrs[i]);
		if (ret != 0) {
			report_addr_error(d, key, s->listen[i], ret);
			s->addrs[i].ss_family = AF_UNSPEC;
			continue;
		}
		for (unsigned j = 0; j < i; j++) {
			if (memcmp(&s->addrs[j], &s->addrs[i], sizeof(s->addrs[i])) == 0) {
				char a[TERN_ADDR_STRLEN];
				tern_addr_str(&s->addrs[i], a, sizeof(a));
				tern_diag_error(d, key, "address %s listed twice (also listen[%u])", a, j);
				s->addrs[i].ss_family = AF_UNSPEC;
				break;
			}
		}
	}

	if (s->plugins == NULL || plugins_empty(s->plugins))
		tern_diag_error(d, "plugins", "at least one plugin is required");
	return 0;
}

static bool server_has_addr(const struct tern_server_conf *s, const struct sockaddr_storage *a)
{
	for (unsigned i = 0; i < s->listen_count; i++) {
		if (s->addrs[i].ss_family != AF_UNSPEC &&
		    memcmp(&s->addrs[i], a, sizeof(*a)) == 0)
			return true;
	}
	return false;
}

/* A (zone, address) pair may belong to one block only: routing would be ambiguous. */
static void check_overlaps(const struct tern_conf *conf, bool *const *zone_ok,
                           struct tern_diag *d)
{
	for (unsigned s = 1; s < conf->servers_count; s++) {
		const struct tern_server_conf *srv = &conf->servers[s];
		tern_diag_set_prefix(d, "servers[%u]", s);
		for (unsigned z = 0; z < srv->zones_count; z++) {
			if (!zone_ok[s][z])
				continue;
			for (unsigned a = 0; a < srv->listen_count; a++) {
				if (srv->addrs[a].ss_family == AF_UNSPEC)
					continue;
				for (unsigned t = 0; t < s; t++) {
					const struct tern_server_conf *o = &conf->servers[t];
					bool zone_in_t = false;
					for (unsigned k = 0; k < o->zones_count && !zone_in_t; k++)
						zone_in_t = zone_ok[t][k] &&
						            strcmp(o->zones[k], srv->zones[z]) == 0;
					if (!zone_in_t || !server_has_addr(o, &srv->addrs[a]))
						continue;
					char as[TERN_ADDR_STRLEN], key[32];
					tern_addr_str(&srv->addrs[a], as, sizeof(as));
					snprintf(key, sizeof(key), "zones[%u]", z);
					tern_diag_error(d, key, "zone %s on %s already served by servers[%u]",
					                srv->zones[z], as, t);
					break;
				}
			}
		}
	}
}

static int check_conf(struct tern_conf *conf, struct tern_diag *d)
{
	int ret = 0;
	tern_diag_set_prefix(d, "%s", "");
	check_workers(conf, d);
	if (check_http(conf->metrics, "metrics", 9153, "127.0.0.1", false, d) != 0 ||
	    check_http(conf->health, "health", 8080, ":8080", true, d) != 0 ||
	    check_http(conf->ready, "ready", 8181, ":8181", false, d) != 0)
		return TERN_ENOMEM;

	tern_diag_set_prefix(d, "%s", "");
	if (conf->servers_count == 0) {
		tern_diag_error(d, "servers", "at least one server block is required");
		return 0;
	}
	bool **zone_ok = calloc(conf->servers_count, sizeof(*zone_ok));
	if (zone_ok == NULL)
		return TERN_ENOMEM;
	for (unsigned s = 0; s < conf->servers_count && ret == 0; s++) {
		struct tern_server_conf *srv = &conf->servers[s];
		zone_ok[s] = calloc(srv->zones_count + 1, sizeof(bool));
		if (zone_ok[s] == NULL)
			ret = TERN_ENOMEM;
		else
			ret = check_server(srv, s, zone_ok[s], d);
	}
	if (ret == 0)
		check_overlaps(conf, zone_ok, d);
	for (unsigned s = 0; s < conf->servers_count; s++)
		free(zone_ok[s]);
	free(zone_ok);
	tern_diag_set_prefix(d, "%s", "");
	return ret;
}

/* ------------------------------------------------------------ the API ---- */

static int load_text(const char *text, size_t len, struct tern_diag *diag,
                     struct tern_conf **out)
{
	size_t before = diag->nmsgs;
	walk_text(text, len, diag);
	if (diag->nmsgs > before)
		return TERN_ECONFIG;
	struct tern_conf *conf = NULL;
	int ret = cyaml_pass(text, len, diag, &conf);
	if (ret != 0)
		return ret;
	ret = check_conf(conf, diag);
	if (ret == 0 && diag->nmsgs > before)
		ret = TERN_ECONFIG;
	if (ret != 0) {
		tern_conf_free(conf);
		return ret;
	}
	*out = conf;
	return 0;
}

static int read_file(const char *path, struct tern_diag *diag, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		tern_diag_raw(diag, "%s: cannot open (%s)", path, strerror(errno));
		return TERN_ECONFIG;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int ret = buf ? 0 : TERN_ENOMEM;
	while (ret == 0) {
		if (n == cap) {
			char *p = cap < CONF_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
			if (p == NULL) {
				ret = cap < CONF_MAX_BYTES ? TERN_ENOMEM : TERN_ECONFIG;
				if (ret == TERN_ECONFIG)
					tern_diag_raw(diag, "%s: larger than %u bytes", path,
					              CONF_MAX_BYTES);
				break;
			}
			buf = p;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				tern_diag_raw(diag, "%s: cannot read (%s)", path, strerror(errno));
				ret = TERN_ECONFIG;
			}
			break;
		}
	}
	fclose(f);
	if (ret != 0) {
		free(buf);
		return ret;
	}
	*text = buf;
	*len = n;
	return 0;
}

int tern_conf_load_file(const char *path, struct tern_diag *diag, struct tern_conf **out)
{
	char *text = NULL;
	size_t len = 0;
	int ret = read_file(path, diag, &text, &len);
	if (ret != 0)
		return ret;
	struct tern_conf *conf = NULL;
	ret = load_text(text, len, diag, &conf);
	free(text);
	if (ret != 0)
		return ret;

	char *abs = realpath(path, NULL);
	conf->path = abs ? abs : strdup(path);
	if (conf->path != NULL) {
		char *tmp = strdup(conf->path);
		conf->dir = tmp ? strdup(dirname(tmp)) : NULL;
		free(tmp);
	}
	if (conf->path == NULL || conf->dir == NULL) {
		tern_conf_free(conf);
		return TERN_ENOMEM;
	}
	*out = conf;
	return 0;
}

int tern_conf_load_string(const char *yaml, size_t len, const char *dir,
                          struct tern_diag *diag, struct tern_conf **out)
{
	struct tern_conf *conf = NULL;
	int ret = load_text(yaml, len, diag, &conf);
	if (ret != 0)
		return ret;
	if (dir != NULL) {
		conf->dir = strdup(dir);
	} else {
		char cwd[PATH_MAX];
		conf->dir = strdup(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
	}
	if (conf->dir == NULL) {
		tern_conf_free(conf);
		return TERN_ENOMEM;
	}
	*out = conf;
	return 0;
}

void tern_conf_free(struct tern_conf *conf)
{
	if (conf == NULL)
		return;
	free(conf->path);
	free(conf->dir);
	for (unsigned i = 0; i < conf->servers_count; i++)
		free(conf->servers[i].addrs);
	cyaml_free(&cyaml_base, &top_schema, conf, 0);
}
