/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hosts plugin: A, AAAA and PTR answers from /etc/hosts-style data (a file plus
 * inline entries), as CoreDNS's hosts plugin gives them. init (loader) parses the data
 * into a table that is immutable once published: an open-addressing hash on the
 * lowercased wire name, one node per owner holding its A, AAAA and PTR RRsets ready
 * to copy into an answer. maintain (loader) checks the file's mtime and size every
 * `reload` period, builds a whole new table on change, swaps it in with
 * TERN_RCU_XCHG, waits for a grace period and frees the old one; a file that cannot
 * be read keeps the old table. The instance (struct hosts) is owned by the view; its
 * maintain-state fields are touched by the loader only.
 * Hot path (hosts_query): no malloc, no locks, no blocking.
 */
#include "lib/plugins/hosts/hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/rcu.h"
#include "lib/dns/answer.h"
#include "lib/dns/name.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"

#define HOSTS_DEFAULT_PATH      "/etc/hosts"
#define HOSTS_DEFAULT_TTL       3600
#define HOSTS_MAX_TTL           65535
#define HOSTS_DEFAULT_RELOAD_MS 5000
#define HOSTS_INDEX_MIN         64

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

const cyaml_schema_field_t tern_hosts_conf_fields[] = {
	CYAML_FIELD_STRING_PTR("path", CYAML_FLAG_OPTIONAL, struct tern_hosts_conf, path,
	                       1, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("entries", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_hosts_conf, entries, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("zones", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_hosts_conf, zones, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_UINT_PTR("ttl", CYAML_FLAG_OPTIONAL, struct tern_hosts_conf, ttl),
	CYAML_FIELD_STRING_PTR("reload", CYAML_FLAG_OPTIONAL, struct tern_hosts_conf, reload,
	                       1, 32),
	CYAML_FIELD_BOOL("no_reverse", CYAML_FLAG_OPTIONAL, struct tern_hosts_conf, no_reverse),
	CYAML_FIELD_BOOL("fallthrough", CYAML_FLAG_OPTIONAL, struct tern_hosts_conf, fallthrough),
	CYAML_FIELD_END
};

/* Everything the hosts data says about one owner name. */
struct hosts_node {
	knot_dname_t *owner;   /* lowercase wire form, heap; shared by the three RRsets */
	uint64_t hash;
	knot_rrset_t a;
	knot_rrset_t aaaa;
	knot_rrset_t ptr;      /* only on in-addr.arpa / ip6.arpa owners */
};

/* One generation of hosts data. Immutable once published. */
struct hosts_table {
	struct hosts_node *nodes;
	size_t nnodes;
	size_t cap_nodes;
	uint32_t *index;       /* node index + 1; 0 = empty slot */
	size_t mask;           /* slots - 1; slots is a power of two, at most half full */
	size_t nrecords;       /* A + AAAA + PTR records, for the reload log line */
};

/* One configured instance, owned by the view. */
struct hosts {
	struct hosts_table *table;  /* RCU root: read with TERN_RCU_DEREF */
	knot_dname_t **origins;     /* names served (lowercase wire) */
	size_t norigins;
	char *path;                 /* resolved file path; NULL: inline entries only */
	char **entries;             /* copies of the inline lines */
	size_t nentries;
	uint32_t ttl;
	uint64_t reload_ms;         /* 0: never re-read the file */
	bool no_reverse;
	bool fallthrough;
	/* Loader-only state for maintain. */
	uint64_t next_check_ms;
	bool have_stat;             /* mtime/size describe the file in the table */
	struct timespec mtime;
	off_t size;
	bool read_failed;           /* a read failure was logged; quiet until it recovers */
};

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the table ------------------------------------------------------------------ */

static void table_free(struct hosts_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nnodes; i++) {
		struct hosts_node *n = &t->nodes[i];
		knot_rdataset_clear(&n->a.rrs, NULL);
		knot_rdataset_clear(&n->aaaa.rrs, NULL);
		knot_rdataset_clear(&n->ptr.rrs, NULL);
		knot_dname_free(n->owner, NULL);
	}
	free(t->nodes);
	free(t->index);
	free(t);
}

static struct hosts_table *table_new(void)
{
	struct hosts_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->index = calloc(HOSTS_INDEX_MIN, sizeof(*t->index));
	if (t->index == NULL) {
		free(t);
		return NULL;
	}
	t->mask = HOSTS_INDEX_MIN - 1;
	return t;
}

static const struct hosts_node *table_find(const struct hosts_table *t,
                                           const knot_dname_t *name)
{
	uint64_t hash = tern_name_hash(name);
	for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
		uint32_t slot = t->index[i];
		if (slot == 0)
			return NULL;
		const struct hosts_node *n = &t->nodes[slot - 1];
		if (n->hash == hash && knot_dname_is_equal(n->owner, name))
			return n;
	}
}

static int table_grow_index(struct hosts_table *t)
{
	size_t slots = (t->mask + 1) * 2;
	uint32_t *index = calloc(slots, sizeof(*index));
	if (index == NULL)
		return TERN_ENOMEM;
	for (size_t k = 0; k < t->nnodes; k++) {
		size_t i = t->nodes[k].hash & (slots - 1);
		while (index[i] != 0)
			i = (i + 1) & (slots - 1);
		index[i] = (uint32_t)k + 1;
	}
	free(t->index);
	t->index = index;
	t->mask = slots - 1;
	return 0;
}

/* Find or add the node for lowercase @name (copied). */
static struct hosts_node *table_get(struct hosts_table *t, const knot_dname_t *name,
                                    uint32_t ttl)
{
	struct hosts_node *found = (struct hosts_node *)table_find(t, name);
	if (found != NULL)
		return found;
	if ((t->nnodes + 1) * 2 > t->mask + 1 && table_grow_index(t) != 0)
		return NULL;
	if (t->nnodes == UINT32_MAX - 1)
		return NULL;
	if (t->nnodes == t->cap_nodes) {
		size_t cap = t->cap_nodes ? t->cap_nodes * 2 : 32;
		struct hosts_node *nodes = realloc(t->nodes, cap * sizeof(*nodes));
		if (nodes == NULL)
			return NULL;
		t->nodes = nodes;
		t->cap_nodes = cap;
	}
	knot_dname_t *owner = knot_dname_copy(name, NULL);
	if (owner == NULL)
		return NULL;
	struct hosts_node *n = &t->nodes[t->nnodes];
	*n = (struct hosts_node){ .owner = owner, .hash = tern_name_hash(owner) };
	knot_rrset_init(&n->a, owner, KNOT_RRTYPE_A, KNOT_CLASS_IN, ttl);
	knot_rrset_init(&n->aaaa, owner, KNOT_RRTYPE_AAAA, KNOT_CLASS_IN, ttl);
	knot_rrset_init(&n->ptr, owner, KNOT_RRTYPE_PTR, KNOT_CLASS_IN, ttl);
	size_t i = n->hash & t->mask;
	while (t->index[i] != 0)
		i = (i + 1) & t->mask;
	t->index[i] = (uint32_t)t->nnodes + 1;
	t->nnodes++;
	return n;
}

/* Add one record; a duplicate is merged away by libknot and not counted. */
static int table_add(struct hosts_table *t, knot_rrset_t *rr, const uint8_t *data,
                     uint16_t len)
{
	uint16_t before = rr->rrs.count;
	int ret = knot_rrset_add_rdata(rr, data, len, NULL);
	if (ret != KNOT_EOK)
		return ret == KNOT_ENOMEM ? TERN_ENOMEM : ret;
	t->nrecords += rr->rrs.count - before;
	return 0;
}

/* ---- parsing ------------------------------------------------------------------ */

static bool in_origins(const struct hosts *h, const knot_dname_t *name)
{
	for (size_t i = 0; i < h->norigins; i++) {
		if (tern_name_is_under(name, h->origins[i]))
			return true;
	}
	return false;
}

/* The in-addr.arpa. or ip6.arpa. name of an address, in presentation form. */
static void reverse_name(int family, const uint8_t *addr, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa.",
		         addr[3], addr[2], addr[1], addr[0]);
		return;
	}
	size_t o = 0;
	for (int i = 15; i >= 0; i--) {
		buf[o++] = hex[addr[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = hex[addr[i] >> 4];
		buf[o++] = '.';
	}
	snprintf(buf + o, len - o, "ip6.arpa.");
}

/*
 * Parse one hosts(5) line into @t. Blank and comment-only lines are ignored; a line
 * without a valid address and at least one name is skipped with a warning, as is a
 * single invalid name. @return 0 or TERN_ENOMEM.
 */
static int parse_line(const struct hosts *h, struct hosts_table *t, char *line,
                      const char *src, unsigned lineno)
{
	char *hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	char *save = NULL;
	char *addr_str = strtok_r(line, " \t\r\n\f\v", &save);
	if (addr_str == NULL)
		return 0;
	char *name_str = strtok_r(NULL, " \t\r\n\f\v", &save);
	if (name_str == NULL) {
		tern_warn("hosts: %s:%u: address \"%s\" without a name, line skipped",
		          src, lineno, addr_str);
		return 0;
	}

	char *zone = strchr(addr_str, '%'); /* an IPv6 zone index means nothing here */
	if (zone != NULL)
		*zone = '\0';
	uint8_t addr[16];
	int family = AF_INET;
	uint16_t addr_len = 4;
	if (inet_pton(AF_INET, addr_str, addr) != 1) {
		family = AF_INET6;
		addr_len = 16;
		if (inet_pton(AF_INET6, addr_str, addr) != 1) {
			tern_warn("hosts: %s:%u: invalid address \"%s\", line skipped",
			          src, lineno, addr_str);
			return 0;
		}
	}

	size_t rev = SIZE_MAX; /* an index: table_get may move the node array */
	for (; name_str != NULL; name_str = strtok_r(NULL, " \t\r\n\f\v", &save)) {
		knot_dname_storage_t name;
		if (knot_dname_from_str(name, name_str, sizeof(name)) == NULL) {
			tern_warn("hosts: %s:%u: invalid name \"%s\", skipped",
			          src, lineno, name_str);
			continue;
		}
		knot_dname_to_lower(name);
		if (!in_origins(h, name))
			continue;

		struct hosts_node *n = table_get(t, name, h->ttl);
		if (n == NULL)
			return TERN_ENOMEM;
		knot_rrset_t *rr = family == AF_INET ? &n->a : &n->aaaa;
		int ret = table_add(t, rr, addr, addr_len);
		if (ret != 0)
			return ret;
		if (h->no_reverse)
			continue;

		if (rev == SIZE_MAX) {
			char rev_str[80];
			knot_dname_storage_t rev_name;
			reverse_name(family, addr, rev_str, sizeof(rev_str));
			if (knot_dname_from_str(rev_name, rev_str, sizeof(rev_name)) == NULL)
				return TERN_EINVAL;
			struct hosts_node *r = table_get(t, rev_name, h->ttl);
			if (r == NULL)
				return TERN_ENOMEM;
			rev = (size_t)(r - t->nodes);
		}
		knot_rrset_t *ptr = &t->nodes[rev].ptr;
		ret = table_add(t, ptr, name, (uint16_t)knot_dname_size(name));
		if (ret != 0)
			return ret;
	}
	return 0;
}

/*
 * Build a complete table from the file (if any) then the inline entries, the order
 * CoreDNS merges them in. On success *st describes the file that was read.
 * @return 0, or a negative errno when the file could not be read, or TERN_ENOMEM.
 */
static int build_table(const struct hosts *h, struct hosts_table **out, struct stat *st,
                       bool *file_read)
{
	struct hosts_table *t = table_new();
	if (t == NULL)
		return TERN_ENOMEM;
	int ret = 0;
	*file_read = false;

	if (h->path != NULL) {
		FILE *f = fopen(h->path, "re");
		if (f == NULL) {
			ret = -errno;
			if (ret != TERN_ENOENT)
				goto fail;
			ret = 0; /* a missing file serves the inline entries until it appears */
		} else {
			if (fstat(fileno(f), st) != 0) {
				ret = -errno;
				fclose(f);
				goto fail;
			}
			char *line = NULL;
			size_t cap = 0;
			unsigned lineno = 0;
			while (ret == 0 && getline(&line, &cap, f) >= 0)
				ret = parse_line(h, t, line, h->path, ++lineno);
			if (ret == 0 && ferror(f))
				ret = TERN_EINVAL;
			free(line);
			fclose(f);
			if (ret != 0)
				goto fail;
			*file_read = true;
		}
	}

	for (size_t i = 0; i < h->nentries; i++) {
		char *line = strdup(h->entries[i]);
		if (line == NULL) {
			ret = TERN_ENOMEM;
			goto fail;
		}
		ret = parse_line(h, t, line, "entries", (unsigned)i + 1);
		free(line);
		if (ret != 0)
			goto fail;
	}
	*out = t;
	return 0;
fail:
	table_free(t);
	return ret;
}

/* Publish @t (takes ownership) and free the table it replaces after a grace period. */
static void publish(struct hosts *h, struct hosts_table *t)
{
	struct hosts_table *old = TERN_RCU_XCHG(&h->table, t);
	tern_rcu_synchronize();
	table_free(old);
}

static void remember_stat(struct hosts *h, const struct stat *st, bool file_read)
{
	h->have_stat = file_read;
	if (file_read) {
		h->mtime = st->st_mtim;
		h->size = st->st_size;
	}
}

/* ---- control plane -------------------------------------------------------------- */

static void hosts_free(struct hosts *h)
{
	if (h == NULL)
		return;
	table_free(h->table);
	for (size_t i = 0; i < h->norigins; i++)
		knot_dname_free(h->origins[i], NULL);
	free(h->origins);
	for (size_t i = 0; i < h->nentries; i++)
		free(h->entries[i]);
	free(h->entries);
	free(h->path);
	free(h);
}

static int add_origin(struct hosts *h, const char *zone)
{
	knot_dname_t *name = knot_dname_from_str_alloc(zone);
	if (name == NULL)
		return TERN_EINVAL;
	knot_dname_to_lower(name);
	h->origins[h->norigins++] = name;
	return 0;
}

/* Check the options and copy them into @h. Every problem goes to @diag. */
static int configure(struct hosts *h, const struct tern_hosts_conf *conf,
                     const struct tern_plugin_env *env, struct tern_diag *diag)
{
	bool bad = false;

	h->ttl = HOSTS_DEFAULT_TTL;
	if (conf->ttl != NULL) {
		if (*conf->ttl < 1 || *conf->ttl > HOSTS_MAX_TTL) {
			tern_diag_error(diag, "ttl", "must be 1..%u", HOSTS_MAX_TTL);
			bad = true;
		}
		h->ttl = *conf->ttl;
	}

	h->reload_ms = HOSTS_DEFAULT_RELOAD_MS;
	if (conf->reload != NULL && tern_parse_duration(conf->reload, &h->reload_ms) != 0) {
		tern_diag_error(diag, "reload",
		                "invalid duration \"%s\" (want e.g. \"5s\", \"500ms\", \"0\")",
		                conf->reload);
		bad = true;
	}
	h->no_reverse = conf->no_reverse;
	h->fallthrough = conf->fallthrough;

	size_t nzones = conf->zones_count > 0 ? conf->zones_count : env->nzones;
	h->origins = calloc(nzones ? nzones : 1, sizeof(*h->origins));
	if (h->origins == NULL)
		return TERN_ENOMEM;
	for (unsigned i = 0; i < conf->zones_count; i++) {
		if (add_origin(h, conf->zones[i]) != 0) {
			tern_diag_error(diag, "zones", "invalid zone name \"%s\"", conf->zones[i]);
			bad = true;
		}
	}
	for (size_t i = 0; conf->zones_count == 0 && i < env->nzones; i++) {
		if (add_origin(h, env->zones[i]) != 0) {
			tern_diag_error(diag, "", "invalid server zone \"%s\"", env->zones[i]);
			bad = true;
		}
	}

	h->entries = calloc(conf->entries_count ? conf->entries_count : 1, sizeof(*h->entries));
	if (h->entries == NULL)
		return TERN_ENOMEM;
	for (unsigned i = 0; i < conf->entries_count; i++) {
		h->entries[i] = strdup(conf->entries[i]);
		if (h->entries[i] == NULL)
			return TERN_ENOMEM;
		h->nentries++;
	}

	const char *path = conf->path;
	if (path == NULL && conf->entries_count == 0)
		path = HOSTS_DEFAULT_PATH;
	if (path != NULL) {
		int n;
		if (path[0] != '/' && env->config_dir != NULL && env->config_dir[0] != '\0')
			n = asprintf(&h->path, "%s/%s", env->config_dir, path);
		else
			n = asprintf(&h->path, "%s", path);
		if (n < 0) {
			h->path = NULL;
			return TERN_ENOMEM;
		}
		struct stat st;
		if (stat(h->path, &st) != 0) {
			if (errno != ENOENT) {
				tern_diag_error(diag, "path", "cannot access %s (%s)",
				                h->path, strerror(errno));
				bad = true;
			} else {
				tern_warn("hosts: %s does not exist, serving without it until it appears",
				          h->path);
			}
		} else if (!S_ISREG(st.st_mode)) {
			tern_diag_error(diag, "path", "%s is not a regular file", h->path);
			bad = true;
		}
	}
	return bad ? TERN_ECONFIG : 0;
}

static int hosts_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                      const struct tern_plugin_env *env, struct tern_diag *diag)
{
	const struct tern_hosts_conf *conf = conf_ptr;
	struct hosts *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return TERN_ENOMEM;
	int ret = configure(h, conf, env, diag);
	if (ret != 0)
		goto fail;

	struct stat st = { 0 };
	bool file_read;
	struct hosts_table *t = NULL;
	ret = build_table(h, &t, &st, &file_read);
	if (ret == TERN_ENOMEM)
		goto fail;
	if (ret != 0) {
		tern_diag_error(diag, "path", "cannot read %s (%s)", h->path, tern_strerror(ret));
		ret = TERN_ECONFIG;
		goto fail;
	}
	h->table = t; /* not published yet: the view is, later, as a whole */
	remember_stat(h, &st, file_read);
	h->next_check_ms = monotonic_ms() + h->reload_ms;
	pi->data = h;
	return 0;
fail:
	hosts_free(h);
	return ret;
}

static void hosts_deinit(struct tern_plugin_inst *pi)
{
	hosts_free(pi->data);
	pi->data = NULL;
}

static void hosts_maintain(struct tern_plugin_inst *pi)
{
	struct hosts *h = pi->data;
	if (h->path == NULL || h->reload_ms == 0)
		return;
	uint64_t now = monotonic_ms();
	if (now < h->next_check_ms)
		return;
	h->next_check_ms = now + h->reload_ms;

	struct stat st;
	if (stat(h->path, &st) != 0) {
		if (!h->read_failed)
			tern_warn("hosts: cannot access %s (%s), keeping the loaded entries",
			          h->path, strerror(errno));
		h->read_failed = true;
		return;
	}
	if (h->have_stat && st.st_size == h->size && st.st_mtim.tv_sec == h->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == h->mtime.tv_nsec) {
		h->read_failed = false; /* back as it was: nothing to load */
		return;
	}

	struct hosts_table *t = NULL;
	bool file_read;
	int ret = build_table(h, &t, &st, &file_read);
	if (ret != 0 || !file_read) {
		if (!h->read_failed)
			tern_warn("hosts: cannot read %s (%s), keeping the loaded entries",
			          h->path, tern_strerror(ret != 0 ? ret : TERN_ENOENT));
		h->read_failed = true;
		return;
	}
	h->read_failed = false;
	publish(h, t);
	remember_stat(h, &st, file_read);
	tern_info("hosts: loaded %s (%zu names, %zu records)", h->path, t->nnodes, t->nrecords);
}

/* ---- data plane ------------------------------------------------------------------ */

static enum tern_verdict answer_with(struct tern_req *req, const struct tern_plugin_inst *pi,
                                     const knot_rrset_t *rr)
{
	tern_answer_authoritative(req, pi->plugin_id);
	tern_answer_rcode(req, KNOT_RCODE_NOERROR);
	if (rr == NULL)
		return TERN_DONE; /* NODATA: the name exists, this type does not */
	int ret = tern_answer_put(req, KNOT_ANSWER, rr);
	if (ret != 0 && ret != KNOT_ESPACE)
		return TERN_FAIL;
	return TERN_DONE; /* KNOT_ESPACE: req->truncated is set, the engine sends TC */
}

static enum tern_verdict hosts_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct hosts *h = pi->data;
	if (req->qclass != KNOT_CLASS_IN)
		return TERN_NEXT;
	const struct hosts_table *t = TERN_RCU_DEREF(h->table);
	const struct hosts_node *n = table_find(t, req->qname);

	/* Reverse names need not be inside the zones; an unknown one always passes on. */
	if (req->qtype == KNOT_RRTYPE_PTR && n != NULL && !knot_rrset_empty(&n->ptr))
		return answer_with(req, pi, &n->ptr);
	if (req->qtype == KNOT_RRTYPE_PTR)
		return TERN_NEXT;
	if (!in_origins(h, req->qname))
		return TERN_NEXT;

	bool known = n != NULL && (!knot_rrset_empty(&n->a) || !knot_rrset_empty(&n->aaaa));
	if (!known) {
		if (h->fallthrough)
			return TERN_NEXT;
		tern_answer_authoritative(req, pi->plugin_id);
		tern_answer_rcode(req, KNOT_RCODE_NXDOMAIN);
		return TERN_DONE;
	}
	if (req->qtype == KNOT_RRTYPE_A && !knot_rrset_empty(&n->a))
		return answer_with(req, pi, &n->a);
	if (req->qtype == KNOT_RRTYPE_AAAA && !knot_rrset_empty(&n->aaaa))
		return answer_with(req, pi, &n->aaaa);
	return answer_with(req, pi, NULL);
}

TERN_PLUGIN_DEFINE(hosts,
	.hot = TERN_HOT_SKIP | TERN_HOT_PURE,
	.init = hosts_init,
	.deinit = hosts_deinit,
	.maintain = hosts_maintain,
	.query = hosts_query);
