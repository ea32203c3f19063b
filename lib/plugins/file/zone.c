/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading and looking up an immutable zone; see zone.h. Loading runs in three steps:
 * libzscanner hands every record to a callback that copies it (owner lowercased) into
 * the zone's own chunk storage; the records are sorted canonically by (owner, type,
 * rdata) so that each run forms one node and each sub-run one RRset with sorted,
 * de-duplicated rdata; then empty non-terminals, wildcard and zone-cut flags are filled
 * in and the zone is checked (SOA, NS, CNAME rules). Lookups only read.
 * Thread: load/free on the loader; lookups on any thread.
 */
#include "lib/plugins/file/zone.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libzscanner/scanner.h>

#include "lib/core/attr.h"
#include "lib/core/errcode.h"
#include "lib/dns/name.h"

#define CHUNK_SIZE (64 * 1024)

/* Storage that lives exactly as long as the zone: names, RRset arrays, rdata. */
struct tern_zone_chunk {
	struct tern_zone_chunk *next;
	size_t used, size;
	uint8_t data[];
};

/* One record as read from the file, before grouping. */
struct rec {
	knot_dname_t *owner;  /* lowercase, in chunk storage (shared by runs of one owner) */
	knot_rdata_t *rdata;  /* in chunk storage */
	uint32_t ttl;
	uint16_t type;
};

struct load_ctx {
	struct tern_zone *zone;
	const char *path;
	struct rec *recs;
	size_t nrecs, cap;
	bool failed;
	char *err;
	size_t errlen;
};

static void *chunk_alloc(struct tern_zone *z, size_t len)
{
	len = (len + 7) & ~(size_t)7;
	struct tern_zone_chunk *c = z->chunks;
	if (c == NULL || c->size - c->used < len) {
		size_t size = len > CHUNK_SIZE ? len : CHUNK_SIZE;
		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->size = size;
		/* A one-off big chunk goes second so the current one keeps filling. */
		if (z->chunks != NULL && size > CHUNK_SIZE) {
			c->next = z->chunks->next;
			z->chunks->next = c;
		} else {
			c->next = z->chunks;
			z->chunks = c;
		}
	}
	void *p = c->data + c->used;
	c->used += len;
	return p;
}

static void set_err(struct load_ctx *ctx, const char *fmt, ...) TERN_PRINTF(2);

static void set_err(struct load_ctx *ctx, const char *fmt, ...)
{
	if (ctx->failed)
		return;
	ctx->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->err, ctx->errlen, fmt, ap);
	va_end(ap);
}

static const char *scanner_file(const zs_scanner_t *s, const struct load_ctx *ctx)
{
	return s->file.name != NULL ? s->file.name : ctx->path;
}

static void on_error(zs_scanner_t *s)
{
	struct load_ctx *ctx = s->process.data;
	set_err(ctx, "%s:%llu: %s", scanner_file(s, ctx), (unsigned long long)s->line_counter,
	        zs_strerror(s->error.code));
	s->state = ZS_STATE_STOP;
}

static void on_record(zs_scanner_t *s)
{
	struct load_ctx *ctx = s->process.data;
	struct tern_zone *z = ctx->zone;
	char name[KNOT_DNAME_TXT_MAXLEN + 1];

	if (s->r_class != KNOT_CLASS_IN) {
		set_err(ctx, "%s:%llu: record class is not IN", scanner_file(s, ctx),
		        (unsigned long long)s->line_counter);
		goto stop;
	}
	knot_dname_storage_t owner;
	knot_dname_copy_lower(owner, s->r_owner);
	if (knot_dname_in_bailiwick(owner, z->origin) < 0) {
		knot_dname_to_str(name, owner, sizeof(name));
		set_err(ctx, "%s:%llu: record %s is outside the zone", scanner_file(s, ctx),
		        (unsigned long long)s->line_counter, name);
		goto stop;
	}
	if (ctx->nrecs == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 256;
		struct rec *recs = realloc(ctx->recs, cap * sizeof(*recs));
		if (recs == NULL)
			goto nomem;
		ctx->recs = recs;
		ctx->cap = cap;
	}
	struct rec *r = &ctx->recs[ctx->nrecs];
	/* Zone files list an owner's records together: share the previous copy. */
	if (ctx->nrecs > 0 && knot_dname_is_equal(ctx->recs[ctx->nrecs - 1].owner, owner)) {
		r->owner = ctx->recs[ctx->nrecs - 1].owner;
	} else {
		size_t len = knot_dname_size(owner);
		r->owner = chunk_alloc(z, len);
		if (r->owner == NULL)
			goto nomem;
		memcpy(r->owner, owner, len);
	}
	r->rdata = chunk_alloc(z, knot_rdata_size(s->r_data_length));
	if (r->rdata == NULL)
		goto nomem;
	knot_rdata_init(r->rdata, s->r_data_length, s->r_data);
	r->ttl = s->r_ttl;
	r->type = s->r_type;
	ctx->nrecs++;
	return;
nomem:
	set_err(ctx, "%s: out of memory", ctx->path);
stop:
	s->state = ZS_STATE_STOP;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	if (x->owner != y->owner) {
		int c = knot_dname_cmp(x->owner, y->owner);
		if (c != 0)
			return c;
	}
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return knot_rdata_cmp(x->rdata, y->rdata);
}

/* Hash table: node index + 1 per slot, 0 for empty, linear probing. */
static uint32_t *table_slot(const struct tern_zone *z, const knot_dname_t *name, size_t size)
{
	size_t i = (size_t)tern_name_hash(name) & z->table_mask;
	for (;;) {
		uint32_t v = z->table[i];
		if (v == 0)
			return &z->table[i];
		const knot_dname_t *owner = z->nodes[v - 1].owner;
		if (knot_dname_size(owner) == size && memcmp(owner, name, size) == 0)
			return &z->table[i];
		i = (i + 1) & z->table_mask;
	}
}

static int table_grow(struct tern_zone *z, size_t want)
{
	size_t size = 64;
	while (size < want * 2)
		size *= 2;
	if (z->table != NULL && size <= z->table_mask + 1)
		return 0;
	uint32_t *old = z->table;
	size_t old_size = old ? z->table_mask + 1 : 0;
	z->table = calloc(size, sizeof(*z->table));
	if (z->table == NULL) {
		z->table = old;
		return TERN_ENOMEM;
	}
	z->table_mask = size - 1;
	for (size_t i = 0; i < old_size; i++) {
		if (old[i] == 0)
			continue;
		const knot_dname_t *owner = z->nodes[old[i] - 1].owner;
		*table_slot(z, owner, knot_dname_size(owner)) = old[i];
	}
	free(old);
	return 0;
}

static struct tern_zone_node *node_lookup(const struct tern_zone *z, const knot_dname_t *name)
{
	uint32_t v = *table_slot(z, name, knot_dname_size(name));
	return v ? &z->nodes[v - 1] : NULL;
}

/* Append a node for @owner (stored in the zone already) and index it. */
static struct tern_zone_node *node_add(struct tern_zone *z, size_t *cap, knot_dname_t *owner)
{
	if (z->nnodes == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct tern_zone_node *nodes = realloc(z->nodes, ncap * sizeof(*nodes));
		if (nodes == NULL)
			return NULL;
		z->nodes = nodes;
		*cap = ncap;
	}
	if (table_grow(z, z->nnodes + 1) != 0)
		return NULL;
	struct tern_zone_node *n = &z->nodes[z->nnodes];
	*n = (struct tern_zone_node){
		.owner = owner,
		.labels = (uint8_t)knot_dname_labels(owner, NULL),
		.deleg = -1,
	};
	*table_slot(z, owner, knot_dname_size(owner)) = (uint32_t)++z->nnodes;
	return n;
}

/* Build the node of recs[0..n) (one owner): one RRset per type, rdata sorted, no dups. */
static int node_fill(struct tern_zone *z, struct tern_zone_node *node, const struct rec *recs,
                     size_t n)
{
	size_t ntypes = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || recs[i].type != recs[i - 1].type)
			ntypes++;
	node->rrsets = chunk_alloc(z, ntypes * sizeof(knot_rrset_t));
	if (node->rrsets == NULL)
		return TERN_ENOMEM;
	node->nrrsets = (uint16_t)ntypes;

	size_t i = 0;
	for (size_t t = 0; t < ntypes; t++) {
		size_t end = i + 1, size = 0, count = 0;
		while (end < n && recs[end].type == recs[i].type)
			end++;
		for (size_t j = i; j < end; j++) {
			if (j > i && knot_rdata_cmp(recs[j].rdata, recs[j - 1].rdata) == 0)
				continue;
			size += knot_rdata_size(recs[j].rdata->len);
			count++;
		}
		knot_rrset_t *rr = &node->rrsets[t];
		/* RFC 2181 5.2: one TTL per RRset; like Knot, the first record's wins. */
		knot_rrset_init(rr, node->owner, recs[i].type, KNOT_CLASS_IN, recs[i].ttl);
		if (count > UINT16_MAX)
			return TERN_EZONE;
		rr->rrs.rdata = chunk_alloc(z, size);
		if (rr->rrs.rdata == NULL)
			return TERN_ENOMEM;
		uint8_t *pos = (uint8_t *)rr->rrs.rdata;
		for (size_t j = i; j < end; j++) {
			if (j > i && knot_rdata_cmp(recs[j].rdata, recs[j - 1].rdata) == 0)
				continue;
			size_t len = knot_rdata_size(recs[j].rdata->len);
			memcpy(pos, recs[j].rdata, len);
			pos += len;
		}
		rr->rrs.count = (uint16_t)count;
		rr->rrs.size = (uint32_t)size;
		z->nrecords += count;
		i = end;
	}
	return 0;
}

static const knot_dname_t *parent_name(const knot_dname_t *name)
{
	return name[0] == 0 ? NULL : name + 1 + name[0];
}

/* Add every missing ancestor between a node and the apex as an empty non-terminal. */
static int add_empty_non_terminals(struct tern_zone *z, size_t *cap)
{
	/* z->nnodes grows inside the loop: new ENTs get their own ancestors checked. */
	for (size_t i = 0; i < z->nnodes; i++) {
		const knot_dname_t *p = z->nodes[i].owner;
		if (z->nodes[i].labels <= z->origin_labels)
			continue;
		p = parent_name(p);
		if (node_lookup(z, p) != NULL)
			continue;
		size_t len = knot_dname_size(p);
		knot_dname_t *owner = chunk_alloc(z, len);
		if (owner == NULL)
			return TERN_ENOMEM;
		memcpy(owner, p, len);
		if (node_add(z, cap, owner) == NULL)
			return TERN_ENOMEM;
	}
	return 0;
}

static void mark_cuts_and_wildcards(struct tern_zone *z)
{
	for (size_t i = 0; i < z->nnodes; i++) {
		struct tern_zone_node *n = &z->nodes[i];
		if (n->labels <= z->origin_labels)
			continue;
		if (knot_dname_is_wildcard(n->owner))
			node_lookup(z, parent_name(n->owner))->wildcard_child = true;
		/* The topmost cut on the path wins: anything below it is occluded. */
		const knot_dname_t *p = n->owner;
		for (unsigned l = n->labels; l > z->origin_labels; l--, p = parent_name(p)) {
			const struct tern_zone_node *a = node_lookup(z, p);
			if (tern_zone_node_rrset(a, KNOT_RRTYPE_NS) != NULL)
				n->deleg = (int32_t)(a - z->nodes);
		}
	}
}

static bool cname_ok(const struct tern_zone_node *n)
{
	const knot_rrset_t *cname = tern_zone_node_rrset(n, KNOT_RRTYPE_CNAME);
	if (cname == NULL)
		return true;
	if (cname->rrs.count > 1)
		return false;
	for (uint16_t i = 0; i < n->nrrsets; i++) {
		uint16_t t = n->rrsets[i].type;
		if (t != KNOT_RRTYPE_CNAME && t != KNOT_RRTYPE_RRSIG && t != KNOT_RRTYPE_NSEC)
			return false;
	}
	return true;
}

static int check_zone(struct tern_zone *z, struct load_ctx *ctx)
{
	char name[KNOT_DNAME_TXT_MAXLEN + 1];
	const struct tern_zone_node *apex = &z->nodes[0];
	const knot_rrset_t *soa = tern_zone_node_rrset(apex, KNOT_RRTYPE_SOA);
	if (soa == NULL) {
		set_err(ctx, "%s: no SOA record at the zone apex", ctx->path);
		return TERN_EZONE;
	}
	if (soa->rrs.count != 1) {
		set_err(ctx, "%s: %u SOA records at the zone apex, need exactly one", ctx->path,
		        soa->rrs.count);
		return TERN_EZONE;
	}
	if (tern_zone_node_rrset(apex, KNOT_RRTYPE_NS) == NULL) {
		set_err(ctx, "%s: no NS records at the zone apex", ctx->path);
		return TERN_EZONE;
	}
	for (size_t i = 0; i < z->nnodes; i++) {
		const struct tern_zone_node *n = &z->nodes[i];
		if (i > 0 && tern_zone_node_rrset(n, KNOT_RRTYPE_SOA) != NULL) {
			knot_dname_to_str(name, n->owner, sizeof(name));
			set_err(ctx, "%s: SOA record at %s, outside the zone apex", ctx->path, name);
			return TERN_EZONE;
		}
		if (!cname_ok(n)) {
			knot_dname_to_str(name, n->owner, sizeof(name));
			set_err(ctx, "%s: CNAME at %s must be the only record there (RFC 1034 3.6.2)",
			        ctx->path, name);
			return TERN_EZONE;
		}
	}
	z->soa = soa;
	uint32_t min = knot_soa_minimum(soa->rrs.rdata);
	z->neg_ttl = soa->ttl < min ? soa->ttl : min;
	return 0;
}

static int build(struct tern_zone *z, struct load_ctx *ctx)
{
	if (ctx->nrecs == 0) {
		set_err(ctx, "%s: no records", ctx->path);
		return TERN_EZONE;
	}
	qsort(ctx->recs, ctx->nrecs, sizeof(*ctx->recs), rec_cmp);
	size_t cap = 0;
	/* The apex sorts first in canonical order; make sure it is node 0 even if empty. */
	if (!knot_dname_is_equal(ctx->recs[0].owner, z->origin)) {
		if (node_add(z, &cap, z->origin) == NULL)
			return TERN_ENOMEM;
	}
	for (size_t i = 0; i < ctx->nrecs;) {
		size_t end = i + 1;
		while (end < ctx->nrecs && knot_dname_is_equal(ctx->recs[end].owner,
		                                               ctx->recs[i].owner))
			end++;
		struct tern_zone_node *n = node_add(z, &cap, ctx->recs[i].owner);
		if (n == NULL)
			return TERN_ENOMEM;
		int ret = node_fill(z, n, ctx->recs + i, end - i);
		if (ret == TERN_EZONE)
			set_err(ctx, "%s: an RRset has more than 65535 records", ctx->path);
		if (ret != 0)
			return ret;
		i = end;
	}
	int ret = add_empty_non_terminals(z, &cap);
	if (ret != 0)
		return ret;
	mark_cuts_and_wildcards(z);
	return check_zone(z, ctx);
}

static int parse_origin(struct tern_zone *z, const char *origin)
{
	knot_dname_storage_t wire;
	if (origin == NULL || knot_dname_from_str(wire, origin, sizeof(wire)) == NULL)
		return TERN_EINVAL;
	knot_dname_to_lower(wire);
	size_t len = knot_dname_size(wire);
	z->origin = chunk_alloc(z, len);
	if (z->origin == NULL)
		return TERN_ENOMEM;
	memcpy(z->origin, wire, len);
	z->origin_labels = (uint8_t)knot_dname_labels(wire, NULL);
	return 0;
}

int tern_zone_load(const char *path, const char *origin, struct tern_zone **out,
                   char *err, size_t errlen)
{
	char origin_str[KNOT_DNAME_TXT_MAXLEN + 1];
	struct load_ctx ctx = { .path = path, .err = err, .errlen = errlen };
	zs_scanner_t *s = NULL;
	int ret;

	if (errlen > 0)
		err[0] = '\0';
	struct tern_zone *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return TERN_ENOMEM;
	ctx.zone = z;
	ret = parse_origin(z, origin);
	if (ret != 0) {
		set_err(&ctx, "%s: invalid origin \"%s\"", path, origin ? origin : "");
		goto fail;
	}
	knot_dname_to_str(origin_str, z->origin, sizeof(origin_str));

	s = malloc(sizeof(*s));
	if (s == NULL) {
		ret = TERN_ENOMEM;
		goto fail;
	}
	if (zs_init(s, origin_str, KNOT_CLASS_IN, 3600) != 0) {
		set_err(&ctx, "%s: %s", path, zs_strerror(s->error.code));
		ret = TERN_EINVAL;
		zs_deinit(s);
		goto fail;
	}
	if (zs_set_input_file(s, path) != 0) {
		set_err(&ctx, "%s: cannot read (%s)", path, zs_strerror(s->error.code));
		ret = TERN_EZONE;
		goto fail_scanner;
	}
	if (zs_set_processing(s, on_record, on_error, &ctx) != 0 || zs_parse_all(s) != 0 ||
	    ctx.failed) {
		set_err(&ctx, "%s:%llu: %s", path, (unsigned long long)s->line_counter,
		        zs_strerror(s->error.code));
		ret = TERN_EZONE;
		goto fail_scanner;
	}
	zs_deinit(s);
	free(s);
	s = NULL;

	ret = build(z, &ctx);
	if (ret == TERN_ENOMEM)
		set_err(&ctx, "%s: out of memory", path);
	if (ret != 0)
		goto fail;
	free(ctx.recs);
	*out = z;
	return 0;

fail_scanner:
	zs_deinit(s);
fail:
	free(s);
	free(ctx.recs);
	tern_zone_free(z);
	return ret;
}

void tern_zone_free(struct tern_zone *zone)
{
	if (zone == NULL)
		return;
	struct tern_zone_chunk *c = zone->chunks;
	while (c != NULL) {
		struct tern_zone_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(zone->table);
	free(zone->nodes);
	free(zone);
}

const struct tern_zone_node *tern_zone_get(const struct tern_zone *zone,
                                           const knot_dname_t *name)
{
	return node_lookup(zone, name);
}

const knot_rrset_t *tern_zone_node_rrset(const struct tern_zone_node *node, uint16_t type)
{
	for (uint16_t i = 0; i < node->nrrsets; i++)
		if (node->rrsets[i].type == type)
			return &node->rrsets[i];
	return NULL;
}

enum tern_zone_result tern_zone_find(const struct tern_zone *zone, const knot_dname_t *name,
                                     uint16_t qtype, const struct tern_zone_node **node)
{
	*node = NULL;
	if (knot_dname_in_bailiwick(name, zone->origin) < 0)
		return TERN_ZONE_OUT;

	const struct tern_zone_node *n = node_lookup(zone, name);
	if (n != NULL) {
		int32_t self = (int32_t)(n - zone->nodes);
		/* DS lives on the parent side of a cut (RFC 4035 3.1.4.1). */
		if (n->deleg >= 0 && !(qtype == KNOT_RRTYPE_DS && n->deleg == self)) {
			*node = &zone->nodes[n->deleg];
			return TERN_ZONE_DELEG;
		}
		*node = n;
		return TERN_ZONE_FOUND;
	}

	/* Walk up to the closest encloser; the apex ends the walk at the latest. */
	const knot_dname_t *p = name;
	const struct tern_zone_node *ce = NULL;
	while (ce == NULL) {
		p = parent_name(p);
		if (p == NULL)
			return TERN_ZONE_OUT;
		ce = node_lookup(zone, p);
	}
	if (ce->deleg >= 0) {
		*node = &zone->nodes[ce->deleg];
		return TERN_ZONE_DELEG;
	}
	if (ce->wildcard_child) {
		/* "*." + ce fits: ce has at least one label less than the name. */
		knot_dname_storage_t wc;
		size_t len = knot_dname_size(ce->owner);
		wc[0] = 1;
		wc[1] = '*';
		memcpy(wc + 2, ce->owner, len);
		const struct tern_zone_node *w = node_lookup(zone, wc);
		if (w != NULL) {
			*node = w;
			return TERN_ZONE_WILDCARD;
		}
	}
	*node = ce;
	return TERN_ZONE_NXDOMAIN;
}
