/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache plugin: answers repeated questions from a shared table of whole answers
 * (store.h), CoreDNS's cache semantics. init (loader) checks the options and builds
 * the instance: the table, the zone lists and one row of counters per worker. The
 * query hook (worker) looks the question up: a fresh entry is copied into the answer
 * buffer as a raw answer with its TTLs counted down (and maybe prefetched), an expired
 * one within serve_stale is answered with the stale TTL and refreshed in the
 * background (tern_io_refresh), anything else passes on. The answer hook (worker)
 * stores what the plugins after it answered. Counters are per worker (relaxed load +
 * store by the only writer) and summed by the metrics hook (HTTP thread).
 * Hot path (cache_query): no malloc, no locks, no syscalls. cache_answer allocates one
 * entry per stored answer (the miss path only).
 */
#include "lib/plugins/cache/cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/core/parse.h"
#include "lib/core/stats.h"
#include "lib/dns/answer.h"
#include "lib/dns/name.h"
#include "lib/engine/diag.h"
#include "lib/engine/hot.h"
#include "lib/engine/io.h"
#include "lib/engine/plugin.h"
#include "lib/engine/process.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/cache/store.h"

#define CACHE_DEFAULT_CAPACITY   9984
#define CACHE_MAX_CAPACITY       10000000
#define CACHE_DEFAULT_SUCCESS_TTL 3600
#define CACHE_DEFAULT_DENIAL_TTL 1800
#define CACHE_DEFAULT_MIN_TTL    1
#define CACHE_MAX_TTL            604800            /* one week */
#define CACHE_DEFAULT_SERVFAIL_MS 5000
#define CACHE_MAX_SERVFAIL_MS    300000            /* CoreDNS: at most 5 minutes */
#define CACHE_DEFAULT_PF_WINDOW_MS 60000
#define CACHE_DEFAULT_PF_PERCENT 10
#define CACHE_DEFAULT_STALE_MS   3600000
#define CACHE_DEFAULT_STALE_TTL  30                /* RFC 8767 §4 */
#define CACHE_DEFAULT_RECHECK_MS 30000             /* RFC 8767 §5 failure recheck */
#define CACHE_MAX_WORKERS        1024              /* conf.c's CONF_MAX_WORKERS */

/* ---- config schema ---------------------------------------------------------------- */

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t kind_fields[] = {
	CYAML_FIELD_UINT_PTR("capacity", CYAML_FLAG_OPTIONAL, struct tern_cache_kind_conf,
	                     capacity),
	CYAML_FIELD_UINT_PTR("ttl", CYAML_FLAG_OPTIONAL, struct tern_cache_kind_conf, ttl),
	CYAML_FIELD_UINT_PTR("min_ttl", CYAML_FLAG_OPTIONAL, struct tern_cache_kind_conf, min_ttl),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t prefetch_fields[] = {
	CYAML_FIELD_UINT_PTR("amount", CYAML_FLAG_OPTIONAL, struct tern_cache_prefetch_conf,
	                     amount),
	CYAML_FIELD_STRING_PTR("duration", CYAML_FLAG_OPTIONAL, struct tern_cache_prefetch_conf,
	                       duration, 1, 32),
	CYAML_FIELD_UINT_PTR("percentage", CYAML_FLAG_OPTIONAL, struct tern_cache_prefetch_conf,
	                     percentage),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t stale_fields[] = {
	CYAML_FIELD_STRING_PTR("duration", CYAML_FLAG_OPTIONAL, struct tern_cache_stale_conf,
	                       duration, 1, 32),
	CYAML_FIELD_STRING_PTR("refresh", CYAML_FLAG_OPTIONAL, struct tern_cache_stale_conf,
	                       refresh, 1, 32),
	CYAML_FIELD_UINT_PTR("ttl", CYAML_FLAG_OPTIONAL, struct tern_cache_stale_conf, ttl),
	CYAML_FIELD_STRING_PTR("recheck", CYAML_FLAG_OPTIONAL, struct tern_cache_stale_conf,
	                       recheck, 1, 32),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t disable_fields[] = {
	CYAML_FIELD_SEQUENCE("success", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_cache_disable_conf, success, &string_entry, 1,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("denial", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_cache_disable_conf, denial, &string_entry, 1,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_END
};

const cyaml_schema_field_t tern_cache_conf_fields[] = {
	CYAML_FIELD_UINT_PTR("ttl", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, ttl),
	CYAML_FIELD_MAPPING_PTR("success", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, success,
	                        kind_fields),
	CYAML_FIELD_MAPPING_PTR("denial", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, denial,
	                        kind_fields),
	CYAML_FIELD_MAPPING_PTR("prefetch", CYAML_FLAG_OPTIONAL, struct tern_cache_conf,
	                        prefetch, prefetch_fields),
	CYAML_FIELD_MAPPING_PTR("serve_stale", CYAML_FLAG_OPTIONAL, struct tern_cache_conf,
	                        serve_stale, stale_fields),
	CYAML_FIELD_STRING_PTR("serve_stale_policy", CYAML_FLAG_OPTIONAL, struct tern_cache_conf,
	                       serve_stale_policy, 1, 32),
	CYAML_FIELD_STRING_PTR("servfail", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, servfail,
	                       1, 32),
	CYAML_FIELD_MAPPING_PTR("disable", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, disable,
	                        disable_fields),
	CYAML_FIELD_BOOL("keepttl", CYAML_FLAG_OPTIONAL, struct tern_cache_conf, keepttl),
	CYAML_FIELD_SEQUENCE("zones", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_cache_conf, zones, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

/* ---- instance ------------------------------------------------------------------- */

/* Per-worker counters: one 64-byte row per worker, written only by that worker. */
enum cache_ctr {
	CTR_HITS_SUCCESS = 0,
	CTR_HITS_DENIAL,
	CTR_EVICT_SUCCESS,
	CTR_EVICT_DENIAL,
	CTR_MISSES,
	CTR_REQUESTS,
	CTR_PREFETCH,
	CTR_STALE,
	CTR_COUNT,
};

struct cache_row {
	_Alignas(64) _Atomic uint64_t v[CTR_COUNT];
};
_Static_assert(sizeof(struct cache_row) == 64, "one cache line per worker row");

struct zone_list {
	knot_dname_t **names;   /* lowercase wire form */
	size_t *lens;           /* their wire lengths */
	size_t n;
};

/* One configured instance, owned by the view; read-only after init but for the table
 * and the counters. */
struct cache {
	struct cache_table table;
	struct zone_list zones;
	struct zone_list no_store[CACHE_KINDS];   /* `disable` success / denial zones */
	struct zone_list never;                    /* names under both: never stored */
	char *zones_label;                         /* "a.,b." for the metrics */
	struct cache_limits lim[CACHE_KINDS];
	bool keepttl;
	bool prefetch;
	uint32_t pf_amount;
	uint64_t pf_window_ms;
	uint32_t pf_percent;
	uint64_t stale_ms;                         /* 0: no serve_stale */
	bool stale_verify;
	uint32_t stale_ttl;
	uint64_t recheck_ms;
	bool prefer_positive;
	struct cache_row *rows;                    /* CACHE_MAX_WORKERS */
};

static void zone_list_free(struct zone_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->lens);
	*l = (struct zone_list) { 0 };
}

static void cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	cache_table_deinit(&c->table);
	zone_list_free(&c->zones);
	for (int k = 0; k < CACHE_KINDS; k++)
		zone_list_free(&c->no_store[k]);
	zone_list_free(&c->never);
	free(c->zones_label);
	free(c->rows);
	free(c);
}

/* Parse @p n zone names into @p l. @return 0, TERN_ENOMEM or TERN_EINVAL (index in *bad). */
static int zone_list_init(struct zone_list *l, char *const *strs, size_t n, size_t *bad)
{
	l->names = calloc(n ? n : 1, sizeof(*l->names));
	l->lens = calloc(n ? n : 1, sizeof(*l->lens));
	if (l->names == NULL || l->lens == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		knot_dname_t *d = knot_dname_from_str_alloc(strs[i]);
		if (d == NULL) {
			*bad = i;
			return TERN_EINVAL;
		}
		knot_dname_to_lower(d);
		l->lens[l->n] = tern_name_len(d);
		l->names[l->n++] = d;
	}
	return 0;
}

/* @p name (@p len bytes on the wire) is one of @p l's zones or under one. */
static bool zone_list_has(const struct zone_list *l, const knot_dname_t *name, size_t len)
{
	for (size_t i = 0; i < l->n; i++) {
		if (tern_name_is_under_n(name, len, l->names[i], l->lens[i]))
			return true;
	}
	return false;
}

/*
 * The names under a zone of both `disable` lists, as one list: for each pair, the
 * deeper of the two when one holds the other (kubeadm's cluster.local in both: itself).
 */
static int zone_list_both(struct zone_list *out, const struct zone_list *a,
                          const struct zone_list *b)
{
	size_t cap = a->n * b->n;
	out->names = calloc(cap ? cap : 1, sizeof(*out->names));
	out->lens = calloc(cap ? cap : 1, sizeof(*out->lens));
	if (out->names == NULL || out->lens == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < a->n; i++) {
		for (size_t j = 0; j < b->n; j++) {
			const knot_dname_t *an = a->names[i], *bn = b->names[j];
			const struct zone_list *from =
				tern_name_is_under_n(an, a->lens[i], bn, b->lens[j]) ? a :
				tern_name_is_under_n(bn, b->lens[j], an, a->lens[i]) ? b : NULL;
			if (from == NULL)
				continue;
			size_t k = from == a ? i : j;
			out->names[out->n] = knot_dname_copy(from->names[k], NULL);
			if (out->names[out->n] == NULL)
				return TERN_ENOMEM;
			out->lens[out->n++] = from->lens[k];
		}
	}
	return 0;
}

static int parse_ms(struct tern_diag *diag, const char *key, const char *s, uint64_t dflt,
                    uint64_t min, uint64_t max, uint64_t *out)
{
	*out = dflt;
	if (s == NULL)
		return 0;
	if (tern_parse_duration(s, out) != 0 || *out < min || *out > max) {
		tern_diag_error(diag, key, "invalid duration \"%s\" (want %llums..%llums, e.g. \"5s\")",
		                s, (unsigned long long)min, (unsigned long long)max);
		return TERN_ECONFIG;
	}
	return 0;
}

static int parse_uint(struct tern_diag *diag, const char *key, const uint32_t *v, uint32_t dflt,
                      uint32_t min, uint32_t max, uint32_t *out)
{
	*out = v != NULL ? *v : dflt;
	if (*out < min || *out > max) {
		tern_diag_error(diag, key, "must be %u..%u, got %u", min, max, *out);
		return TERN_ECONFIG;
	}
	return 0;
}

/* success / denial: capacity, ttl, min_ttl. */
static int configure_kind(struct cache *c, enum cache_kind kind,
                          const struct tern_cache_kind_conf *kc, const uint32_t *ttl,
                          struct tern_diag *diag, size_t *capacity)
{
	const char *name = kind == CACHE_SUCCESS ? "success" : "denial";
	uint32_t dflt_ttl = kind == CACHE_SUCCESS ? CACHE_DEFAULT_SUCCESS_TTL :
	                                            CACHE_DEFAULT_DENIAL_TTL;
	static const struct tern_cache_kind_conf none = { 0 };
	if (kc == NULL)
		kc = &none;
	char key[32];
	uint32_t cap, max, min;
	snprintf(key, sizeof(key), "%s.capacity", name);
	int bad = parse_uint(diag, key, kc->capacity, CACHE_DEFAULT_CAPACITY, 1,
	                     CACHE_MAX_CAPACITY, &cap);
	snprintf(key, sizeof(key), "%s.ttl", name);
	int bad_ttl = parse_uint(diag, kc->ttl ? key : "ttl", kc->ttl ? kc->ttl : ttl, dflt_ttl, 1,
	                         CACHE_MAX_TTL, &max);
	snprintf(key, sizeof(key), "%s.min_ttl", name);
	bad_ttl |= parse_uint(diag, key, kc->min_ttl, CACHE_DEFAULT_MIN_TTL, 0, CACHE_MAX_TTL,
	                      &min);
	bad |= bad_ttl;
	if (!bad_ttl && min > max) {
		tern_diag_error(diag, key, "must not exceed the %s ttl (%u), got %u", name, max, min);
		bad = 1;
	}
	*capacity = cap;
	c->lim[kind].min_ttl = min;
	c->lim[kind].max_ttl = max;
	return bad ? TERN_ECONFIG : 0;
}

static int configure_prefetch(struct cache *c, const struct tern_cache_prefetch_conf *pf,
                              struct tern_diag *diag)
{
	if (pf == NULL)
		return 0;
	int bad = 0;
	c->prefetch = true;
	bad |= parse_uint(diag, "prefetch.amount", pf->amount, 1, 1, UINT32_MAX, &c->pf_amount);
	bad |= parse_ms(diag, "prefetch.duration", pf->duration, CACHE_DEFAULT_PF_WINDOW_MS, 1,
	                UINT32_MAX, &c->pf_window_ms);
	bad |= parse_uint(diag, "prefetch.percentage", pf->percentage, CACHE_DEFAULT_PF_PERCENT, 1,
	                  100, &c->pf_percent);
	return bad ? TERN_ECONFIG : 0;
}

static int configure_stale(struct cache *c, const struct tern_cache_conf *conf,
                           struct tern_diag *diag)
{
	const struct tern_cache_stale_conf *st = conf->serve_stale;
	int bad = 0;
	if (conf->serve_stale_policy != NULL) {
		if (strcmp(conf->serve_stale_policy, "prefer_positive") == 0) {
			c->prefer_positive = true;
		} else {
			tern_diag_error(diag, "serve_stale_policy",
			                "must be \"prefer_positive\", got \"%s\"",
			                conf->serve_stale_policy);
			bad = 1;
		}
	}
	if (st == NULL)
		return bad ? TERN_ECONFIG : 0;
	bad |= parse_ms(diag, "serve_stale.duration", st->duration, CACHE_DEFAULT_STALE_MS, 1000,
	                UINT32_MAX, &c->stale_ms);
	if (st->refresh != NULL && strcmp(st->refresh, "verify") == 0) {
		c->stale_verify = true;
	} else if (st->refresh != NULL && strcmp(st->refresh, "immediate") != 0) {
		tern_diag_error(diag, "serve_stale.refresh",
		                "must be \"immediate\" or \"verify\", got \"%s\"", st->refresh);
		bad = 1;
	}
	bad |= parse_uint(diag, "serve_stale.ttl", st->ttl, CACHE_DEFAULT_STALE_TTL, 0, 86400,
	                  &c->stale_ttl);
	bad |= parse_ms(diag, "serve_stale.recheck", st->recheck, CACHE_DEFAULT_RECHECK_MS, 0,
	                UINT32_MAX, &c->recheck_ms);
	return bad ? TERN_ECONFIG : 0;
}

static int configure_zones(struct cache *c, const struct tern_cache_conf *conf,
                           const struct tern_plugin_env *env, struct tern_diag *diag)
{
	char *const *strs = conf->zones_count ? conf->zones : (char *const *)env->zones;
	size_t n = conf->zones_count ? conf->zones_count : env->nzones;
	size_t bad_at = 0, label_len = 1;
	int ret = zone_list_init(&c->zones, strs, n, &bad_at);
	if (ret == TERN_EINVAL)
		tern_diag_error(diag, conf->zones_count ? "zones" : "", "invalid zone name \"%s\"",
		                strs[bad_at]);
	if (ret != 0)
		return ret == TERN_EINVAL ? TERN_ECONFIG : ret;

	for (size_t i = 0; i < c->zones.n; i++)
		label_len += KNOT_DNAME_TXT_MAXLEN + 1;
	c->zones_label = calloc(1, label_len);
	if (c->zones_label == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < c->zones.n; i++) {
		char buf[KNOT_DNAME_TXT_MAXLEN + 1];
		if (knot_dname_to_str(buf, c->zones.names[i], sizeof(buf)) == NULL)
			continue;
		if (i > 0)
			strcat(c->zones_label, ",");
		strcat(c->zones_label, buf);
	}

	const struct tern_cache_disable_conf *d = conf->disable;
	if (d == NULL)
		return 0;
	struct {
		const char *key;
		char **strs;
		unsigned n;
	} lists[CACHE_KINDS] = {
		[CACHE_SUCCESS] = { "disable.success", d->success, d->success_count },
		[CACHE_DENIAL] = { "disable.denial", d->denial, d->denial_count },
	};
	for (int k = 0; k < CACHE_KINDS; k++) {
		ret = zone_list_init(&c->no_store[k], lists[k].strs, lists[k].n, &bad_at);
		if (ret == TERN_EINVAL)
			tern_diag_error(diag, lists[k].key, "invalid zone name \"%s\"",
			                lists[k].strs[bad_at]);
		if (ret != 0)
			return ret == TERN_EINVAL ? TERN_ECONFIG : ret;
	}
	return zone_list_both(&c->never, &c->no_store[CACHE_SUCCESS], &c->no_store[CACHE_DENIAL]);
}

static int configure(struct cache *c, const struct tern_cache_conf *conf,
                     const struct tern_plugin_env *env, struct tern_diag *diag,
                     size_t caps[CACHE_KINDS])
{
	int bad = 0;
	if (conf->ttl != NULL && (*conf->ttl < 1 || *conf->ttl > CACHE_MAX_TTL)) {
		tern_diag_error(diag, "ttl", "must be 1..%u, got %u", CACHE_MAX_TTL, *conf->ttl);
		bad = 1;
	}
	bad |= configure_kind(c, CACHE_SUCCESS, conf->success, conf->ttl, diag,
	                      &caps[CACHE_SUCCESS]) != 0;
	bad |= configure_kind(c, CACHE_DENIAL, conf->denial, conf->ttl, diag,
	                      &caps[CACHE_DENIAL]) != 0;
	uint64_t servfail_ms;
	bad |= parse_ms(diag, "servfail", conf->servfail, CACHE_DEFAULT_SERVFAIL_MS, 0,
	                CACHE_MAX_SERVFAIL_MS, &servfail_ms) != 0;
	c->lim[CACHE_SUCCESS].servfail_ms = servfail_ms;
	c->lim[CACHE_DENIAL].servfail_ms = servfail_ms;
	bad |= configure_prefetch(c, conf->prefetch, diag) != 0;
	bad |= configure_stale(c, conf, diag) != 0;
	c->keepttl = conf->keepttl;
	int ret = configure_zones(c, conf, env, diag);
	if (ret == TERN_ENOMEM)
		return ret;
	return bad || ret != 0 ? TERN_ECONFIG : 0;
}

static int cache_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                      const struct tern_plugin_env *env, struct tern_diag *diag)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return TERN_ENOMEM;
	size_t caps[CACHE_KINDS] = { 0 };
	int ret = configure(c, conf_ptr, env, diag, caps);
	if (ret != 0)
		goto fail;
	c->rows = aligned_alloc(64, CACHE_MAX_WORKERS * sizeof(*c->rows));
	if (c->rows == NULL) {
		ret = TERN_ENOMEM;
		goto fail;
	}
	memset(c->rows, 0, CACHE_MAX_WORKERS * sizeof(*c->rows));
	ret = cache_table_init(&c->table, caps[CACHE_SUCCESS], caps[CACHE_DENIAL]);
	if (ret != 0)
		goto fail;
	pi->data = c;
	return 0;
fail:
	cache_free(c);
	return ret;
}

static void cache_deinit(struct tern_plugin_inst *pi)
{
	cache_free(pi->data);
	pi->data = NULL;
	/* Let liburcu's call_rcu thread free what evictions queued (not from a reader). */
	if (!urcu_qsbr_read_ongoing())
		urcu_qsbr_barrier();
}

/* ---- data plane ------------------------------------------------------------------ */

static _Atomic uint64_t *counter(const struct cache *c, const struct tern_req *req,
                                 enum cache_ctr ctr)
{
	unsigned w = req->worker_id < CACHE_MAX_WORKERS ? req->worker_id : CACHE_MAX_WORKERS - 1;
	return &c->rows[w].v[ctr];
}

static void count(const struct cache *c, const struct tern_req *req, enum cache_ctr ctr)
{
	_Atomic uint64_t *v = counter(c, req, ctr);
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* Count @p ctr now, and on every replay of this answer from the hot answers. */
static void count_query(const struct cache *c, struct tern_req *req, enum cache_ctr ctr)
{
	count(c, req, ctr);
	tern_hot_count(req, counter(c, req, ctr));
}

/* Replays of this answer bump @p to instead of @p from (handed over by count_query). */
static void replace_counter(struct tern_req *req, _Atomic uint64_t *from, _Atomic uint64_t *to)
{
	for (uint8_t i = 0; i < req->hot.ncounters; i++) {
		if (req->hot.counters[i] == from)
			req->hot.counters[i] = to;
	}
}

/*
 * A fresh hit may be replayed from the worker's hot answers (lib/engine/hot.h) with
 * the same TTL countdown, until the entry expires, or until the prefetch window opens:
 * hits in that window run here, to count popularity and start the refresh.
 */
static void allow_hot(struct tern_req *req, const struct cache *c, const struct cache_entry *e)
{
	struct tern_hot_hint *h = &req->hot;
	h->allow = true;
	h->until_ms = e->expire_ms;
	if (c->prefetch && e->cls != CACHE_CLASS_SERVFAIL)
		h->until_ms -= e->ttl_ms * c->pf_percent / 100u;
	if (!c->keepttl) {
		h->ttl_base_ms = e->stored_ms;
		h->ttls = e->ttls;
		h->ttl_offs = e->offs;
		h->nttl = e->nrr;
	}
}

static void key_of(const struct tern_req *req, struct cache_key *k)
{
	uint8_t flags = (req->dnssec_ok ? CACHE_KEY_DO : 0) |
	                (knot_wire_get_cd(req->query->wire) ? CACHE_KEY_CD : 0);
	cache_key_init(k, req->qname, req->qtype, req->qclass, flags);
}

/*
 * Copy @p e into the answer buffer as a raw answer (the engine sets the ID, the
 * question's case and OPT, and truncates what does not fit: bytes beyond
 * answer->max_size are not copied, raw_len still says the full length).
 */
static void serve(struct tern_req *req, const struct tern_plugin_inst *pi,
                  const struct cache *c, struct cache_entry *e, bool stale)
{
	uint8_t *w = req->answer->wire;
	size_t n = e->wire_len < req->answer->max_size ? e->wire_len : req->answer->max_size;
	memcpy(w, e->wire, n);
	uint32_t age = (uint32_t)((req->now_ms - e->stored_ms) / 1000u);
	for (size_t i = 0; i < e->nrr && e->offs[i] + 4u <= n; i++) {
		uint32_t ttl = e->ttls[i];
		if (stale)
			ttl = c->stale_ttl;
		else if (!c->keepttl)
			ttl = ttl > age ? ttl - age : 0;
		knot_wire_write_u32(w + e->offs[i], ttl);
	}
	req->raw_len = e->wire_len;
	tern_answer_by(req, pi->plugin_id);
	if (!atomic_load_explicit(&e->ref, memory_order_relaxed))
		atomic_store_explicit(&e->ref, 1, memory_order_relaxed);
}

/* Take the entry's refresh turn: at most one background refresh per entry until @p until. */
static bool claim_refresh(struct cache_entry *e, uint64_t now_ms, uint64_t until)
{
	uint64_t after = atomic_load_explicit(&e->refresh_after_ms, memory_order_relaxed);
	return now_ms >= after &&
	       atomic_compare_exchange_strong_explicit(&e->refresh_after_ms, &after, until,
	                                               memory_order_relaxed,
	                                               memory_order_relaxed);
}

/* Start a background refresh now, or give the turn back if the io layer cannot. */
static bool refresh(struct tern_req *req, struct cache_entry *e, uint64_t until)
{
	if (req->io == NULL || !claim_refresh(e, req->now_ms, until))
		return false;
	if (tern_io_refresh(req) == 0)
		return true;
	atomic_store_explicit(&e->refresh_after_ms, 0, memory_order_relaxed);
	return false;
}

/* CoreDNS's prefetch: `amount` hits without a `duration` gap, and less than
 * `percentage` % of the TTL left. Counting stops at `amount`, so a popular entry is
 * written at most once a second (its last-hit time). */
static void maybe_prefetch(struct tern_req *req, const struct cache *c, struct cache_entry *e)
{
	uint64_t now = req->now_ms;
	uint64_t last = atomic_load_explicit(&e->last_hit_ms, memory_order_relaxed);
	uint32_t hits = atomic_load_explicit(&e->hits, memory_order_relaxed);
	if (last == 0 || now - last > c->pf_window_ms) {
		hits = 1;
		atomic_store_explicit(&e->hits, 1, memory_order_relaxed);
		atomic_store_explicit(&e->last_hit_ms, now, memory_order_relaxed);
	} else {
		if (hits < c->pf_amount)
			hits = atomic_fetch_add_explicit(&e->hits, 1, memory_order_relaxed) + 1;
		if (now - last >= 1000)
			atomic_store_explicit(&e->last_hit_ms, now, memory_order_relaxed);
	}
	if (hits < c->pf_amount)
		return;
	uint64_t left = e->expire_ms - now;
	if (left * 100u > (uint64_t)c->pf_percent * e->ttl_ms)
		return;
	if (refresh(req, e, e->expire_ms))
		count(c, req, CTR_PREFETCH);
}

/*
 * Names under both `disable success` and `disable denial` zones (kubeadm's cluster.local)
 * are never stored: skip them at once, before any hashing or scanning.
 */
static bool never_stored(const struct cache *c, const struct tern_req *req)
{
	return !zone_list_has(&c->zones, req->qname, req->qname_len) ||
	       zone_list_has(&c->never, req->qname, req->qname_len);
}

static enum tern_verdict cache_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct cache *c = pi->data;
	if (req->refresh || never_stored(c, req))
		return TERN_NEXT;   /* a background refresh must reach the upstream */
	count_query(c, req, CTR_REQUESTS);
	struct cache_key k;
	key_of(req, &k);
	struct cache_entry *e = cache_table_find(&c->table, &k);
	uint64_t now = req->now_ms;
	if (e != NULL && now < e->expire_ms) {
		serve(req, pi, c, e, false);
		count_query(c, req, e->cls == CACHE_CLASS_SUCCESS ? CTR_HITS_SUCCESS :
		                                                     CTR_HITS_DENIAL);
		allow_hot(req, c, e);
		if (c->prefetch && e->cls != CACHE_CLASS_SERVFAIL)
			maybe_prefetch(req, c, e);
		return TERN_DONE;
	}
	if (e != NULL && !c->stale_verify && e->cls != CACHE_CLASS_SERVFAIL &&
	    now < e->expire_ms + c->stale_ms) {
		/* RFC 8767 immediate: answer stale, refresh in the background. */
		req->hot.deny = true;
		serve(req, pi, c, e, true);
		count(c, req, e->cls == CACHE_CLASS_SUCCESS ? CTR_HITS_SUCCESS : CTR_HITS_DENIAL);
		count(c, req, CTR_STALE);
		refresh(req, e, now + c->recheck_ms);
		return TERN_DONE;
	}
	count_query(c, req, CTR_MISSES);
	return TERN_NEXT;
}

/* How far the answer may extend: a raw answer says its length, a built one its size. */
static size_t answer_extent(const struct tern_req *req)
{
	size_t len = req->raw_len > req->answer->size ? req->raw_len : req->answer->size;
	return len < req->answer->max_size ? len : req->answer->max_size;
}

/*
 * Whether @p old must stay instead of a new answer of class @p cls: a SERVFAIL never
 * replaces an answer that can still be served (fresh, or stale within serve_stale),
 * and with prefer_positive neither does a denial replace a positive answer.
 */
static bool keeps(const struct cache *c, const struct cache_entry *old, enum cache_class cls,
                  uint64_t now)
{
	if (old->cls == CACHE_CLASS_SERVFAIL || now >= old->expire_ms + c->stale_ms)
		return false;
	if (cls == CACHE_CLASS_SERVFAIL)
		return true;
	return cls == CACHE_CLASS_DENIAL && c->prefer_positive &&
	       old->cls == CACHE_CLASS_SUCCESS;
}

static void cache_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct cache *c = pi->data;
	if (req->answered && req->plugin_id == pi->plugin_id)
		return;   /* a raw answer this cache made itself */
	if (req->truncated || never_stored(c, req))
		return;
	struct cache_key k;
	key_of(req, &k);
	struct cache_scan s;
	if (cache_msg_scan(req->answer->wire, answer_extent(req), &k, &s) != 0)
		return;
	enum cache_class cls = cache_msg_class(&s);
	if (cls == CACHE_CLASS_NONE)
		return;
	uint64_t now = req->now_ms;
	enum cache_kind kind = cache_class_kind(cls);
	if (cls != CACHE_CLASS_SUCCESS) {
		struct cache_entry *old = cache_table_find(&c->table, &k);
		if (old != NULL && keeps(c, old, cls, now)) {
			if (c->stale_verify && !req->refresh && now >= old->expire_ms) {
				/* RFC 8767 verify: the upstream failed, answer stale. */
				req->hot.deny = true;
				serve(req, pi, c, old, true);
				tern_process_finish_raw(req);
				count(c, req, CTR_STALE);
			}
			return;
		}
	}
	if (zone_list_has(&c->no_store[kind], req->qname, req->qname_len))
		return;
	if (cls == CACHE_CLASS_SERVFAIL && c->lim[kind].servfail_ms == 0)
		return;
	struct cache_entry *e = cache_entry_new(req->answer->wire, &s, cls, &k, &c->lim[kind], now);
	if (e == NULL)
		return;
	/*
	 * The client of this miss gets the TTLs the entry will serve (capped, floored,
	 * SOA minimum for denials), as CoreDNS does, so the first and later answers agree.
	 * The answer and the entry share their layout up to OPT.
	 */
	uint8_t *w = req->answer->wire;
	for (uint16_t i = 0; i < e->nrr; i++) {
		if ((size_t)e->offs[i] + 4 <= answer_extent(req))
			knot_wire_write_u32(w + e->offs[i], e->ttls[i]);
	}
	if (e->ttl_ms == 0) {
		cache_entry_free(e);   /* TTL 0 with min_ttl 0: nothing to keep */
		return;
	}
	if (cache_table_insert((struct cache_table *)&c->table, e, now, c->stale_ms))
		count(c, req, kind == CACHE_SUCCESS ? CTR_EVICT_SUCCESS : CTR_EVICT_DENIAL);
	/*
	 * The next query is a hit on e, with TTLs counting down from now: a replay of this
	 * answer gives exactly that (e lives until this worker's next quiescent state, and
	 * the engine copies what it needs before). Replays count hits, not this miss.
	 */
	allow_hot(req, c, e);
	replace_counter(req, counter(c, req, CTR_MISSES),
	                counter(c, req, cls == CACHE_CLASS_SUCCESS ? CTR_HITS_SUCCESS :
	                                                              CTR_HITS_DENIAL));
}

/* ---- metrics --------------------------------------------------------------------- */

struct family {
	const char *name;
	const char *type;
	const char *help;
	bool by_kind;
	int ctr[CACHE_KINDS];   /* counter per kind (or [0] alone); -1: the entries gauge */
};

static const struct family families[] = {
	{ "coredns_cache_entries", "gauge", "The number of elements in the cache.", true,
	  { -1, -1 } },
	{ "coredns_cache_hits_total", "counter", "The count of cache hits.", true,
	  { CTR_HITS_SUCCESS, CTR_HITS_DENIAL } },
	{ "coredns_cache_misses_total", "counter", "The count of cache misses. Deprecated, "
	  "derive misses from cache hits/requests counters.", false, { CTR_MISSES, 0 } },
	{ "coredns_cache_requests_total", "counter",
	  "The count of cache requests.", false, { CTR_REQUESTS, 0 } },
	{ "coredns_cache_prefetch_total", "counter",
	  "The number of times the cache has prefetched a cached item.", false,
	  { CTR_PREFETCH, 0 } },
	{ "coredns_cache_served_stale_total", "counter",
	  "The number of requests served from stale cache entries.", false, { CTR_STALE, 0 } },
	{ "coredns_cache_evictions_total", "counter", "The count of cache evictions.", true,
	  { CTR_EVICT_SUCCESS, CTR_EVICT_DENIAL } },
};

static uint64_t sum(const struct cache *c, int ctr)
{
	uint64_t total = 0;
	for (size_t w = 0; w < CACHE_MAX_WORKERS; w++)
		total += atomic_load_explicit(&c->rows[w].v[ctr], memory_order_relaxed);
	return total;
}

static void put_sample(FILE *out, const struct family *f, const char *server,
                       const struct cache *c, int kind)
{
	fprintf(out, "%s{server=\"", f->name);
	tern_stats_put_label(out, server);
	fputs("\",", out);
	if (f->by_kind)
		fprintf(out, "type=\"%s\",", kind == CACHE_SUCCESS ? "success" : "denial");
	fputs("zones=\"", out);
	tern_stats_put_label(out, c->zones_label);
	int ctr = f->ctr[kind];
	uint64_t v = ctr < 0 ? cache_table_count(&c->table, (enum cache_kind)kind) : sum(c, ctr);
	fprintf(out, "\",view=\"\"} %llu\n", (unsigned long long)v);
}

/* The server label: "dns://" and the block's first listen address, as CoreDNS's. */
static void server_label(const struct tern_view *view, const struct tern_server *srv,
                         char *buf, size_t len)
{
	char addr[TERN_ADDR_STRLEN] = "";
	if (view->conf != NULL && srv->index < view->conf->servers_count) {
		const struct tern_server_conf *sc = &view->conf->servers[srv->index];
		if (sc->listen_count > 0 && sc->addrs != NULL)
			tern_addr_str(&sc->addrs[0], addr, sizeof(addr));
	}
	snprintf(buf, len, "dns://%s", addr);
}

static void cache_metrics(FILE *out, const struct tern_view *view, unsigned plugin_id)
{
	for (size_t f = 0; f < TERN_ARRAY_LEN(families); f++) {
		const struct family *fam = &families[f];
		bool head = false;
		for (size_t s = 0; s < view->nservers; s++) {
			const struct tern_server *srv = &view->servers[s];
			for (size_t p = 0; p < srv->chain_len; p++) {
				const struct tern_plugin_inst *pi = &srv->chain[p];
				if (pi->plugin_id != plugin_id || pi->data == NULL)
					continue;
				if (!head) {
					fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name,
					        fam->help, fam->name, fam->type);
					head = true;
				}
				char server[TERN_ADDR_STRLEN + 8];
				server_label(view, srv, server, sizeof(server));
				put_sample(out, fam, server, pi->data, CACHE_SUCCESS);
				if (fam->by_kind)
					put_sample(out, fam, server, pi->data, CACHE_DENIAL);
			}
		}
	}
}

TERN_PLUGIN_DEFINE(cache,
	.hot = TERN_HOT_SKIP,
	.init = cache_init,
	.deinit = cache_deinit,
	.metrics = cache_metrics,
	.query = cache_query,
	.answer = cache_answer);
