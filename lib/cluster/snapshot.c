/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Immutable cluster snapshots: their layout, their lookups (the data plane: no
 * allocation, no lock, no syscall) and their assembly from the previous snapshot plus
 * a delta of per-service records (used by build.c only).
 *
 * A snapshot is a table of per-service record pointers split into SVC_SHARDS shards
 * (each open addressing, linear probing, keyed by (ns, name)), a sorted namespace set,
 * a PTR index split into PTR_SHARDS sorted shards by address hash, and an optional pod
 * index. Records, their endpoint blocks (internal.h; shared with the builder's
 * slices), the service and PTR shards, the namespace set and the pod index are all
 * refcounted blocks: a new snapshot rebuilds only the service shards that hold a
 * changed record and the PTR shards that hold an address of one; everything else is
 * shared. The shards are many (4,096 each) so that a change retires few of the
 * workers' hot answers, which each remember the one shard (part, snapshot.h) they
 * were read from.
 * Refcounts are plain integers: every snapshot of one builder is built and freed on
 * one thread (the watcher; the loader once the watcher is joined).
 *
 * Memory, per endpoint: its entry in its slice's block (shared by the record) and one
 * PTR entry, 20 bytes for IPv4 (a 4-byte key and the match) and 32 for IPv6: each
 * shard keeps its IPv4 and IPv6 keys apart. Assembling allocates the new shards at
 * their final size and sorts each one's added entries through a scratch buffer the
 * size of the largest shard's, so the first build of a large cluster needs no copy of
 * the whole index on the side.
 */
#include "lib/cluster/snapshot.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "lib/cluster/build.h"
#include "lib/cluster/internal.h"
#include "lib/core/clock.h"

/* ---- layout ---------------------------------------------------------------------- */

#define PTR_SHARDS 4096u
#define SVC_SHARDS 4096u        /* picked by the top 12 bits of the key hash */
_Static_assert(SVC_SHARDS + PTR_SHARDS == TERN_CLUSTER_PART_NAMESPACES,
               "parts: the service shards, the PTR shards, then the others (snapshot.h)");

/** The block that holds one record; the public part is svc, the payload follows. */
struct rec {
	uint32_t refs;
	uint32_t gone;          /**< scratch while assembling (builder thread) */
	uint64_t hash;          /**< of (ns, name) */
	uint32_t nslen, namelen;
	unsigned nips;          /**< addresses in the PTR index: ClusterIPs + eps */
	struct tern_cluster_eps *eps;   /**< svc.eps lives here; NULL when none */
	struct tern_cluster_svc svc;
};

struct ns_name {
	const char *name;
	size_t len;
};

struct ns_set {
	unsigned refs;
	uint64_t id;            /* part id (snapshot.h) */
	size_t n;
	struct ns_name v[];     /* sorted by (len, bytes); strings follow */
};

/*
 * One PTR shard: the IPv4 entries, then the IPv6 ones, each run sorted by address (for
 * one address: ClusterIPs first, then by namespace, name, hostname). The keys are the
 * bare addresses: IPv4 as host-order integers, IPv6 as 16 bytes.
 */
struct ptr_shard {
	unsigned refs;
	uint32_t n4, n6;
	uint64_t id;                     /* part id (snapshot.h) */
	uint32_t *keys4;                 /* n4 */
	uint8_t (*keys6)[16];            /* n6 */
	struct tern_cluster_ptr vals[];  /* n4 + n6; the keys follow */
};

struct pod_ent {
	const char *ns;         /* NULL: empty slot */
	uint32_t nslen;
	uint32_t hash;
	struct tern_ip ip;
};

struct pod_index {
	unsigned refs;
	uint64_t id;            /* part id (snapshot.h) */
	size_t count;           /* pods */
	size_t mask;
	struct pod_ent slots[]; /* strings follow */
};

/** One shard of the service table; it holds a reference on each of its records. */
struct svc_shard {
	unsigned refs;
	uint32_t n;                              /* records */
	uint64_t id;                             /* part id (snapshot.h) */
	size_t neps;                             /* their endpoints */
	size_t mask;
	const struct tern_cluster_svc *slots[];  /* mask + 1, at most half full */
};

struct tern_cluster {
	unsigned refs;
	bool synced;
	uint32_t serial;
	uint64_t id;                             /* the part ALL */
	uint64_t published_ms;
	struct tern_cluster_counts counts;
	struct ns_set *ns;
	struct pod_index *pods;                  /* NULL when pods are not watched */
	struct svc_shard *svc[SVC_SHARDS];       /* NULL: empty shard */
	struct ptr_shard *ptr[PTR_SHARDS];       /* NULL: empty shard */
};

/*
 * Part ids (snapshot.h): one process-wide sequence, so that no two parts built by any
 * builder share an id. Assigned by the builder threads; read only through snapshots.
 */
static uint64_t part_seq;

static uint64_t part_id_new(void)
{
	return __atomic_add_fetch(&part_seq, 1, __ATOMIC_RELAXED);
}

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

/** An IPv4 address as the host-order integer the PTR shards sort by. */
static inline uint32_t ip4_key(const uint8_t *a)
{
	return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

/* ---- read side --------------------------------------------------------------------- */

uint64_t tern_cluster_part_id(const struct tern_cluster *c, uint32_t part)
{
	const uint64_t *id = NULL;
	if (part < SVC_SHARDS)
		id = c->svc[part] ? &c->svc[part]->id : NULL;
	else if (part < SVC_SHARDS + PTR_SHARDS)
		id = c->ptr[part - SVC_SHARDS] ? &c->ptr[part - SVC_SHARDS]->id : NULL;
	else if (part == TERN_CLUSTER_PART_NAMESPACES)
		id = c->ns ? &c->ns->id : NULL;
	else if (part == TERN_CLUSTER_PART_PODS)
		id = c->pods ? &c->pods->id : NULL;
	else if (part == TERN_CLUSTER_PART_ALL)
		id = &c->id;
	return id ? *id : 0;
}

bool tern_cluster_part_unchanged(const struct tern_cluster *c, uint32_t part, uint64_t id,
                                 uint64_t *seen, uint32_t *serial)
{
	if (c->id != *seen) {
		if (!c->synced || tern_cluster_part_id(c, part) != id)
			return false;
		*seen = c->id;
	}
	*serial = c->serial;
	return true;
}

const struct tern_cluster_svc *tern_cluster_find_service(const struct tern_cluster *c,
	const char *ns, size_t nslen, const char *name, size_t namelen, uint32_t *part)
{
	uint64_t h = key_hash(ns, nslen, name, namelen);
	if (part)
		*part = (uint32_t)(h >> 52);
	if (!c)
		return NULL;
	const struct svc_shard *sh = c->svc[h >> 52];
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
                             const struct tern_cluster_ptr **out, uint32_t *part)
{
	*out = NULL;
	if (part)
		*part = TERN_CLUSTER_PART_NONE;
	if (!c || (ip->family != AF_INET && ip->family != AF_INET6))
		return 0;
	struct tern_ip key = ip_norm(ip);
	unsigned shard = ip_shard(&key);
	if (part)
		*part = SVC_SHARDS + shard;
	const struct ptr_shard *sh = c->ptr[shard];
	if (!sh)
		return 0;
	size_t lo = 0, end;
	if (key.family == AF_INET) {
		uint32_t k = ip4_key(key.addr);
		size_t hi = sh->n4;
		while (lo < hi) {            /* lower bound */
			size_t mid = lo + (hi - lo) / 2;
			if (sh->keys4[mid] < k)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (end = lo; end < sh->n4 && sh->keys4[end] == k;)
			end++;
		*out = &sh->vals[lo];
	} else {
		size_t hi = sh->n6;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (memcmp(sh->keys6[mid], key.addr, 16) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (end = lo; end < sh->n6 && memcmp(sh->keys6[end], key.addr, 16) == 0;)
			end++;
		*out = &sh->vals[sh->n4 + lo];
	}
	if (end == lo) {
		*out = NULL;
		return 0;
	}
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

struct tern_cluster_eps *tern_cluster_eps_alloc(size_t n, size_t strbytes, char **pool)
{
	struct tern_cluster_eps *e = malloc(sizeof(*e) + n * sizeof(e->v[0]) + strbytes);
	if (!e)
		return NULL;
	e->refs = 1;
	e->n = (uint32_t)n;
	*pool = (char *)&e->v[n];
	return e;
}

void tern_cluster_eps_hold(struct tern_cluster_eps *e)
{
	e->refs++;
}

void tern_cluster_eps_release(struct tern_cluster_eps *e)
{
	if (e && --e->refs == 0)
		free(e);
}

struct tern_cluster_svc *tern_cluster_svc_alloc(size_t payload, void **area,
                                                struct tern_cluster_eps *eps)
{
	struct rec *r = calloc(1, sizeof(*r) + payload);
	if (!r)
		return NULL;
	r->refs = 1;
	r->eps = eps;
	if (eps) {
		r->svc.eps = eps->v;
		r->svc.neps = eps->n;
	}
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
	if (--r->refs == 0) {
		tern_cluster_eps_release(r->eps);
		free(r);
	}
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
	s->id = part_id_new();
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
	p->id = part_id_new();
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
	return (unsigned)(rec_of(s)->hash >> 52);
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
	sh->id = part_id_new();
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

/** One entry while sorting: the address (IPv4 in key[0..3] as ip4_key) and its match. */
struct ptr_tmp {
	union {
		uint32_t k4;
		uint8_t k6[16];
	};
	struct tern_cluster_ptr p;
};

/* The order of the matches of one address: ClusterIPs first, then by ns, name, hostname. */
static int ptr_val_cmp(const struct tern_cluster_ptr *x, const struct tern_cluster_ptr *y)
{
	if (!x->ep != !y->ep)
		return x->ep ? 1 : -1;
	int r = strcmp(x->svc->ns, y->svc->ns);
	if (r)
		return r;
	r = strcmp(x->svc->name, y->svc->name);
	if (r)
		return r;
	if (x->ep && y->ep)
		return strcmp(x->ep->hostname, y->ep->hostname);
	return 0;
}

static int ptr4_cmp(const void *a, const void *b)
{
	const struct ptr_tmp *x = a, *y = b;
	if (x->k4 != y->k4)
		return x->k4 < y->k4 ? -1 : 1;
	return ptr_val_cmp(&x->p, &y->p);
}

static int ptr6_cmp(const void *a, const void *b)
{
	const struct ptr_tmp *x = a, *y = b;
	int r = memcmp(x->k6, y->k6, 16);
	return r ? r : ptr_val_cmp(&x->p, &y->p);
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

/* Per shard while assembling: entries kept from the old shard and added, per family. */
struct ptr_work {
	uint32_t add4, add6;     /* added entries; then the fill position of each run */
	uint32_t kept4, kept6;
	bool hit;
};

static struct ptr_shard *ptr_shard_alloc(uint32_t n4, uint32_t n6)
{
	size_t n = (size_t)n4 + n6;
	struct ptr_shard *s = malloc(sizeof(*s) + n * sizeof(s->vals[0]) +
	                             n4 * sizeof(s->keys4[0]) + n6 * sizeof(s->keys6[0]));
	if (!s)
		return NULL;
	s->refs = 1;
	s->id = part_id_new();
	s->n4 = n4;
	s->n6 = n6;
	s->keys4 = (uint32_t *)&s->vals[n];
	s->keys6 = (uint8_t (*)[16])&s->keys4[n4];
	return s;
}

/*
 * Sort the added entries [kept, n) of one run (IPv4: @p v6 false) through @p tmp and
 * merge them into the sorted kept ones [0, kept), from the back, in place.
 */
static void ptr_run_sort(struct ptr_shard *s, bool v6, uint32_t kept, struct ptr_tmp *tmp)
{
	uint32_t n = v6 ? s->n6 : s->n4, nadd = n - kept;
	struct tern_cluster_ptr *vals = v6 ? &s->vals[s->n4] : s->vals;
	if (nadd == 0)
		return;
	for (uint32_t j = 0; j < nadd; j++) {
		tmp[j].p = vals[kept + j];
		if (v6)
			memcpy(tmp[j].k6, s->keys6[kept + j], 16);
		else
			tmp[j].k4 = s->keys4[kept + j];
	}
	int (*cmp)(const void *, const void *) = v6 ? ptr6_cmp : ptr4_cmp;
	qsort(tmp, nadd, sizeof(tmp[0]), cmp);
	struct ptr_tmp cur;
	for (uint32_t i = kept, j = nadd, k = n; j > 0; k--) {
		bool from_kept = false;
		if (i > 0) {
			cur.p = vals[i - 1];
			if (v6)
				memcpy(cur.k6, s->keys6[i - 1], 16);
			else
				cur.k4 = s->keys4[i - 1];
			from_kept = cmp(&cur, &tmp[j - 1]) > 0;
		}
		const struct ptr_tmp *e = from_kept ? &cur : &tmp[j - 1];
		vals[k - 1] = e->p;
		if (v6)
			memcpy(s->keys6[k - 1], e->k6, 16);
		else
			s->keys4[k - 1] = e->k4;
		if (from_kept)
			i--;
		else
			j--;
	}
}

/*
 * The PTR shards: those no removed or added address falls in are shared with
 * @p d->prev; the others are allocated at their final size, filled with the old
 * shard's entries that stay (still sorted) and the added ones, which are then sorted
 * and merged in. @return 0 or -1 (out of memory; what was built is in c->ptr).
 */
static int build_ptr(struct tern_cluster *c, const struct tern_cluster_delta *d)
{
	static const struct ptr_shard *const none[PTR_SHARDS];
	struct ptr_shard *const *old = d->prev ? d->prev->ptr : (struct ptr_shard *const *)none;
	struct ptr_work *w = calloc(PTR_SHARDS, sizeof(*w));
	struct ptr_tmp *tmp = NULL;
	int ret = -1;
	if (!w)
		return -1;

	for (size_t i = 0; i < d->nremoved; i++) {
		const struct tern_cluster_svc *s = d->removed[i];
		rec_of(s)->gone = 1;
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			w[ip_shard(&key)].hit = true;
		}
	}
	for (size_t i = 0; i < d->nadded; i++) {
		const struct tern_cluster_svc *s = d->added[i];
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			struct ptr_work *pw = &w[ip_shard(&key)];
			pw->hit = true;
			if (key.family == AF_INET)
				pw->add4++;
			else
				pw->add6++;
		}
	}
	/* Allocate the touched shards and copy the entries that stay. */
	uint32_t most = 0;
	for (unsigned sh = 0; sh < PTR_SHARDS; sh++) {
		struct ptr_work *pw = &w[sh];
		const struct ptr_shard *o = old[sh];
		if (!pw->hit) {
			c->ptr[sh] = old[sh];
			if (o)
				old[sh]->refs++;
			continue;
		}
		for (uint32_t j = 0; o && j < o->n4 + o->n6; j++) {
			if (rec_of(o->vals[j].svc)->gone)
				continue;
			if (j < o->n4)
				pw->kept4++;
			else
				pw->kept6++;
		}
		uint32_t n4 = pw->kept4 + pw->add4, n6 = pw->kept6 + pw->add6;
		most = pw->add4 > most ? pw->add4 : most;
		most = pw->add6 > most ? pw->add6 : most;
		if (n4 + n6 == 0)
			continue;
		struct ptr_shard *s = ptr_shard_alloc(n4, n6);
		if (!s)
			goto out;
		c->ptr[sh] = s;
		uint32_t f4 = 0, f6 = 0;
		for (uint32_t j = 0; o && j < o->n4 + o->n6; j++) {
			if (rec_of(o->vals[j].svc)->gone)
				continue;
			if (j < o->n4) {
				s->keys4[f4] = o->keys4[j];
				s->vals[f4++] = o->vals[j];
			} else {
				memcpy(s->keys6[f6], o->keys6[j - o->n4], 16);
				s->vals[n4 + f6++] = o->vals[j];
			}
		}
		pw->add4 = f4;           /* from here on: where the next added entry goes */
		pw->add6 = f6;
	}
	/* Append the added entries, then sort each run's added part and merge it in. */
	for (size_t i = 0; i < d->nadded; i++) {
		const struct tern_cluster_svc *s = d->added[i];
		for (unsigned k = 0; k < rec_of(s)->nips; k++) {
			const struct tern_cluster_ep *ep;
			struct tern_ip key = ip_norm(rec_ip(s, k, &ep));
			unsigned sh = ip_shard(&key);
			struct ptr_shard *p = c->ptr[sh];
			struct tern_cluster_ptr v = { .svc = s, .ep = ep };
			if (key.family == AF_INET) {
				p->keys4[w[sh].add4] = ip4_key(key.addr);
				p->vals[w[sh].add4++] = v;
			} else {
				memcpy(p->keys6[w[sh].add6], key.addr, 16);
				p->vals[p->n4 + w[sh].add6++] = v;
			}
		}
	}
	tmp = malloc((most ? most : 1) * sizeof(*tmp));
	if (!tmp)
		goto out;
	for (unsigned sh = 0; sh < PTR_SHARDS; sh++) {
		if (!w[sh].hit || !c->ptr[sh])
			continue;
		ptr_run_sort(c->ptr[sh], false, w[sh].kept4, tmp);
		ptr_run_sort(c->ptr[sh], true, w[sh].kept6, tmp);
	}
	ret = 0;
out:
	for (size_t i = 0; i < d->nremoved; i++)
		rec_of(d->removed[i])->gone = 0;
	free(tmp);
	free(w);
	return ret;
}

/* ---- assembly ---------------------------------------------------------------------- */

struct tern_cluster *tern_cluster_assemble(const struct tern_cluster_delta *d)
{
	struct tern_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->refs = 1;
	c->id = part_id_new();
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
	c->published_ms = tern_mono_ms();
	return c;
fail:
	tern_cluster_free(c);
	return NULL;
}
