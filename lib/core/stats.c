/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-worker statistics rows and their Prometheus rendering (see stats.h).
 *
 * Each worker owns one row: a dense block of counters per (server, zone) slot
 * (requests by proto/family/type, DO requests, the duration and size histograms) and a
 * small open-addressing table for the sparse (slot, rcode, plugin) response counters.
 * The worker is the only writer of its row and bumps counters with a relaxed atomic
 * load + store (no lock prefix, no shared cache line: rows are 64-byte aligned
 * allocations). Rows are linked into a registry under a mutex only when they are
 * created or freed; a scrape takes the same mutex, sums every row with relaxed loads,
 * and writes the text exposition without holding it. A freed row is kept in a
 * "retired" list (one row per worker id, later rows of that id are folded into it) so
 * counters never go backwards. Slot labels are interned by the loader and never freed.
 */
#include "lib/core/stats.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core/attr.h"
#include "lib/engine/view.h"

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif
#ifndef TERN_REVISION
#define TERN_REVISION ""
#endif

#define NSLOTS        (TERN_STATS_MAX_SLOTS + 1) /* index 0 is slot -1: zone "dropped" */
#define DUR_BUCKETS   16                         /* 0.25 ms * 2^k, k = 0..15 */
#define DUR_BASE_NS   250000ull
#define SIZE_BUCKETS  14
#define RESP_CAP      4096                       /* (slot, rcode, plugin) keys per row */
#define RESP_PROBES   64
#define KEY_USED      (1u << 31)

/* CoreDNS's plugin/metrics/vars monitored types; everything else is "other". */
static const struct {
	uint16_t code;
	const char *name;
} qtypes[] = {
	{ KNOT_RRTYPE_A, "A" },         { KNOT_RRTYPE_AAAA, "AAAA" },
	{ KNOT_RRTYPE_ANY, "ANY" },     { KNOT_RRTYPE_CNAME, "CNAME" },
	{ KNOT_RRTYPE_DNSKEY, "DNSKEY" }, { KNOT_RRTYPE_DS, "DS" },
	{ 65, "HTTPS" },                { KNOT_RRTYPE_MX, "MX" },
	{ KNOT_RRTYPE_NS, "NS" },       { KNOT_RRTYPE_NSEC, "NSEC" },
	{ KNOT_RRTYPE_NSEC3, "NSEC3" }, { KNOT_RRTYPE_PTR, "PTR" },
	{ KNOT_RRTYPE_RRSIG, "RRSIG" }, { KNOT_RRTYPE_SOA, "SOA" },
	{ KNOT_RRTYPE_SRV, "SRV" },     { 64, "SVCB" },
	{ KNOT_RRTYPE_TXT, "TXT" },     { KNOT_RRTYPE_IXFR, "IXFR" },
	{ KNOT_RRTYPE_AXFR, "AXFR" },
};
#define NTYPES (TERN_ARRAY_LEN(qtypes) + 1) /* last index: "other" */

/*
 * miekg/dns RcodeToString, which CoreDNS uses for the rcode label. 16 is "BADSIG"
 * there (BADVERS shares the number), so dashboards filtering on it see the same
 * value; rcodes without a name are rendered as their decimal number, as CoreDNS does.
 */
static const char *const rcode_names[] = {
	[0] = "NOERROR",   [1] = "FORMERR",   [2] = "SERVFAIL", [3] = "NXDOMAIN",
	[4] = "NOTIMP",    [5] = "REFUSED",   [6] = "YXDOMAIN", [7] = "YXRRSET",
	[8] = "NXRRSET",   [9] = "NOTAUTH",   [10] = "NOTZONE", [11] = "DSOTYPENI",
	[16] = "BADSIG",   [17] = "BADKEY",   [18] = "BADTIME", [19] = "BADMODE",
	[20] = "BADNAME",  [21] = "BADALG",   [22] = "BADTRUNC", [23] = "BADCOOKIE",
};

static const unsigned size_bounds[SIZE_BUCKETS] = {
	0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000,
};

static const char *const proto_names[] = {
	[TERN_PROTO_UDP] = "udp", [TERN_PROTO_TCP] = "tcp",
};

struct hist_dur {
	uint64_t bucket[DUR_BUCKETS]; /* non-cumulative; cumulated at render */
	uint64_t count;
	uint64_t sum_ns;
};

struct hist_size {
	uint64_t bucket[SIZE_BUCKETS];
	uint64_t count;
	uint64_t sum;
};

struct slot_ctr {
	uint64_t requests[2][2][NTYPES]; /* [proto][family v4/v6][type] */
	uint64_t do_requests;
	struct hist_dur duration;
	struct hist_size req_size[2];    /* [proto] */
	struct hist_size resp_size[2];
};

struct resp_ent {
	uint32_t key; /* KEY_USED | slot index << 20 | rcode << 8 | plugin; 0 = empty */
	uint64_t count;
};

struct tern_stats_row {
	struct tern_stats_row *next; /* registry link, under reg_lock */
	unsigned worker_id;
	int64_t tcp_open;
	uint64_t queries;
	uint64_t events[TERN_STATS_EVENT_COUNT];
	uint64_t resp_overflow;      /* response keys that found no room in resp[] */
	struct slot_ctr slots[NSLOTS];
	struct resp_ent resp[RESP_CAP];
} __attribute__((aligned(64)));

/* The slot blocks are summed and folded as one flat array of counters. */
#define SLOT_WORDS (NSLOTS * (sizeof(struct slot_ctr) / sizeof(uint64_t)))
_Static_assert(sizeof(struct slot_ctr) % sizeof(uint64_t) == 0, "slot_ctr is all u64");
_Static_assert(TERN_STATS_MAX_SLOTS < 255, "slot index must fit the 8-bit key field");
_Static_assert(sizeof(struct tern_stats_row) % 64 == 0, "rows own whole cache lines");

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tern_stats_row *live_rows;    /* under reg_lock */
static struct tern_stats_row *retired_rows; /* under reg_lock; one per worker id */
static char *slot_server[TERN_STATS_MAX_SLOTS]; /* under reg_lock, immutable once set */
static char *slot_zone[TERN_STATS_MAX_SLOTS];
static int nslots;                              /* under reg_lock */
static uint64_t reload_failed;                  /* atomic */

/* Single-writer increment: a relaxed load and store, no locked instruction. */
static inline void bump(uint64_t *ctr, uint64_t n)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t ld(const uint64_t *ctr)
{
	return __atomic_load_n(ctr, __ATOMIC_RELAXED);
}

static inline unsigned slot_index(int slot)
{
	return (slot >= 0 && slot < TERN_STATS_MAX_SLOTS) ? (unsigned)slot + 1 : 0;
}

static unsigned type_index(uint16_t qtype)
{
	for (size_t i = 0; i < TERN_ARRAY_LEN(qtypes); i++) {
		if (qtypes[i].code == qtype)
			return (unsigned)i;
	}
	return NTYPES - 1;
}

static inline unsigned proto_index(enum tern_proto proto)
{
	return proto == TERN_PROTO_TCP ? 1 : 0;
}

static void hist_size_add(struct hist_size *h, size_t size)
{
	for (unsigned i = 0; i < SIZE_BUCKETS; i++) {
		if (size <= size_bounds[i]) {
			bump(&h->bucket[i], 1);
			break;
		}
	}
	bump(&h->count, 1);
	bump(&h->sum, size);
}

static inline uint32_t resp_hash(uint32_t key)
{
	return (key * 2654435761u) >> 20; /* top 12 bits: RESP_CAP == 4096 */
}
_Static_assert(RESP_CAP == 4096, "resp_hash takes 12 bits");

/*
 * Add @p n to @p key in @p tab. The owner is the only writer, so a new entry needs no
 * CAS: the count is stored first and the key published with release order, and a
 * reader that sees the key (acquire) also sees a count that belongs to it.
 */
static bool resp_add(struct resp_ent *tab, uint32_t key, uint64_t n)
{
	uint32_t h = resp_hash(key);
	for (unsigned p = 0; p < RESP_PROBES; p++) {
		struct resp_ent *e = &tab[(h + p) % RESP_CAP];
		uint32_t k = __atomic_load_n(&e->key, __ATOMIC_RELAXED);
		if (k == key) {
			bump(&e->count, n);
			return true;
		}
		if (k == 0) {
			__atomic_store_n(&e->count, n, __ATOMIC_RELAXED);
			__atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
			return true;
		}
	}
	return false;
}

struct tern_stats_row *tern_stats_row_new(unsigned worker_id)
{
	struct tern_stats_row *row = aligned_alloc(64, sizeof(*row));
	if (!row)
		return NULL;
	memset(row, 0, sizeof(*row));
	row->worker_id = worker_id;
	pthread_mutex_lock(&reg_lock);
	row->next = live_rows;
	live_rows = row;
	pthread_mutex_unlock(&reg_lock);
	return row;
}

/* Add every counter of @p src to @p dst (both quiescent: called under reg_lock). */
static void row_fold(struct tern_stats_row *dst, const struct tern_stats_row *src)
{
	const uint64_t *s = (const uint64_t *)src->slots;
	uint64_t *d = (uint64_t *)dst->slots;
	for (size_t i = 0; i < SLOT_WORDS; i++)
		bump(&d[i], ld(&s[i]));
	bump(&dst->queries, ld(&src->queries));
	for (unsigned i = 0; i < TERN_STATS_EVENT_COUNT; i++)
		bump(&dst->events[i], ld(&src->events[i]));
	bump(&dst->resp_overflow, ld(&src->resp_overflow));
	for (unsigned i = 0; i < RESP_CAP; i++) {
		uint32_t key = __atomic_load_n(&src->resp[i].key, __ATOMIC_ACQUIRE);
		if (key && !resp_add(dst->resp, key, ld(&src->resp[i].count)))
			bump(&dst->resp_overflow, ld(&src->resp[i].count));
	}
}

void tern_stats_row_free(struct tern_stats_row *row)
{
	if (!row)
		return;
	pthread_mutex_lock(&reg_lock);
	for (struct tern_stats_row **pp = &live_rows; *pp; pp = &(*pp)->next) {
		if (*pp == row) {
			*pp = row->next;
			break;
		}
	}
	struct tern_stats_row *ret = retired_rows;
	while (ret && ret->worker_id != row->worker_id)
		ret = ret->next;
	if (ret) {
		row_fold(ret, row);
		free(row);
	} else {
		/* The first retired row of this worker id becomes the accumulator. */
		__atomic_store_n(&row->tcp_open, 0, __ATOMIC_RELAXED); /* its sockets are gone */
		row->next = retired_rows;
		retired_rows = row;
	}
	pthread_mutex_unlock(&reg_lock);
}

int tern_stats_slot(const char *server, const char *zone)
{
	if (!server || !zone)
		return -1;
	if (server[0] == '\0' && strcmp(zone, "dropped") == 0)
		return -1; /* the same labels as the built-in slot: share it */
	int slot = -1;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < nslots; i++) {
		if (strcmp(slot_server[i], server) == 0 && strcmp(slot_zone[i], zone) == 0) {
			slot = i;
			goto out;
		}
	}
	if (nslots == TERN_STATS_MAX_SLOTS)
		goto out;
	char *s = strdup(server);
	char *z = strdup(zone);
	if (!s || !z) {
		free(s);
		free(z);
		goto out;
	}
	slot_server[nslots] = s;
	slot_zone[nslots] = z;
	slot = nslots++;
out:
	pthread_mutex_unlock(&reg_lock);
	return slot;
}

static void count_request(struct tern_stats_row *row, struct slot_ctr *sc, unsigned ti,
                          enum tern_proto proto, int family, bool dnssec_ok, size_t qsize)
{
	unsigned p = proto_index(proto);
	bump(&row->queries, 1);
	bump(&sc->requests[p][family == 2 ? 1 : 0][ti], 1);
	if (dnssec_ok)
		bump(&sc->do_requests, 1);
	hist_size_add(&sc->req_size[p], qsize);
}

static void count_response(struct slot_ctr *sc, enum tern_proto proto, size_t rsize,
                           uint64_t duration_ns)
{
	struct hist_dur *h = &sc->duration;
	for (unsigned k = 0; k < DUR_BUCKETS; k++) {
		if (duration_ns <= (DUR_BASE_NS << k)) {
			bump(&h->bucket[k], 1);
			break;
		}
	}
	bump(&h->count, 1);
	bump(&h->sum_ns, duration_ns);
	hist_size_add(&sc->resp_size[proto_index(proto)], rsize);
}

static uint32_t resp_key(unsigned si, uint16_t rcode, unsigned plugin_id)
{
	return KEY_USED | (uint32_t)si << 20 | (uint32_t)(rcode & 0xfff) << 8 |
	       (plugin_id > 0xff ? 0xffu : plugin_id);
}

void tern_stats_request(struct tern_stats_row *row, int slot, enum tern_proto proto,
                        int family, uint16_t qtype, bool dnssec_ok, size_t qsize)
{
	if (unlikely(!row))
		return;
	count_request(row, &row->slots[slot_index(slot)], type_index(qtype), proto, family,
	              dnssec_ok, qsize);
}

void tern_stats_response(struct tern_stats_row *row, int slot, enum tern_proto proto,
                         uint16_t rcode, unsigned plugin_id, size_t rsize,
                         uint64_t duration_ns)
{
	if (unlikely(!row))
		return;
	unsigned si = slot_index(slot);
	count_response(&row->slots[si], proto, rsize, duration_ns);
	if (unlikely(!resp_add(row->resp, resp_key(si, rcode, plugin_id), 1)))
		bump(&row->resp_overflow, 1);
}

void tern_stats_locate(struct tern_stats_row *row, int slot, uint16_t qtype, uint16_t rcode,
                       unsigned plugin_id, struct tern_stats_loc *loc)
{
	unsigned si = slot_index(slot);
	loc->slot_index = (uint16_t)si;
	loc->type_index = (uint16_t)type_index(qtype);
	loc->resp_index = -1;
	if (!row)
		return;
	uint32_t key = resp_key(si, rcode, plugin_id);
	if (!resp_add(row->resp, key, 0))
		return;
	uint32_t h = resp_hash(key);
	for (unsigned p = 0; p < RESP_PROBES; p++) {
		if (row->resp[(h + p) % RESP_CAP].key == key) {
			loc->resp_index = (int32_t)((h + p) % RESP_CAP);
			return;
		}
	}
}

void tern_stats_replayed(struct tern_stats_row *row, const struct tern_stats_loc *loc,
                         enum tern_proto proto, int family, bool dnssec_ok, size_t qsize,
                         size_t rsize, uint64_t duration_ns)
{
	struct slot_ctr *sc = &row->slots[loc->slot_index];
	count_request(row, sc, loc->type_index, proto, family, dnssec_ok, qsize);
	count_response(sc, proto, rsize, duration_ns);
	if (likely(loc->resp_index >= 0))
		bump(&row->resp[loc->resp_index].count, 1);
	else
		bump(&row->resp_overflow, 1);
	bump(&row->events[TERN_STATS_HOT_HIT], 1);
}

void tern_stats_event(struct tern_stats_row *row, enum tern_stats_event ev)
{
	if (unlikely(!row) || (unsigned)ev >= TERN_STATS_EVENT_COUNT)
		return;
	bump(&row->events[ev], 1);
}

void tern_stats_tcp_open(struct tern_stats_row *row, int delta)
{
	if (unlikely(!row))
		return;
	int64_t v = __atomic_load_n(&row->tcp_open, __ATOMIC_RELAXED);
	__atomic_store_n(&row->tcp_open, v + delta, __ATOMIC_RELAXED);
}

void tern_stats_reload_failed(void)
{
	__atomic_add_fetch(&reload_failed, 1, __ATOMIC_RELAXED);
}

/* ---- rendering (any thread, control plane) ---- */

/* What a scrape collects under reg_lock; written out after unlocking. */
struct snapshot {
	struct slot_ctr slots[NSLOTS];
	struct resp_ent *resp; /* sorted by key, merged */
	size_t nresp;
	uint64_t resp_overflow;
	struct worker_sum {
		unsigned id;
		bool live;
		int64_t tcp_open;
		uint64_t queries;
		uint64_t events[TERN_STATS_EVENT_COUNT];
	} *workers;            /* sorted by id */
	size_t nworkers;
	int nslots;
};

static int cmp_resp(const void *a, const void *b)
{
	uint32_t x = ((const struct resp_ent *)a)->key, y = ((const struct resp_ent *)b)->key;
	return (x > y) - (x < y);
}

static int cmp_worker(const void *a, const void *b)
{
	unsigned x = ((const struct worker_sum *)a)->id, y = ((const struct worker_sum *)b)->id;
	return (x > y) - (x < y);
}

static size_t list_len(const struct tern_stats_row *r)
{
	size_t n = 0;
	for (; r; r = r->next)
		n++;
	return n;
}

static struct worker_sum *worker_find(struct snapshot *s, unsigned id)
{
	for (size_t i = 0; i < s->nworkers; i++) {
		if (s->workers[i].id == id)
			return &s->workers[i];
	}
	struct worker_sum *w = &s->workers[s->nworkers++];
	w->id = id;
	return w;
}

static void snapshot_row(struct snapshot *s, const struct tern_stats_row *row, bool live)
{
	const uint64_t *src = (const uint64_t *)row->slots;
	uint64_t *dst = (uint64_t *)s->slots;
	for (size_t i = 0; i < SLOT_WORDS; i++)
		dst[i] += ld(&src[i]);
	for (unsigned i = 0; i < RESP_CAP; i++) {
		uint32_t key = __atomic_load_n(&row->resp[i].key, __ATOMIC_ACQUIRE);
		if (key) {
			s->resp[s->nresp].key = key;
			s->resp[s->nresp].count = ld(&row->resp[i].count);
			s->nresp++;
		}
	}
	s->resp_overflow += ld(&row->resp_overflow);

	struct worker_sum *w = worker_find(s, row->worker_id);
	w->live |= live;
	if (live)
		w->tcp_open += __atomic_load_n(&row->tcp_open, __ATOMIC_RELAXED);
	w->queries += ld(&row->queries);
	for (unsigned i = 0; i < TERN_STATS_EVENT_COUNT; i++)
		w->events[i] += ld(&row->events[i]);
}

static struct snapshot *snapshot_take(void)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	size_t nrows = list_len(live_rows) + list_len(retired_rows);
	s->resp = malloc((nrows ? nrows : 1) * RESP_CAP * sizeof(*s->resp));
	s->workers = calloc(nrows ? nrows : 1, sizeof(*s->workers));
	if (!s->resp || !s->workers) {
		pthread_mutex_unlock(&reg_lock);
		free(s->resp);
		free(s->workers);
		free(s);
		return NULL;
	}
	for (const struct tern_stats_row *r = live_rows; r; r = r->next)
		snapshot_row(s, r, true);
	for (const struct tern_stats_row *r = retired_rows; r; r = r->next)
		snapshot_row(s, r, false);
	s->nslots = nslots;
	pthread_mutex_unlock(&reg_lock);

	/* Merge equal (slot, rcode, plugin) keys of different rows. */
	qsort(s->resp, s->nresp, sizeof(*s->resp), cmp_resp);
	size_t n = 0;
	for (size_t i = 0; i < s->nresp; i++) {
		if (n > 0 && s->resp[n - 1].key == s->resp[i].key)
			s->resp[n - 1].count += s->resp[i].count;
		else
			s->resp[n++] = s->resp[i];
	}
	s->nresp = n;
	qsort(s->workers, s->nworkers, sizeof(*s->workers), cmp_worker);
	return s;
}

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	free(s->resp);
	free(s->workers);
	free(s);
}

void tern_stats_put_label(FILE *out, const char *v)
{
	for (; *v; v++) {
		switch (*v) {
		case '\\': fputs("\\\\", out); break;
		case '"':  fputs("\\\"", out); break;
		case '\n': fputs("\\n", out); break;
		default:   fputc(*v, out);
		}
	}
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The server, zone and view labels of slot index @p si, without braces. */
static void put_slot_labels(FILE *out, unsigned si)
{
	/* Slot strings are immutable once interned, and si < the snapshot's nslots + 1. */
	fputs("server=\"", out);
	tern_stats_put_label(out, si ? slot_server[si - 1] : "");
	fputs("\",zone=\"", out);
	tern_stats_put_label(out, si ? slot_zone[si - 1] : "dropped");
	fputs("\",view=\"\"", out);
}

static void render_requests(FILE *out, const struct snapshot *s)
{
	bool head = false;
	for (unsigned si = 0; si <= (unsigned)s->nslots; si++) {
		/* requests[proto][family][type] walked as one flat array. */
		const uint64_t *ctr = &s->slots[si].requests[0][0][0];
		for (unsigned i = 0; i < 2 * 2 * NTYPES; i++) {
			unsigned p = i / (2 * NTYPES), f = i / NTYPES % 2, t = i % NTYPES;
			if (!ctr[i])
				continue;
			if (!head) {
				family(out, "coredns_dns_requests_total", "counter",
				       "Counter of DNS requests made per zone, protocol "
				       "and family.");
				head = true;
			}
			fputs("coredns_dns_requests_total{", out);
			put_slot_labels(out, si);
			fprintf(out, ",proto=\"%s\",family=\"%u\",type=\"%s\"} %" PRIu64 "\n",
			        proto_names[p], f + 1, t < NTYPES - 1 ? qtypes[t].name : "other",
			        ctr[i]);
		}
	}
}

static void render_do(FILE *out, const struct snapshot *s)
{
	bool head = false;
	for (unsigned si = 0; si <= (unsigned)s->nslots; si++) {
		uint64_t v = s->slots[si].do_requests;
		if (!v)
			continue;
		if (!head) {
			family(out, "coredns_dns_do_requests_total", "counter",
			       "Counter of DNS requests with DO bit set per zone.");
			head = true;
		}
		fputs("coredns_dns_do_requests_total{", out);
		put_slot_labels(out, si);
		fprintf(out, "} %" PRIu64 "\n", v);
	}
}

static void render_responses(FILE *out, const struct snapshot *s)
{
	if (s->nresp == 0)
		return;
	family(out, "coredns_dns_responses_total", "counter",
	       "Counter of response status codes.");
	for (size_t i = 0; i < s->nresp; i++) {
		uint32_t key = s->resp[i].key;
		unsigned si = (key >> 20) & 0xff, rcode = (key >> 8) & 0xfff, pid = key & 0xff;
		fputs("coredns_dns_responses_total{", out);
		put_slot_labels(out, si);
		if (rcode < TERN_ARRAY_LEN(rcode_names) && rcode_names[rcode])
			fprintf(out, ",rcode=\"%s\"", rcode_names[rcode]);
		else
			fprintf(out, ",rcode=\"%u\"", rcode);
		if (pid == TERN_STATS_NO_PLUGIN) {
			fputs(",plugin=\"\"", out);
		} else if (pid < tern_plugins_count) {
			fputs(",plugin=\"", out);
			tern_stats_put_label(out, tern_plugins[pid]->name);
			fputc('"', out);
		} else {
			fprintf(out, ",plugin=\"%u\"", pid); /* unknown id: unique, never merged */
		}
		fprintf(out, "} %" PRIu64 "\n", s->resp[i].count);
	}
}

static void render_duration(FILE *out, const struct snapshot *s)
{
	static const char name[] = "coredns_dns_request_duration_seconds";
	bool head = false;
	for (unsigned si = 0; si <= (unsigned)s->nslots; si++) {
		const struct hist_dur *h = &s->slots[si].duration;
		if (!h->count)
			continue;
		if (!head) {
			family(out, name, "histogram",
			       "Histogram of the time (in seconds) each request took per zone.");
			head = true;
		}
		uint64_t cum = 0;
		for (unsigned k = 0; k < DUR_BUCKETS; k++) {
			cum += h->bucket[k];
			fprintf(out, "%s_bucket{", name);
			put_slot_labels(out, si);
			fprintf(out, ",le=\"%g\"} %" PRIu64 "\n",
			        (double)(DUR_BASE_NS << k) / 1e9, cum);
		}
		fprintf(out, "%s_bucket{", name);
		put_slot_labels(out, si);
		fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n%s_sum{", h->count, name);
		put_slot_labels(out, si);
		fprintf(out, "} %.9f\n%s_count{", (double)h->sum_ns / 1e9, name);
		put_slot_labels(out, si);
		fprintf(out, "} %" PRIu64 "\n", h->count);
	}
}

static void render_size(FILE *out, const struct snapshot *s, bool response)
{
	const char *name = response ? "coredns_dns_response_size_bytes"
	                            : "coredns_dns_request_size_bytes";
	bool head = false;
	for (unsigned si = 0; si <= (unsigned)s->nslots; si++) {
		for (unsigned p = 0; p < 2; p++) {
			const struct hist_size *h = response ? &s->slots[si].resp_size[p]
			                                     : &s->slots[si].req_size[p];
			if (!h->count)
				continue;
			if (!head) {
				family(out, name, "histogram", response
				       ? "Size of the returned response in bytes."
				       : "Size of the request in bytes, per zone and protocol.");
				head = true;
			}
			uint64_t cum = 0;
			for (unsigned k = 0; k < SIZE_BUCKETS; k++) {
				cum += h->bucket[k];
				fprintf(out, "%s_bucket{", name);
				put_slot_labels(out, si);
				fprintf(out, ",proto=\"%s\",le=\"%u\"} %" PRIu64 "\n",
				        proto_names[p], size_bounds[k], cum);
			}
			fprintf(out, "%s_bucket{", name);
			put_slot_labels(out, si);
			fprintf(out, ",proto=\"%s\",le=\"+Inf\"} %" PRIu64 "\n%s_sum{",
			        proto_names[p], h->count, name);
			put_slot_labels(out, si);
			fprintf(out, ",proto=\"%s\"} %" PRIu64 "\n%s_count{",
			        proto_names[p], h->sum, name);
			put_slot_labels(out, si);
			fprintf(out, ",proto=\"%s\"} %" PRIu64 "\n", proto_names[p], h->count);
		}
	}
}

/* A per-worker counter family: one sample per worker with a non-zero value. */
static void render_worker_ctr(FILE *out, const struct snapshot *s, const char *name,
                              const char *help, const char *label, int ev)
{
	bool head = false;
	for (size_t i = 0; i < s->nworkers; i++) {
		const struct worker_sum *w = &s->workers[i];
		uint64_t v = ev < 0 ? w->queries : w->events[ev];
		if (!v)
			continue;
		if (!head) {
			family(out, name, "counter", help);
			head = true;
		}
		fprintf(out, "%s{worker=\"%u\"%s} %" PRIu64 "\n", name, w->id, label, v);
	}
}

struct worker_result {
	enum tern_stats_event ev;
	const char *result;
};

/* One counter family with a "result" label per event, one sample per worker and result. */
static void render_worker_results(FILE *out, const struct snapshot *s, const char *name,
                                  const char *help, const struct worker_result *r, size_t n)
{
	bool head = false;
	for (size_t i = 0; i < s->nworkers; i++) {
		for (size_t t = 0; t < n; t++) {
			uint64_t v = s->workers[i].events[r[t].ev];
			if (!v)
				continue;
			if (!head) {
				family(out, name, "counter", help);
				head = true;
			}
			fprintf(out, "%s{worker=\"%u\",result=\"%s\"} %" PRIu64 "\n", name,
			        s->workers[i].id, r[t].result, v);
		}
	}
}

static void render_workers(FILE *out, const struct snapshot *s)
{
	render_worker_ctr(out, s, "tern_worker_queries_total",
	                  "Queries received, per worker thread.", "", -1);
	render_worker_ctr(out, s, "tern_dropped_total",
	                  "Queries dropped without an answer, per worker and reason.",
	                  ",reason=\"invalid\"", TERN_STATS_DROPPED);
	render_worker_ctr(out, s, "tern_formerr_total",
	                  "Malformed queries answered FORMERR, per worker.", "",
	                  TERN_STATS_FORMERR);
	render_worker_ctr(out, s, "tern_udp_polled_total",
	                  "Times a busy UDP socket left epoll to be read every loop turn, per "
	                  "worker.", "", TERN_STATS_UDP_POLLED);
	render_worker_ctr(out, s, "tern_truncated_total",
	                  "UDP answers sent truncated (TC), per worker.", "",
	                  TERN_STATS_TRUNCATED);
	static const struct worker_result tcp[] = {
		{ TERN_STATS_TCP_ACCEPTED, "accepted" },
		{ TERN_STATS_TCP_REFUSED, "refused" },
		{ TERN_STATS_TCP_TIMEOUT, "timeout" },
	};
	render_worker_results(out, s, "tern_tcp_connections_total",
	                      "TCP connections accepted, refused over a limit, or closed on "
	                      "timeout.", tcp, TERN_ARRAY_LEN(tcp));
	static const struct worker_result hot[] = {
		{ TERN_STATS_HOT_HIT, "hit" },
		{ TERN_STATS_HOT_STORE, "stored" },
	};
	render_worker_results(out, s, "tern_hot_answers_total",
	                      "Answers replayed from the worker's hot answers without running "
	                      "the plugin chain (hit), and answers stored there.",
	                      hot, TERN_ARRAY_LEN(hot));

	bool head = false;
	for (size_t i = 0; i < s->nworkers; i++) {
		if (!s->workers[i].live)
			continue;
		if (!head) {
			family(out, "tern_tcp_connections", "gauge",
			       "Open TCP connections, per worker.");
			head = true;
		}
		fprintf(out, "tern_tcp_connections{worker=\"%u\"} %" PRId64 "\n",
		        s->workers[i].id, s->workers[i].tcp_open);
	}

	if (s->resp_overflow) {
		family(out, "tern_stats_overflow_total", "counter",
		       "Responses counted without labels: the response table was full.");
		fprintf(out, "tern_stats_overflow_total %" PRIu64 "\n", s->resp_overflow);
	}
}

void tern_stats_render(FILE *out)
{
	family(out, "coredns_build_info", "gauge",
	       "A metric with a constant '1' value labeled by version, revision, and goversion "
	       "from which CoreDNS was built.");
	fputs("coredns_build_info{version=\"", out);
	tern_stats_put_label(out, TERN_VERSION);
	fputs("\",revision=\"", out);
	tern_stats_put_label(out, TERN_REVISION);
	fputs("\",goversion=\"none\"} 1\n", out);
	family(out, "coredns_panics_total", "counter",
	       "A metrics that counts the number of panics.");
	fputs("coredns_panics_total 0\n", out); /* C has no recoverable panics */
	family(out, "coredns_reload_failed_total", "counter",
	       "Counter of the number of failed reload attempts.");
	fprintf(out, "coredns_reload_failed_total %" PRIu64 "\n",
	        __atomic_load_n(&reload_failed, __ATOMIC_RELAXED));

	struct snapshot *s = snapshot_take();
	if (!s)
		return; /* out of memory: the process-wide families above still render */
	render_requests(out, s);
	render_do(out, s);
	render_responses(out, s);
	render_duration(out, s);
	render_size(out, s, false);
	render_size(out, s, true);
	render_workers(out, s);
	snapshot_free(s);
}
