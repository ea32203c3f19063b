/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Immutable cluster snapshots: their layout, their lookups (the data plane: no
 * allocation, no lock, no syscall) and their assembly from the previous snapshot plus
 * a delta of per-service records (used by build.c only).
 *
 * A snapshot is a table of per-service record pointers (open addressing, linear
 * probing, keyed by (ns, name)), a sorted namespace set, a PTR index split into
 * PTR_SHARDS sorted shards by address hash, and an optional pod index. Records, the
 * namespace set, the PTR shards and the pod index are all refcounted blocks: a new
 * snapshot copies the previous table's pointers, replaces the changed records, and
 * rebuilds only the PTR shards that hold an address of a changed record; everything
 * else is shared. Refcounts are plain integers: every snapshot of one builder is built
 * and freed on one thread (the watcher; the loader once the watcher is joined).
 */
#include "lib/cluster/snapshot.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "lib/cluster/build.h"
#include "lib/cluster/internal.h"

/* ---- layout ---------------------------------------------------------------------- */

#define PTR_SHARDS 1024u
#define SVC_SHARDS 256u         /* picked by the top 8 bits of the key hash */

/** The block that holds one record; the public part is svc, the payload follows. */
struct rec {
	uint32_t refs;
	uint32_t gone;          /**< scratch while assembling (builder thread) */
	uint64_t hash;          /**< of (ns, name) */
	uint32_t nslen, namelen;
	unsigned nips;          /**< addresses in the PTR index: ClusterIPs + eps */
	struct tern_cluster_svc svc;
};

struct ns_name {
	const char *name;
	size_t len;
};

struct ns_set {
	unsigned refs;
	size_t n;
	struct ns_name v[];     /* sorted by (len, bytes); strings follow */
};

struct ptr_shard {
	unsigned refs;
	uint32_t n;
	struct tern_cluster_ptr *vals;   /* n, sorted as keys */
	struct tern_ip *keys;            /* n, ascending; ClusterIPs first per address */
};

struct pod_ent {
	const char *ns;         /* NULL: empty slot */
	uint32_t nslen;
	uint32_t hash;
	struct tern_ip ip;
};

struct pod_index {
	unsigned refs;
	size_t count;           /* pods */
	size_t mask;
	struct pod_ent slots[]; /* strings follow */
};

/** One shard of the service table; it holds a reference on each of its records. */
struct svc_shard {
	unsigned refs;
	uint32_t n;                              /* records */
	size_t neps;                             /* their endpoints */
	size_t mask;
	const struct tern_cluster_svc *slots[];  /* mask + 1, at most half full */
};

struct tern_cluster {
	unsigned refs;
	bool synced;
	uint32_t serial;
	uint64_t published_ms;
	struct tern_cluster_counts counts;
	struct ns_set *ns;
	struct pod_index *pods;                  /* NULL when pods are not watched */
	struct svc_shard *svc[SVC_SHARDS];       /* NULL: empty shard */
	struct ptr_shard *ptr[PTR_SHARDS];       /* NULL: empty shard */
};

static inline struct rec *rec_of(const struct tern_cluster_svc *s)
{
	return (struct rec *)((char *)s - offsetof(struct rec, svc));
}

/* ---- hashing ----------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint64_t key_hash(const char *ns, size_t nslen, const char *name, size_t namelen)
{
	uint64_t h = fnv(0xcbf29ce484222325ULL, ns, nslen);
	h = fnv(h, "/", 1);
	return mix64(fnv(h, name, namelen));
}

static inline size_t ip_len(const struct tern_ip *ip)
{
	return ip->family == AF_INET6 ? 16 : 4;
}

/** A copy of @p ip with the unused bytes zeroed, so that keys compare with memcmp. */
static inline struct tern_ip ip_norm(const struct tern_ip *ip)
{
	struct tern_ip out = { .family = ip->family };
	memcpy(out.addr, ip->addr, ip_len(ip));
	return out;
}

static inline unsigned ip_shard(const struct tern_ip *normed)
{
	return (unsigned)(mix64(fnv(0xcbf29ce484222325ULL, normed, sizeof(*normed))) &
	                  (PTR_SHARDS - 1));
}

static inline int ip_cmp(const struct tern_ip *a, const struct tern_ip *b)
{
	return memcmp(a, b, sizeof(*a));
}

/* ---- read side --------------------------------------------------------------------- */

const struct tern_cluster_svc *tern_cluster_find_service(const struct tern_cluster *c,
	const char *ns, size_t nslen, const char *name, size_t namelen)
{
	if (!c)
		return NULL;
	uint64_t h = key_hash(ns, nslen, name, namelen);
	const struct svc_shard *sh = c->svc[h >> 56];
	if (!sh)
		return NULL;
	for (size_t i = h & sh->mask;; i = (i + 1) & sh->mask) {
		const struct tern_cluster_svc *s = sh->slots[i];
		if (!s)
			return NULL;
		const struct rec *r = rec_of(s);
		if (r->hash == h && r->nslen == nslen && r->namelen == namelen &&
		    memcmp(s->ns, ns, nslen) == 0 && memcmp(s->name, name, namelen) == 0)
			return s;
	}
}

static int ns_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

bool tern_cluster_has_namespace(const struct tern_cluster *c, const char *ns, size_t nslen)
{
	if (!c || !c->ns)
		return false;
	size_t lo = 0, hi = c->ns->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = ns_cmp(c->ns->v[mid].name, c->ns->v[mid].len, ns, nslen);
		if (r == 0)
			return true;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

size_t tern_cluster_find_ptr(const struct tern_cluster *c, const struct tern_ip *ip,
                             const struct tern_cluster_ptr **out)
{
	*out = NULL;
	if (!c || (ip->family != AF_INET && ip->family != AF_INET6))
		return 0;
	struct tern_ip key = ip_norm(ip);
	const struct ptr_shard *sh = c->ptr[ip_shard(&key)];
	if (!sh)
		return 0;
	size_t lo = 0, hi = sh->n;
	while (lo < hi) {            /* lower bound */
		size_t mid = lo + (hi - lo) / 2;
		if (ip_cmp(&sh->keys[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < sh->n && ip_cmp(&sh->keys[end], &key) == 0)
		end++;
	if (end == lo)
		return 0;
	*out = &sh->vals[lo];
	return end - lo;
}

static inline uint32_t pod_hash(const char *ns, size_t nslen, const struct tern_ip *normed)
{
	uint64_t h = fnv(0xcbf29ce484222325ULL, ns, nslen);
	return (uint32_t)mix64(fnv(h, normed, sizeof(*normed)));
}

bool tern_cluster_has_pod(const struct tern_cluster *c, const char *ns, size_t nslen,
                          const struct tern_ip *ip)
{
	if (!c || !c->pods || (ip->family != AF_INET && ip->family != AF_INET6))
		return false;
	struct tern_ip key = ip_norm(ip);
	uint32_t h = pod_hash(ns, nslen, &key);
	const struct pod_index *pi = c->pods;
	for (size_t i = h & pi->mask;; i = (i + 1) & pi->mask) {
		const struct pod_ent *e = &pi->slots[i];
		if (!e->ns)
			return false;
		if (e->hash == h && e->nslen == nslen && ip_cmp(&e->ip, &key) == 0 &&
		    memcmp(e->ns, ns, nslen) == 0)
			return true;
	}
}

bool tern_cluster_synced(const struct tern_cluster *c)
{
	return c && c->synced;
}

uint32_t tern_cluster_serial(const struct tern_cluster *c)
{
	return c ? c->serial : 0;
}

uint64_t tern_cluster_published_ms(const struct tern_cluster *c)
{
	return c ? c->published_ms : 0;
}

void tern_cluster_counts(const struct tern_cluster *c, struct tern_cluster_counts *out)
{
	if (!c) {
		*out = (struct tern_cluster_counts){ 0 };
		return;
	}
	*out = c->counts;
}

/* ---- records ------------------------------------------------------------------------ */

struct tern_cluster_svc *tern_cluster_svc_alloc(size_t payload, void **area)
{
	struct rec *r = calloc(1, sizeof(*r) + payload);
	if (!r)
		return NULL;
	r->refs = 1;
	*area = r + 1;
	return &r->svc;
}

void tern_cluster_svc_seal(struct tern_cluster_svc *svc)
{
	struct rec *r = rec_of(svc);
	r->nslen = (uint32_t)strlen(svc->ns);
	r->namelen = (uint32_t)strlen(svc->name);
	r->hash = key_hash(svc->ns, r->nslen, svc->name, r->namelen);
	r->nips = svc->ncluster_ips + svc->neps;
}

void tern_cluster_svc_release(const struct tern_cluster_svc *svc)
{
	if (!svc)
		return;
	struct rec *r = rec_of(svc);
	if (--r->refs == 0)
		free(r);
}

static void svc_hold(const struct tern_cluster_svc *svc)
{
	rec_of(svc)->refs++;
}

/* ---- shared parts ---------------------------------------------------------------- */

static void ns_set_put(struct ns_set *s)
{
	if (s && --s->refs == 0)
		free(s);
}

static int ns_name_cmp(const void *a, const void *b)
{
	const struct ns_name *x = a, *y = b;
	return ns_cmp(x->name, x->len, y->name, y->len);
}

static struct ns_set *ns_set_new(const char **names, size_t n)
{
	size_t strbytes = 0;
	for (size_t i = 0; i < n; i++)
		strbytes += strlen(names[i]) + 1;
	struct ns_set *s = malloc(sizeof(*s) + n * sizeof(s->v[0]) + strbytes);
	if (!s)
		return NULL;
	s->refs = 1;
	s->n = n;
	char *pool = (char *)&s->v[n];
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		memcpy(pool, names[i], len + 1);
		s->v[i] = (struct ns_name){ .name = pool, .len = len };
		pool += len + 1;
	}
	qsort(s->v, n, sizeof(s->v[0]), ns_name_cmp);
	return s;
}

static void pod_index_put(struct pod_index *p)
{
	if (p && --p->refs == 0)
		free(p);
}

static struct pod_index *pod_index_new(const struct tern_cluster_pod_key *keys, size_t n,
                                       size_t pod_count)
{
	size_t cap = 8;
	while (cap < 2 * n)
		cap <<= 1;
	size_t strbytes = 0;
	for (size_t i = 0; i < n; i++)
		strbytes += strlen(keys[i].ns) + 1;
	struct pod_index *p = calloc(1, sizeof(*p) + cap * sizeof(p->slots[0]) + strbytes);
	if (!p)
		return NULL;
	p->refs = 1;
	p->count = pod_count;
	p->mask = cap - 1;
	char *pool = (char *)&p->slots[cap];
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(keys[i].ns);
		struct tern_ip ip = ip_norm(&keys[i].ip);
		uint32_t h = pod_hash(keys[i].ns, len, &ip);
		size_t j = h & p->mask;
		bool dup = false;
		for (; p->slots[j].ns; j = (j + 1) & p->mask) {
			struct pod_ent *e = &p->slots[j];
			if (e->hash == h && e->nslen == len && ip_cmp(&e->ip, &ip) == 0 &&
			    memcmp(e->ns, keys[i].ns, len) == 0) {
				dup = true;
				break;
			}
		}
		if (dup)
			continue;
		memcpy(pool, keys[i].ns, len + 1);
		p->slots[j] = (struct pod_ent){ .ns = pool, .nslen = (uint32_t)len, .hash = h,
		                                .ip = ip };
		pool += len + 1;
	}
	return p;
}

static void shard_put(struct ptr_shard *s)
{
	if (s && --s->refs == 0)
		free(s);
}

static void svc_shard_put(struct svc_shard *s)
{
	if (!s || --s->refs > 0)
		return;
	for (size_t i = 0; i <= s->mask; i++)
		if (s->slots[i])
			tern_cluster_svc_release(s->slots[i]);
	free(s);
}

/* ---- free ---------------------------------------------------------------------- */

void tern_cluster_hold(struct tern_cluster *c)
{
	c->refs++;
}

void tern_cluster_free(struct tern_cluster *c)
{
	if (!c || --c->refs > 0)
		return;
	for (unsigned i = 0; i < SVC_SHARDS; i++)
		svc_shard_put(c->svc[i]);
	for (unsigned i = 0; i < PTR_SHARDS; i++)
		shard_put(c->ptr[i]);
	ns_set_put(c->ns);
	pod_index_put(c->pods);
	free(c);
}

/* ---- assembly: the service table ----------------------------------------------- */

static void table_insert(const struct tern_cluster_svc **slots, size_t mask,
                         const struct tern_cluster_svc *s)
{
	size_t i = rec_of(s)->hash & mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = s;
}

/** Remove @p s (by identity) with backward-shift deletion; no tombstones. */
static void table_remove(const struct tern_cluster_svc **slots, size_t mask,
                         const struct tern_cluster_svc *s)
{
	size_t i = rec_of(s)->hash & mask;
	for (;; i = (i + 1) & mask) {
		if (!slots[i])
			return;          /* not there: nothing to do */
		if (slots[i] == s)
			break;
	}
	slots[i] = NULL;
	for (size_t j = (i + 1) & mask; slots[j]; j = (j + 1) & mask) {
		size_t home = rec_of(slots[j])->hash & mask;
		/* slots[j] may move to the hole at i unless its home lies in (i, j] */
		bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		slots[i] = slots[j];
		slots[j] = NULL;
		i = j;
	}
}

static inline unsigned svc_shard_of(const struct tern_cluster_svc *s)
{
	return (unsigned)(rec_of(s)->hash >> 56);
}

static struct svc_shard *svc_shard_alloc(size_t n)
{
	size_t cap = 8;
	while (cap < 2 * n)
		cap <<= 1;
	struct svc_shard *sh = calloc(1, sizeof(*sh) + cap * sizeof(sh->slots[0]));
	if (!sh)
		return NULL;
	sh->refs = 1;
	sh->mask = cap - 1;
	return sh;
}

/*
 * The service shards: those no removed or added record falls in are shared with
 * @p d->prev; the others are copied (or rehashed when their size class changed) and
 * edited. Only the allocation can fail, and it comes first.
 */
static int build_services(struct tern_cluster *c, const struct tern_cluster_delta *d)
{
	struct svc_shard *const *old = d->prev ? d->prev->svc : c->svc;   /* c->svc: all NULL */
	int32_t delta[SVC_SHARDS] = { 0 };
	uint8_t hit[SVC_SHARDS] = { 0 };
	for (size_t i = 0; i < d->nremoved; i++) {
		unsigned sh = svc_shard_of(d->removed[i]);
		hit[sh] = 1;
		delta[sh]--;
	}
	for (size_t i = 0; i < d->nadded; i++) {
		unsigned sh = svc_shard_of(d->added[i]);
		hit[sh] = 1;
		delta[sh]++;
	}
	struct svc_shard *fresh[SVC_SHARDS] = { NULL };
	for (unsigned sh = 0; sh < SVC_SHARDS; sh++) {
		if (!hit[sh])
			continue;
		int64_t n = (old[sh] ? (int64_t)old[sh]->n : 0) + delta[sh];
		size_t want = n > 0 ? (size_t)n : 0;
		/* Room for the old records too: removals happen after the copy. */
		size_t room = want > (old[sh] ? old[sh]->n : 0) ? want : (old[sh] ? old[sh]->n : 0);
		bool copy = old[sh] && 2 * room <= old[sh]->mask + 1 &&
		            old[sh]->mask + 1 <= 8 * (2 * want + 8);
		fresh[sh] = copy ? svc_shard_alloc((old[sh]->mask + 1) / 2) : svc_shard_alloc(room);
		if (!fresh[sh]) {
			for (unsigned k = 0; k < sh; k++)
				free(fresh[k]);
			return -1;
		}
	}
	for (unsigned sh = 0; sh < SVC_SHARDS; sh++) {
		struct svc_shard *o = old[sh], *f = fresh[sh];
		if (!f) {
			c->svc[sh] = o;
			if (o)
				o->refs++;
			continue;
		}
		if (o && f->mask == o->mask)
			memcpy(f->slots, o->slots, (o->mask + 1) * sizeof(f->slots[0]));
		else if (o)
			for (size_t i = 0; i <= o->mask; i++)
				if (o->slots[i])
					table_insert(f->slots, f->mask, o->slots[i]);
		c->svc[sh] = f;
	}
	for (size_t i = 0; i < d->nremoved; i++) {
		struct svc_shard *f = c->svc[svc_shard_of(d->removed[i])];
		table_remove(f->slots, f->mask, d->removed[i]);
	}
	for (size_t i = 0; i < d->nadded; i++) {
		struct svc_shard *f = c->svc[svc_shard_of(d->added[i])];
		table_insert(f->slots, f->mask, d->added[i]);
	}
	/* The edited shards hold their records; count everything. */
	for (unsigned sh = 0; sh < SVC_SHARDS; sh++) {
		struct svc_shard *f = c->svc[sh];
		if (fresh[sh]) {
			for (size_t i = 0; i <= f->mask; i++) {
				if (!f->slots[i])
					continue;
				svc_hold(f->slots[i]);
				f->n++;
				f->neps += f->slots[i]->neps;
			}
			if (f->n == 0) {
				free(f);
				c->svc[sh] = f = NULL;
			}
		}
		if (f) {
			c->counts.services += f->n;
			c->counts.endpoints += f->neps;
		}
	}
	return 0;
}

/* ---- assembly: the PTR shards ------------------------------------------------------ */

struct ptr_tmp {
	struct tern_ip ip;
	struct tern_cluster_ptr p;
};

static int ptr_tmp_cmp(const void *a, const void *b)
{
	const struct ptr_tmp *x = a, *y = b;
	int r = ip_cmp(&x->ip, &y->ip);
	if (r)
		return r;
	if (!x->p.ep != !y->p.ep)
		return x->p.ep ? 1 : -1;       /* ClusterIPs first */
	r = strcmp(x->p.svc->ns, y->p.svc->ns);
	if (r)
		return r;
	r = strcmp(x->p.svc->name, y->p.svc->name);
	if (r)
		return r;
	if (x->p.ep && y->p.ep)
		return strcmp(x->p.ep->hostname, y->p.ep->hostname);
	return 0;
}

/** The @p k-th address of record @p s in the PTR index: ClusterIPs, then endpoints. */
static inline const struct tern_ip *rec_ip(const struct tern_cluster_svc *s, unsigned k,
                                           const struct tern_cluster_ep **ep)
{
	if (k < s->ncluster_ips) {
		*ep = NULL;
		return &s->cluster_ips[k];
	}
	*ep = &s->eps[k - s->ncluster_ips];
	return &(*ep)->ip;
}

static int build_ptr(struct tern_cluster *c, const struct tern_cluster_delta *d)
{
	static const struct ptr_shard *const none[PTR_SHARDS];
	struct ptr_shard *const *old = d->prev ? d->prev->ptr : (struct ptr_shard *const *)none;
	uint32_t *add = calloc(PTR_SHARDS, sizeof(*add));
	uint8_t *hit = calloc(PTR_SHARDS, 1);
	struct ptr_tmp **tmp = calloc(PTR_SHARDS, sizeof(*tmp));
	uint32_t *fill = calloc(PTR_SHARDS, sizeof(*fill));
	int ret = -1;
	if (!add || !hit || !tmp || !fill)
		goto out;

	for (size_t i = 0; i < d->nremoved; i++) {
		const struct tern_cluster_svc *s = d->removed[i];
		rec_of(s)->gone = 1;
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			hit[ip_shard(&key)] = 1;
		}
	}
	for (size_t i = 0; i < d->nadded; i++) {
		const struct tern_cluster_svc *s = d->added[i];
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			unsigned sh = ip_shard(&key);
			hit[sh] = 1;
			add[sh]++;
		}
	}
	/* Kept entries of the touched shards, then room for the added ones. */
	for (unsigned sh = 0; sh < PTR_SHARDS; sh++) {
		if (!hit[sh]) {
			c->ptr[sh] = old[sh];
			if (old[sh])
				old[sh]->refs++;
			continue;
		}
		uint32_t kept = 0;
		if (old[sh])
			for (uint32_t j = 0; j < old[sh]->n; j++)
				kept += !rec_of(old[sh]->vals[j].svc)->gone;
		uint32_t n = kept + add[sh];
		add[sh] = kept;          /* from here on: the sorted prefix of tmp[sh] */
		if (n == 0)
			continue;
		tmp[sh] = malloc(n * sizeof(*tmp[sh]));
		if (!tmp[sh])
			goto out;
		if (old[sh])
			for (uint32_t j = 0; j < old[sh]->n; j++)
				if (!rec_of(old[sh]->vals[j].svc)->gone)
					tmp[sh][fill[sh]++] = (struct ptr_tmp){
						.ip = old[sh]->keys[j], .p = old[sh]->vals[j] };
	}
	for (size_t i = 0; i < d->nadded; i++) {
		const struct tern_cluster_svc *s = d->added[i];
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			unsigned sh = ip_shard(&key);
			tmp[sh][fill[sh]++] = (struct ptr_tmp){ .ip = key,
				.p = { .svc = s, .ep = ep } };
		}
	}
	for (unsigned sh = 0; sh < PTR_SHARDS; sh++) {
		if (!tmp[sh])
			continue;
		/* kept entries are still sorted: sort the added ones and merge */
		uint32_t n = fill[sh], kept = add[sh];
		const struct ptr_tmp *t = tmp[sh];
		qsort(tmp[sh] + kept, n - kept, sizeof(tmp[sh][0]), ptr_tmp_cmp);
		struct ptr_shard *s = malloc(sizeof(*s) + n * (sizeof(s->vals[0]) +
		                                               sizeof(s->keys[0])));
		if (!s)
			goto out;
		s->refs = 1;
		s->n = n;
		s->vals = (struct tern_cluster_ptr *)(s + 1);
		s->keys = (struct tern_ip *)(s->vals + n);
		for (uint32_t j = 0, a = 0, b = kept; j < n; j++) {
			bool left = b == n || (a < kept && ptr_tmp_cmp(&t[a], &t[b]) <= 0);
			const struct ptr_tmp *e = left ? &t[a++] : &t[b++];
			s->vals[j] = e->p;
			s->keys[j] = e->ip;
		}
		c->ptr[sh] = s;
	}
	ret = 0;
out:
	for (size_t i = 0; i < d->nremoved; i++)
		rec_of(d->removed[i])->gone = 0;
	if (tmp)
		for (unsigned sh = 0; sh < PTR_SHARDS; sh++)
			free(tmp[sh]);
	free(tmp);
	free(add);
	free(hit);
	free(fill);
	return ret;
}

/* ---- assembly ---------------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct tern_cluster *tern_cluster_assemble(const struct tern_cluster_delta *d)
{
	struct tern_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->refs = 1;
	c->synced = d->synced;
	c->serial = d->serial;

	if (d->namespaces || !d->prev) {
		c->ns = ns_set_new(d->namespaces, d->namespaces ? d->nnamespaces : 0);
		if (!c->ns)
			goto fail;
	} else {
		c->ns = d->prev->ns;
		c->ns->refs++;
	}
	c->counts.namespaces = c->ns->n;

	if (d->pods_watched) {
		if (d->pods || !d->prev || !d->prev->pods) {
			c->pods = pod_index_new(d->pods, d->pods ? d->npods : 0, d->pod_count);
			if (!c->pods)
				goto fail;
		} else {
			c->pods = d->prev->pods;
			c->pods->refs++;
		}
		c->counts.pods = c->pods->count;
	}

	/* Last, since it cannot fail once allocated: a failure must leave @p d untouched. */
	if (build_ptr(c, d) < 0 || build_services(c, d) < 0)
		goto fail;
	for (size_t i = 0; i < d->nadded; i++)
		tern_cluster_svc_release(d->added[i]);   /* the delta's reference moved in */
	c->published_ms = mono_ms();
	return c;
fail:
	tern_cluster_free(c);
	return NULL;
}
