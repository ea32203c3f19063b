/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache's shared table (store.h): building entries from answer wire, the
 * rculfhash index and the CLOCK rings that bound it. Allocation happens only when an
 * answer is stored (the miss path, after an upstream round trip or a plugin's answer);
 * lookups allocate nothing. Entries are freed by liburcu's call_rcu thread after a
 * grace period.
 */
#include "lib/plugins/cache/store.h"

#include <stdlib.h>
#include <string.h>

#include "lib/core/errcode.h"
#include "lib/dns/name.h"

/* Sweep this many ring slots for an entry not hit lately, then take the current one. */
#define RING_MAX_STEPS 16

/*
 * ThreadSanitizer cannot see the barriers inside liburcu (inline asm, uninstrumented
 * library), so the publication of an entry through the hash table and its reclamation
 * after a grace period are annotated (TERN_TSAN_* in rcu.h, empty otherwise).
 */

/* ---- keys ------------------------------------------------------------------------ */

void cache_key_init(struct cache_key *k, const knot_dname_t *qname, uint16_t qtype,
                    uint16_t qclass, uint8_t flags)
{
	uint64_t h = tern_name_hash(qname);
	h ^= ((uint64_t)qtype << 32) ^ ((uint64_t)qclass << 16) ^ flags;
	/* splitmix64's finaliser: rculfhash orders by the bit-reversed hash. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	*k = (struct cache_key) {
		.qname = qname,
		.qname_len = knot_dname_size(qname),
		.qtype = qtype,
		.qclass = qclass,
		.flags = flags,
		.hash = (unsigned long)h,
	};
}

static int match_key(struct cds_lfht_node *node, const void *key)
{
	const struct cache_entry *e = caa_container_of(node, struct cache_entry, node);
	const struct cache_key *k = key;
	TERN_TSAN_ACQUIRE(e);
	return e->qtype == k->qtype && e->qclass == k->qclass && e->flags == k->flags &&
	       e->qname_len == k->qname_len &&
	       memcmp(e->wire + KNOT_WIRE_HEADER_SIZE, k->qname, k->qname_len) == 0;
}

/* ---- answer wire ----------------------------------------------------------------- */

/* Step over a (possibly compressed) name that must end before @p end. */
static int skip_name(const uint8_t *w, size_t end, size_t *pos)
{
	size_t p = *pos;
	for (unsigned labels = 0; labels <= KNOT_DNAME_MAXLABELS; labels++) {
		if (p >= end)
			return TERN_EINVAL;
		uint8_t len = w[p];
		if (len == 0) {
			*pos = p + 1;
			return 0;
		}
		if ((len & 0xc0) == 0xc0) {
			if (p + 2 > end)
				return TERN_EINVAL;
			*pos = p + 2;
			return 0;
		}
		if (len & 0xc0)
			return TERN_EINVAL;
		p += 1u + len;
	}
	return TERN_EINVAL;
}

/* RFC 2181 §8: a TTL with the top bit set is 0. */
static uint32_t read_ttl(const uint8_t *p)
{
	uint32_t ttl = knot_wire_read_u32(p);
	return ttl > INT32_MAX ? 0 : ttl;
}

/* RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM). */
static int soa_negative_ttl(const uint8_t *w, size_t rdata, size_t rdlen, uint32_t ttl,
                            uint32_t *out)
{
	size_t p = rdata, end = rdata + rdlen;
	if (skip_name(w, end, &p) != 0 || skip_name(w, end, &p) != 0 || p + 20 != end)
		return TERN_EINVAL;
	uint32_t minimum = read_ttl(w + p + 16);
	*out = ttl < minimum ? ttl : minimum;
	return 0;
}

static bool question_is(const uint8_t *w, size_t end, const struct cache_key *k)
{
	size_t q = KNOT_WIRE_HEADER_SIZE;
	if (q + k->qname_len + 4 > end)
		return false;
	for (size_t i = 0; i < k->qname_len; i++) {
		uint8_t c = w[q + i];
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + ('a' - 'A'));
		if (c != k->qname[i])
			return false;
	}
	q += k->qname_len;
	return knot_wire_read_u16(w + q) == k->qtype && knot_wire_read_u16(w + q + 2) == k->qclass;
}

int cache_msg_scan(const uint8_t *w, size_t cap, const struct cache_key *k,
                   struct cache_scan *out)
{
	*out = (struct cache_scan) { 0 };
	if (cap < KNOT_WIRE_HEADER_SIZE || !knot_wire_get_qr(w) || knot_wire_get_tc(w) ||
	    knot_wire_get_qdcount(w) != 1 || !question_is(w, cap, k))
		return TERN_EINVAL;
	size_t pos = KNOT_WIRE_HEADER_SIZE + k->qname_len + 4;
	unsigned an = knot_wire_get_ancount(w);
	unsigned ns = knot_wire_get_nscount(w);
	unsigned total = an + ns + knot_wire_get_arcount(w);
	out->rcode = knot_wire_get_rcode(w);
	out->ancount = (uint16_t)an;
	for (unsigned i = 0; i < total; i++) {
		size_t start = pos;
		if (out->has_opt || skip_name(w, cap, &pos) != 0 || pos + 10 > cap)
			return TERN_EINVAL;   /* OPT must be the last record */
		uint16_t type = knot_wire_read_u16(w + pos);
		uint32_t ttl = read_ttl(w + pos + 4);
		size_t rdlen = knot_wire_read_u16(w + pos + 8);
		size_t rdata = pos + 10;
		if (rdata + rdlen > cap)
			return TERN_EINVAL;
		pos = rdata + rdlen;
		if (type == KNOT_RRTYPE_TSIG)
			return TERN_EINVAL;
		if (type == KNOT_RRTYPE_OPT) {
			if (i < an + ns)
				return TERN_EINVAL;
			out->has_opt = true;
			out->len = start;
			continue;
		}
		out->nrr++;
		if (type == KNOT_RRTYPE_SOA && i >= an && i < an + ns && !out->has_soa) {
			if (soa_negative_ttl(w, rdata, rdlen, ttl, &out->soa_neg) != 0)
				return TERN_EINVAL;
			out->has_soa = true;
		}
	}
	if (!out->has_opt)
		out->len = pos;
	return 0;
}

enum cache_class cache_msg_class(const struct cache_scan *s)
{
	switch (s->rcode) {
	case KNOT_RCODE_NOERROR:
		if (s->ancount > 0)
			return CACHE_CLASS_SUCCESS;
		return s->has_soa ? CACHE_CLASS_DENIAL : CACHE_CLASS_NONE;
	case KNOT_RCODE_NXDOMAIN:
		return s->has_soa ? CACHE_CLASS_DENIAL : CACHE_CLASS_NONE;
	case KNOT_RCODE_SERVFAIL:
		return CACHE_CLASS_SERVFAIL;
	default:
		return CACHE_CLASS_NONE;   /* REFUSED, FORMERR, NOTIMP, ... */
	}
}

static uint32_t clamp_ttl(uint32_t ttl, const struct cache_limits *lim)
{
	if (ttl < lim->min_ttl)
		return lim->min_ttl;
	return ttl > lim->max_ttl ? lim->max_ttl : ttl;
}

struct cache_entry *cache_entry_new(const uint8_t *src, const struct cache_scan *s,
                                    enum cache_class cls, const struct cache_key *k,
                                    const struct cache_limits *lim, uint64_t now_ms)
{
	size_t n = s->nrr;
	struct cache_entry *e = calloc(1, sizeof(*e) + n * sizeof(uint32_t) +
	                                  n * sizeof(uint16_t) + s->len);
	if (e == NULL)
		return NULL;
	uint32_t *ttls = e->data;
	uint16_t *offs = (uint16_t *)(ttls + n);
	uint8_t *wire = (uint8_t *)(offs + n);
	memcpy(wire, src, s->len);
	knot_wire_set_id(wire, 0);
	if (s->has_opt)
		knot_wire_set_arcount(wire, (uint16_t)(knot_wire_get_arcount(wire) - 1));
	memcpy(wire + KNOT_WIRE_HEADER_SIZE, k->qname, k->qname_len);

	unsigned an = knot_wire_get_ancount(wire), ns = knot_wire_get_nscount(wire);
	size_t pos = KNOT_WIRE_HEADER_SIZE + k->qname_len + 4;
	uint32_t min = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		(void)skip_name(wire, s->len, &pos);   /* checked by cache_msg_scan */
		uint16_t type = knot_wire_read_u16(wire + pos);
		uint32_t ttl = read_ttl(wire + pos + 4);
		size_t rdlen = knot_wire_read_u16(wire + pos + 8);
		offs[i] = (uint16_t)(pos + 4);
		if (cls == CACHE_CLASS_SERVFAIL) {
			ttls[i] = ttl;
		} else if (cls == CACHE_CLASS_DENIAL && type == KNOT_RRTYPE_SOA && i >= an &&
		           i < an + ns) {
			uint32_t neg = ttl;
			(void)soa_negative_ttl(wire, pos + 10, rdlen, ttl, &neg);
			ttls[i] = clamp_ttl(neg, lim);
		} else {
			ttls[i] = clamp_ttl(ttl, lim);
		}
		if (ttls[i] < min)
			min = ttls[i];
		pos += 10 + rdlen;
	}
	if (cls == CACHE_CLASS_SERVFAIL)
		e->ttl_ms = lim->servfail_ms;
	else
		e->ttl_ms = (uint64_t)(n ? min : lim->min_ttl) * 1000u;

	e->hash = k->hash;
	e->stored_ms = now_ms;
	e->expire_ms = now_ms + e->ttl_ms;
	e->cls = (uint8_t)cls;
	e->flags = k->flags;
	e->qtype = k->qtype;
	e->qclass = k->qclass;
	e->qname_len = (uint16_t)k->qname_len;
	e->wire_len = (uint16_t)s->len;
	e->nrr = (uint16_t)n;
	e->ttls = ttls;
	e->offs = offs;
	e->wire = wire;
	return e;
}

void cache_entry_free(struct cache_entry *e)
{
	free(e);
}

static void entry_free_rcu(struct rcu_head *head)
{
	TERN_TSAN_GRACE();
	free(caa_container_of(head, struct cache_entry, rcu));
}

/* ---- the table ------------------------------------------------------------------- */

static unsigned long pow2_at_least(size_t n)
{
	unsigned long p = 64;
	while (p < n && p < (1ul << 30))
		p <<= 1;
	return p;
}

int cache_table_init(struct cache_table *t, size_t cap_success, size_t cap_denial)
{
	*t = (struct cache_table) { 0 };
	if (cap_success == 0 || cap_denial == 0)
		return TERN_EINVAL;
	size_t caps[CACHE_KINDS] = { [CACHE_SUCCESS] = cap_success, [CACHE_DENIAL] = cap_denial };
	for (int kind = 0; kind < CACHE_KINDS; kind++) {
		t->ring[kind].slots = calloc(caps[kind], sizeof(*t->ring[kind].slots));
		if (t->ring[kind].slots == NULL)
			goto fail;
		t->ring[kind].cap = caps[kind];
	}
	/* All buckets up front, no resizing: the rings bound the entry count. */
	unsigned long buckets = pow2_at_least(cap_success + cap_denial);
	t->ht = cds_lfht_new_flavor(buckets, buckets, buckets, 0, &urcu_qsbr_flavor, NULL);
	if (t->ht == NULL)
		goto fail;
	return 0;
fail:
	cache_table_deinit(t);
	return TERN_ENOMEM;
}

void cache_table_deinit(struct cache_table *t)
{
	if (t->ht != NULL) {
		struct cds_lfht_iter it;
		cds_lfht_first(t->ht, &it);
		for (struct cds_lfht_node *n; (n = cds_lfht_iter_get_node(&it)) != NULL;) {
			cds_lfht_del(t->ht, n);
			cds_lfht_next(t->ht, &it);
		}
		cds_lfht_destroy(t->ht, NULL);
		t->ht = NULL;
	}
	for (int kind = 0; kind < CACHE_KINDS; kind++) {
		struct cache_ring *r = &t->ring[kind];
		for (size_t i = 0; r->slots != NULL && i < r->cap; i++)
			free(atomic_load_explicit(&r->slots[i], memory_order_relaxed));
		free(r->slots);
		r->slots = NULL;
	}
}

struct cache_entry *cache_table_find(const struct cache_table *t, const struct cache_key *k)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->ht, k->hash, match_key, k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (n == NULL)
		return NULL;
	struct cache_entry *e = caa_container_of(n, struct cache_entry, node);
	TERN_TSAN_ACQUIRE(e);
	return e;
}

/* An entry the hand may take at once: replaced, or past its stale window. */
static bool is_spent(const struct cache_entry *e, uint64_t now_ms, uint64_t stale_ms)
{
	return atomic_load_explicit(&e->state, memory_order_relaxed) == CACHE_DEAD ||
	       now_ms >= e->expire_ms + stale_ms;
}

/*
 * Put @p e into a slot of @p r, displacing an empty, spent or not recently hit entry
 * (CLOCK). The displaced entry is unlinked from the hash table (it may already be,
 * by a replacement) and freed after a grace period. @return true if it was live.
 */
static bool ring_place(struct cache_table *t, struct cache_ring *r, struct cache_entry *e,
                       uint64_t now_ms, uint64_t stale_ms)
{
	for (unsigned step = 0;; step++) {
		size_t i = atomic_fetch_add_explicit(&r->hand, 1, memory_order_relaxed) % r->cap;
		struct cache_entry *v = atomic_load_explicit(&r->slots[i], memory_order_acquire);
		if (v != NULL && step < RING_MAX_STEPS && !is_spent(v, now_ms, stale_ms) &&
		    atomic_load_explicit(&v->ref, memory_order_relaxed)) {
			atomic_store_explicit(&v->ref, 0, memory_order_relaxed);   /* second chance */
			continue;
		}
		if (!atomic_compare_exchange_strong_explicit(&r->slots[i], &v, e,
		                                             memory_order_acq_rel,
		                                             memory_order_acquire))
			continue;   /* another worker took this slot: go on sweeping */
		if (v == NULL)
			return false;
		bool live = !is_spent(v, now_ms, stale_ms);
		cds_lfht_del(t->ht, &v->node);
		urcu_qsbr_call_rcu(&v->rcu, entry_free_rcu);
		return live;
	}
}

bool cache_table_insert(struct cache_table *t, struct cache_entry *e, uint64_t now_ms,
                        uint64_t stale_ms)
{
	struct cache_key k = {
		.qname = e->wire + KNOT_WIRE_HEADER_SIZE,
		.qname_len = e->qname_len,
		.qtype = e->qtype,
		.qclass = e->qclass,
		.flags = e->flags,
		.hash = e->hash,
	};
	TERN_TSAN_RELEASE(e);
	struct cds_lfht_node *old = cds_lfht_add_replace(t->ht, e->hash, match_key, &k, &e->node);
	if (old != NULL) {
		struct cache_entry *o = caa_container_of(old, struct cache_entry, node);
		atomic_store_explicit(&o->state, CACHE_DEAD, memory_order_relaxed);
	}
	/* Indexed first, then owned by a ring slot: only ring owners free entries. */
	return ring_place(t, &t->ring[cache_class_kind(e->cls)], e, now_ms, stale_ms);
}

size_t cache_table_count(const struct cache_table *t, enum cache_kind kind)
{
	const struct cache_ring *r = &t->ring[kind];
	size_t n = 0;
	for (size_t i = 0; i < r->cap; i++) {
		const struct cache_entry *e =
			atomic_load_explicit(&r->slots[i], memory_order_acquire);
		if (e != NULL && atomic_load_explicit(&e->state, memory_order_relaxed) == CACHE_LIVE)
			n++;
	}
	return n;
}
