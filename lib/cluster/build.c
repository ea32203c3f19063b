/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The builder: the watcher's private, mutable store of slim Kubernetes objects, and
 * the code that turns it into immutable snapshots (snapshot.c assembles them).
 *
 * Services and EndpointSlices meet in "groups" keyed by the Service's (ns, name): a
 * group holds the Service (if any) and the list of slices whose
 * kubernetes.io/service-name label names it. Each upsert keeps only what DNS needs,
 * already derived (ready addresses with their CoreDNS hostnames, lowercase ports), and
 * compares it with what it replaces: an unchanged object marks nothing dirty. A
 * snapshot recomputes the record of every dirty group, keeps the previous record
 * (the same pointer) when the content is equal, and hands snapshot.c the removed and
 * added records; everything else is shared with the previous snapshot.
 * Thread: the builder's owner only (watcher or test).
 */
#include "lib/cluster/build.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <libknot/libknot.h>

#include "lib/core/attr.h"
#include "lib/core/clock.h"
#include "lib/core/errcode.h"
#include "lib/core/rcu.h"
#include "lib/cluster/internal.h"

/* ---- a small intrusive hash map keyed by strings ------------------------------------ */

struct hnode {
	struct hnode *next;
	uint64_t hash;
	const char *key;
	size_t keylen;
};

struct hmap {
	struct hnode **b;
	size_t mask;
	size_t n;
};

static uint64_t hash_str(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static int hmap_init(struct hmap *m)
{
	*m = (struct hmap){ .b = calloc(16, sizeof(m->b[0])), .mask = 15 };
	return m->b ? 0 : TERN_ENOMEM;
}

static struct hnode *hmap_find(const struct hmap *m, const char *key, size_t len, uint64_t h)
{
	for (struct hnode *n = m->b[h & m->mask]; n; n = n->next)
		if (n->hash == h && n->keylen == len && memcmp(n->key, key, len) == 0)
			return n;
	return NULL;
}

static void hmap_add(struct hmap *m, struct hnode *node)
{
	if (m->n >= m->mask + 1) {   /* grow; on failure keep the longer chains */
		size_t cap = 2 * (m->mask + 1);
		struct hnode **b = calloc(cap, sizeof(b[0]));
		if (b) {
			for (size_t i = 0; i <= m->mask; i++) {
				for (struct hnode *n = m->b[i], *next; n; n = next) {
					next = n->next;
					n->next = b[n->hash & (cap - 1)];
					b[n->hash & (cap - 1)] = n;
				}
			}
			free(m->b);
			m->b = b;
			m->mask = cap - 1;
		}
	}
	struct hnode **head = &m->b[node->hash & m->mask];
	node->next = *head;
	*head = node;
	m->n++;
}

static void hmap_del(struct hmap *m, struct hnode *node)
{
	for (struct hnode **p = &m->b[node->hash & m->mask]; *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			m->n--;
			return;
		}
	}
}

/* ---- kept objects ----------------------------------------------------------------- */

#define KEY_MAX (2 * TERN_K8S_NAME_MAX + 2)

/** The kept part of a Service (one block). */
struct svc_obj {
	enum tern_svc_kind kind;
	unsigned ncluster_ips;
	struct tern_ip cluster_ips[2];   /**< ClusterIP kind only */
	uint8_t *external_name;          /**< lowercase wire dname, NULL when none/invalid */
	size_t external_len;
	struct tern_cluster_port *ports;
	unsigned nports;
	size_t strbytes;                 /**< port name + proto bytes with NULs */
};

struct slice_obj;

/** A Service and the slices that name it. */
struct group {
	struct hnode node;               /**< key "ns/name" */
	const char *ns, *name;
	struct svc_obj *svc;             /**< NULL: no Service object (yet) */
	uint32_t svc_gen;
	struct slice_obj *slices;
	struct group *dirty_next;
	bool dirty;
};

/** The kept part of an EndpointSlice (one block). */
struct slice_obj {
	struct hnode node;               /**< key "ns/slicename" */
	struct group *grp;               /**< NULL: no service-name label */
	struct slice_obj *prev, *next;   /**< in grp->slices */
	uint32_t gen;
	/** Ready addresses with derived hostnames, sorted, unique; NULL when none. Shared
	 * with the records built from this slice alone. */
	struct tern_cluster_eps *eps;
	struct tern_cluster_port *ports;
	unsigned nports;
	double trigger_time;             /**< last-change-trigger-time seen, unix s; 0 */
};

struct ns_obj {
	struct hnode node;               /**< key "name" */
	uint32_t gen;
};

struct pod_obj {
	struct hnode node;               /**< key "ns/name" */
	const char *ns;
	uint32_t gen;
	unsigned nips;
	struct tern_ip ips[];
};

/*
 * A snapshot replaced in its source by a publish, freed by the builder's thread once a
 * grace period has passed: liburcu's call_rcu thread waits for it and only marks the
 * entry done (the snapshot's refcounts belong to the builder's thread).
 */
struct retired {
	struct rcu_head head;
	struct tern_cluster *snap;
	struct retired *next;
	bool done;                       /**< set (release) after the grace period */
};

struct tern_cluster_builder {
	const struct tern_cluster_source_conf *conf;
	struct hmap groups, slices, namespaces, pods;
	uint32_t gen[TERN_K8S_KIND_COUNT];
	struct group *dirty;
	bool ns_dirty, pods_dirty, synced;
	struct tern_cluster *prev;       /**< the last snapshot built (one ref held) */
	/* scratch, reused between snapshots */
	struct tern_cluster_ep *eps;
	size_t eps_cap;
	struct tern_cluster_port *ports;
	size_t ports_cap;
	/* DNS programming durations to observe when the next snapshot is published:
	 * the last-change-trigger-time (unix s) of each slice change waiting for it. */
	double *pending;
	size_t npending, pending_cap;
	struct retired *retired;         /**< replaced snapshots, newest first */
};

/* ---- helpers ------------------------------------------------------------------------ */

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static char *copy_lower(char *dst, const char *src)
{
	size_t i = 0;
	for (; src[i]; i++)
		dst[i] = lower(src[i]);
	dst[i] = '\0';
	return dst;
}

/** Build the lowercase key "ns/name" (or "name" when @p ns is NULL). @return its length. */
static int make_key(char buf[KEY_MAX], const char *ns, const char *name)
{
	size_t nslen = ns ? strlen(ns) : 0, namelen = name ? strlen(name) : 0;
	if ((ns && (nslen == 0 || nslen > TERN_K8S_NAME_MAX)) || namelen == 0 ||
	    namelen > TERN_K8S_NAME_MAX)
		return TERN_EINVAL;
	size_t off = 0;
	if (ns) {
		copy_lower(buf, ns);
		buf[nslen] = '/';
		off = nslen + 1;
	}
	copy_lower(buf + off, name);
	return (int)(off + namelen);
}

static inline bool ip_valid(const struct tern_ip *ip)
{
	return ip->family == AF_INET || ip->family == AF_INET6;
}

static inline struct tern_ip ip_norm(const struct tern_ip *ip)
{
	struct tern_ip out = { .family = ip->family };
	memcpy(out.addr, ip->addr, ip->family == AF_INET6 ? 16 : 4);
	return out;
}

static inline int ip_cmp(const struct tern_ip *a, const struct tern_ip *b)
{
	return memcmp(a, b, sizeof(*a));
}

static bool ns_listed(const struct tern_cluster_builder *b, const char *ns)
{
	if (b->conf->nnamespaces == 0)
		return true;
	for (size_t i = 0; i < b->conf->nnamespaces; i++)
		if (strcasecmp(b->conf->namespaces[i], ns) == 0)
			return true;
	return false;
}

/** CoreDNS's namespaceExposed(): listed, and present when a label selector picks them. */
static bool ns_exposed(const struct tern_cluster_builder *b, const char *ns)
{
	if (!ns_listed(b, ns))
		return false;
	if (b->conf->namespace_labels && b->conf->namespace_labels[0]) {
		size_t len = strlen(ns);
		return hmap_find(&b->namespaces, ns, len, hash_str(ns, len)) != NULL;
	}
	return true;
}

static void mark_dirty(struct tern_cluster_builder *b, struct group *g)
{
	if (!g || g->dirty)
		return;
	g->dirty = true;
	g->dirty_next = b->dirty;
	b->dirty = g;
}

static const char *proto_of(const char *p)
{
	return p && p[0] ? p : "TCP";
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static bool ports_equal(const struct tern_cluster_port *a, const struct tern_cluster_port *b,
                        unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i].port != b[i].port || strcmp(a[i].name, b[i].name) != 0 ||
		    strcmp(a[i].proto, b[i].proto) != 0)
			return false;
	return true;
}

static bool eps_equal(const struct tern_cluster_ep *a, const struct tern_cluster_ep *b,
                      unsigned n)
{
	if (a == b)
		return true;
	for (unsigned i = 0; i < n; i++)
		if (ip_cmp(&a[i].ip, &b[i].ip) != 0 || strcmp(a[i].hostname, b[i].hostname) != 0)
			return false;
	return true;
}

static inline unsigned eps_count(const struct tern_cluster_eps *e)
{
	return e ? e->n : 0;
}

static bool eps_block_equal(const struct tern_cluster_eps *a, const struct tern_cluster_eps *b)
{
	if (a == b)
		return true;
	if (eps_count(a) != eps_count(b))
		return false;
	return !a || eps_equal(a->v, b->v, a->n);
}

static int ep_cmp(const void *a, const void *b)
{
	const struct tern_cluster_ep *x = a, *y = b;
	int r = strcmp(x->hostname, y->hostname);
	return r ? r : ip_cmp(&x->ip, &y->ip);
}

/** Sort @p v (unless it already is) and drop duplicates. @return the count left. */
static size_t eps_canonical(struct tern_cluster_ep *v, size_t n)
{
	bool sorted = true;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = ep_cmp(&v[i - 1], &v[i]) <= 0;
	if (!sorted)
		qsort(v, n, sizeof(v[0]), ep_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || ep_cmp(&v[u - 1], &v[i]) != 0)
			v[u++] = v[i];
	return u;
}

/** Copy @p n API ports (lowercase) to @p out, strings into *pool. */
static void ports_copy(struct tern_cluster_port *out, const struct tern_k8s_port *in,
                       unsigned n, char **pool)
{
	for (unsigned i = 0; i < n; i++) {
		out[i].port = in[i].port;
		out[i].name = copy_lower(*pool, str_or_empty(in[i].name));
		*pool += strlen(*pool) + 1;
		out[i].proto = copy_lower(*pool, proto_of(in[i].protocol));
		*pool += strlen(*pool) + 1;
	}
}

static size_t ports_bytes(const struct tern_k8s_port *in, unsigned n)
{
	size_t bytes = 0;
	for (unsigned i = 0; i < n; i++)
		bytes += strlen(str_or_empty(in[i].name)) + strlen(proto_of(in[i].protocol)) + 2;
	return bytes;
}

/* ---- groups --------------------------------------------------------------------------- */

static struct group *group_get(struct tern_cluster_builder *b, const char *key, size_t keylen,
                               bool create)
{
	uint64_t h = hash_str(key, keylen);
	struct hnode *n = hmap_find(&b->groups, key, keylen, h);
	if (n || !create)
		return (struct group *)n;
	/* block: group, "ns/name\0", "ns\0name\0" */
	struct group *g = calloc(1, sizeof(*g) + 2 * (keylen + 1));
	if (!g)
		return NULL;
	char *k = (char *)(g + 1);
	memcpy(k, key, keylen);
	k[keylen] = '\0';
	char *ns = k + keylen + 1;
	memcpy(ns, key, keylen + 1);
	char *slash = strchr(ns, '/');
	*slash = '\0';
	g->ns = ns;
	g->name = slash + 1;
	g->node = (struct hnode){ .hash = h, .key = k, .keylen = keylen };
	hmap_add(&b->groups, &g->node);
	return g;
}

static void group_free_if_empty(struct tern_cluster_builder *b, struct group *g)
{
	if (g->svc || g->slices || g->dirty)
		return;
	hmap_del(&b->groups, &g->node);
	free(g);
}

/* ---- services ------------------------------------------------------------------------ */

/** Lowercase wire form of an ExternalName target; 0 when it is an IP or not a name. */
static size_t extname_wire(const char *v, uint8_t out[KNOT_DNAME_MAXLEN])
{
	uint8_t addr[16];
	if (!v || !v[0] || inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1)
		return 0;
	if (!knot_dname_from_str(out, v, KNOT_DNAME_MAXLEN))
		return 0;
	knot_dname_to_lower(out);
	size_t len = knot_dname_size(out);
	return len > 1 ? len : 0;        /* the root is not a target */
}

static struct svc_obj *svc_obj_new(const struct tern_k8s_service *s)
{
	uint8_t wire[KNOT_DNAME_MAXLEN];
	size_t wlen = s->kind == TERN_SVC_EXTERNAL_NAME ? extname_wire(s->external_name, wire) : 0;
	size_t strbytes = ports_bytes(s->ports, s->nports);
	struct svc_obj *o = calloc(1, sizeof(*o) + s->nports * sizeof(o->ports[0]) + wlen +
	                              strbytes);
	if (!o)
		return NULL;
	o->kind = s->kind;
	if (s->kind == TERN_SVC_CLUSTER_IP) {
		for (unsigned i = 0; i < s->ncluster_ips && o->ncluster_ips < 2; i++)
			if (ip_valid(&s->cluster_ips[i]))
				o->cluster_ips[o->ncluster_ips++] = ip_norm(&s->cluster_ips[i]);
	}
	o->ports = (struct tern_cluster_port *)(o + 1);
	o->nports = s->nports;
	uint8_t *p = (uint8_t *)(o->ports + s->nports);
	if (wlen) {
		o->external_name = p;
		o->external_len = wlen;
		memcpy(p, wire, wlen);
		p += wlen;
	}
	char *pool = (char *)p;
	ports_copy(o->ports, s->ports, s->nports, &pool);
	o->strbytes = strbytes;
	return o;
}

static bool svc_obj_equal(const struct svc_obj *a, const struct svc_obj *b)
{
	if (a->kind != b->kind || a->ncluster_ips != b->ncluster_ips ||
	    a->external_len != b->external_len || a->nports != b->nports)
		return false;
	if (memcmp(a->cluster_ips, b->cluster_ips, a->ncluster_ips * sizeof(a->cluster_ips[0])) ||
	    (a->external_len && memcmp(a->external_name, b->external_name, a->external_len)))
		return false;
	return ports_equal(a->ports, b->ports, a->nports);
}

int tern_cluster_builder_service(struct tern_cluster_builder *b, const struct tern_k8s_service *s)
{
	char key[KEY_MAX];
	int len = make_key(key, s->ns, s->name);
	if (len < 0)
		return len;
	struct svc_obj *o = svc_obj_new(s);
	if (!o)
		return TERN_ENOMEM;
	struct group *g = group_get(b, key, (size_t)len, true);
	if (!g) {
		free(o);
		return TERN_ENOMEM;
	}
	g->svc_gen = b->gen[TERN_K8S_SERVICE];
	if (g->svc && svc_obj_equal(g->svc, o)) {
		free(o);
		return TERN_EOK;
	}
	free(g->svc);
	g->svc = o;
	mark_dirty(b, g);
	return TERN_EOK;
}

static void service_drop(struct tern_cluster_builder *b, struct group *g)
{
	free(g->svc);
	g->svc = NULL;
	mark_dirty(b, g);
}

/* The object of @p m keyed (@p ns, @p name) into *out: 0, TERN_ENOENT or a bad-name error. */
static int find_named(struct hmap *m, const char *ns, const char *name, struct hnode **out)
{
	char key[KEY_MAX];
	int len = make_key(key, ns, name);
	if (len < 0)
		return len;
	*out = hmap_find(m, key, (size_t)len, hash_str(key, (size_t)len));
	return *out ? TERN_EOK : TERN_ENOENT;
}

int tern_cluster_builder_service_delete(struct tern_cluster_builder *b, const char *ns,
                                        const char *name)
{
	char key[KEY_MAX];
	int len = make_key(key, ns, name);
	if (len < 0)
		return len;
	struct group *g = group_get(b, key, (size_t)len, false);
	if (!g || !g->svc)
		return TERN_ENOENT;
	service_drop(b, g);
	return TERN_EOK;
}

/* ---- endpoint slices -------------------------------------------------------------------- */

/** CoreDNS's endpoint name: hostname, else (option) pod name < 64, else the dashed IP. */
static const char *ep_hostname(const struct tern_cluster_builder *b,
                               const struct tern_k8s_endpoint *ep, const struct tern_ip *ip,
                               char buf[INET6_ADDRSTRLEN + 1])
{
	if (ep->hostname && ep->hostname[0])
		return ep->hostname;
	if (b->conf->endpoint_pod_names && ep->pod_name && ep->pod_name[0] &&
	    strlen(ep->pod_name) < 64)
		return ep->pod_name;
	if (!inet_ntop(ip->family, ip->addr, buf, INET6_ADDRSTRLEN))
		buf[0] = '\0';
	size_t n = strlen(buf);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '.' || buf[i] == ':')
			buf[i] = '-';
	if (n > 0 && buf[n - 1] == '-') {
		buf[n] = '0';
		buf[n + 1] = '\0';
	}
	return buf;
}

static struct slice_obj *slice_obj_new(const struct tern_cluster_builder *b,
                                       const struct tern_k8s_slice *s, const char *key,
                                       size_t keylen)
{
	char buf[INET6_ADDRSTRLEN + 1];
	size_t neps = 0, hostbytes = 0, strbytes = ports_bytes(s->ports, s->nports);
	for (unsigned i = 0; i < s->nendpoints; i++) {
		const struct tern_k8s_endpoint *ep = &s->endpoints[i];
		if (!ep->ready)
			continue;
		for (unsigned j = 0; j < ep->naddrs; j++) {
			if (!ip_valid(&ep->addrs[j]))
				continue;
			neps++;
			hostbytes += strlen(ep_hostname(b, ep, &ep->addrs[j], buf)) + 1;
		}
	}
	struct slice_obj *o = calloc(1, sizeof(*o) + s->nports * sizeof(o->ports[0]) + keylen +
	                                1 + strbytes);
	if (!o)
		return NULL;
	char *hpool = NULL;
	if (neps && !(o->eps = tern_cluster_eps_alloc(neps, hostbytes, &hpool))) {
		free(o);
		return NULL;
	}
	o->ports = (struct tern_cluster_port *)(o + 1);
	char *pool = (char *)(o->ports + s->nports);
	memcpy(pool, key, keylen);
	pool[keylen] = '\0';
	o->node = (struct hnode){ .hash = hash_str(key, keylen), .key = pool, .keylen = keylen };
	pool += keylen + 1;
	size_t n = 0;
	for (unsigned i = 0; i < s->nendpoints && neps; i++) {
		const struct tern_k8s_endpoint *ep = &s->endpoints[i];
		if (!ep->ready)
			continue;
		for (unsigned j = 0; j < ep->naddrs; j++) {
			if (!ip_valid(&ep->addrs[j]))
				continue;
			struct tern_cluster_ep *e = &o->eps->v[n++];
			e->ip = ip_norm(&ep->addrs[j]);
			e->hostname = copy_lower(hpool, ep_hostname(b, ep, &ep->addrs[j], buf));
			hpool += strlen(hpool) + 1;
		}
	}
	if (o->eps)
		o->eps->n = (uint32_t)eps_canonical(o->eps->v, n);
	o->nports = s->nports;
	ports_copy(o->ports, s->ports, s->nports, &pool);
	return o;
}

static void slice_obj_free(struct slice_obj *o)
{
	if (!o)
		return;
	tern_cluster_eps_release(o->eps);
	free(o);
}

static void slice_unlink(struct tern_cluster_builder *b, struct slice_obj *o)
{
	struct group *g = o->grp;
	if (!g)
		return;
	if (o->prev)
		o->prev->next = o->next;
	else
		g->slices = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
	o->grp = NULL;
	mark_dirty(b, g);
}

static void slice_link(struct tern_cluster_builder *b, struct slice_obj *o, struct group *g)
{
	o->grp = g;
	if (!g)
		return;
	o->prev = NULL;
	o->next = g->slices;
	if (g->slices)
		g->slices->prev = o;
	g->slices = o;
	mark_dirty(b, g);
}

#define PENDING_MAX 4096   /* slice changes waiting for one publish; more count at once */

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);   /* the API server's annotation is wall time */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A slice change with a new last-change-trigger-time is one DNS programming duration
 * (CoreDNS's metric). As CoreDNS does, only slices of a headless Service count: their
 * endpoints are its records, and the annotation (set only by the EndpointSlice
 * controller) makes it "headless_with_selector". Changes read before the first sync
 * (the initial list) and replays of a trigger time already seen (a relist) are not
 * programming. @p visible_now: the change needs no new snapshot (same records), count
 * it now; otherwise when the snapshot with it is published (programming_flush).
 */
static void programming_note(struct tern_cluster_builder *b, const struct group *g,
                             double trigger, bool visible_now)
{
	if (!b->synced || !g || !g->svc || g->svc->kind != TERN_SVC_HEADLESS)
		return;
	if (!visible_now && b->npending == b->pending_cap && b->pending_cap < PENDING_MAX) {
		size_t cap = b->pending_cap ? 2 * b->pending_cap : 16;
		double *p = realloc(b->pending, cap * sizeof(p[0]));
		if (p) {
			b->pending = p;
			b->pending_cap = cap;
		}
	}
	if (visible_now || b->npending == b->pending_cap) {
		tern_cluster_programming_observe(unix_now() - trigger);
		return;
	}
	b->pending[b->npending++] = trigger;
}

/* The snapshot with the pending changes is visible to workers from now on. */
static void programming_flush(struct tern_cluster_builder *b)
{
	if (!b->npending)
		return;
	double now = unix_now();
	for (size_t i = 0; i < b->npending; i++)
		tern_cluster_programming_observe(now - b->pending[i]);
	b->npending = 0;
}

int tern_cluster_builder_slice(struct tern_cluster_builder *b, const struct tern_k8s_slice *s)
{
	char key[KEY_MAX], gkey[KEY_MAX];
	int len = make_key(key, s->ns, s->name);
	if (len < 0)
		return len;
	struct group *g = NULL;
	if (s->service && s->service[0]) {
		int glen = make_key(gkey, s->ns, s->service);
		if (glen < 0)
			return glen;
		g = group_get(b, gkey, (size_t)glen, true);
		if (!g)
			return TERN_ENOMEM;
	}
	struct slice_obj *o = slice_obj_new(b, s, key, (size_t)len);
	if (!o) {
		if (g)
			group_free_if_empty(b, g);
		return TERN_ENOMEM;
	}
	o->gen = b->gen[TERN_K8S_SLICE];
	o->trigger_time = s->trigger_time;
	struct slice_obj *old = (struct slice_obj *)hmap_find(&b->slices, key, (size_t)len,
	                                                      o->node.hash);
	bool fresh = s->trigger_time > 0 && (!old || old->trigger_time != s->trigger_time);
	if (old && old->grp == g && old->nports == o->nports && eps_block_equal(old->eps, o->eps) &&
	    ports_equal(old->ports, o->ports, o->nports)) {
		old->gen = o->gen;
		old->trigger_time = o->trigger_time;
		slice_obj_free(o);
		if (fresh)
			programming_note(b, g, s->trigger_time, true);
		return TERN_EOK;
	}
	if (old) {
		slice_unlink(b, old);
		hmap_del(&b->slices, &old->node);
		slice_obj_free(old);
	}
	hmap_add(&b->slices, &o->node);
	slice_link(b, o, g);
	if (fresh)
		programming_note(b, g, s->trigger_time, false);
	return TERN_EOK;
}

static void slice_drop(struct tern_cluster_builder *b, struct slice_obj *o)
{
	slice_unlink(b, o);
	hmap_del(&b->slices, &o->node);
	slice_obj_free(o);
}

int tern_cluster_builder_slice_delete(struct tern_cluster_builder *b, const char *ns,
                                      const char *name)
{
	struct hnode *n;
	int ret = find_named(&b->slices, ns, name, &n);
	if (ret == TERN_EOK)
		slice_drop(b, (struct slice_obj *)n);
	return ret;
}

/* ---- namespaces ------------------------------------------------------------------------ */

/** A namespace appeared or went: with a label selector it decides exposure. */
static void namespace_changed(struct tern_cluster_builder *b, const char *ns)
{
	if (!ns_listed(b, ns))
		return;
	b->ns_dirty = true;
	if (!b->conf->namespace_labels || !b->conf->namespace_labels[0])
		return;
	size_t len = strlen(ns);
	for (size_t i = 0; i <= b->groups.mask; i++)
		for (struct hnode *n = b->groups.b[i]; n; n = n->next) {
			struct group *g = (struct group *)n;
			if (strncmp(g->ns, ns, len) == 0 && g->ns[len] == '\0')
				mark_dirty(b, g);
		}
	if (b->conf->watch_pods)
		b->pods_dirty = true;
}

int tern_cluster_builder_namespace(struct tern_cluster_builder *b, const char *name)
{
	char key[KEY_MAX];
	int len = make_key(key, NULL, name);
	if (len < 0)
		return len;
	uint64_t h = hash_str(key, (size_t)len);
	struct ns_obj *o = (struct ns_obj *)hmap_find(&b->namespaces, key, (size_t)len, h);
	if (o) {
		o->gen = b->gen[TERN_K8S_NAMESPACE];
		return TERN_EOK;
	}
	o = calloc(1, sizeof(*o) + (size_t)len + 1);
	if (!o)
		return TERN_ENOMEM;
	char *k = memcpy(o + 1, key, (size_t)len + 1);
	o->node = (struct hnode){ .hash = h, .key = k, .keylen = (size_t)len };
	o->gen = b->gen[TERN_K8S_NAMESPACE];
	hmap_add(&b->namespaces, &o->node);
	namespace_changed(b, k);
	return TERN_EOK;
}

static void namespace_drop(struct tern_cluster_builder *b, struct ns_obj *o)
{
	hmap_del(&b->namespaces, &o->node);
	namespace_changed(b, o->node.key);
	free(o);
}

int tern_cluster_builder_namespace_delete(struct tern_cluster_builder *b, const char *name)
{
	struct hnode *n;
	int ret = find_named(&b->namespaces, NULL, name, &n);
	if (ret == TERN_EOK)
		namespace_drop(b, (struct ns_obj *)n);
	return ret;
}

/* ---- pods -------------------------------------------------------------------------------- */

int tern_cluster_builder_pod(struct tern_cluster_builder *b, const struct tern_k8s_pod *p)
{
	char key[KEY_MAX];
	int len = make_key(key, p->ns, p->name);
	if (len < 0)
		return len;
	uint64_t h = hash_str(key, (size_t)len);
	struct pod_obj *old = (struct pod_obj *)hmap_find(&b->pods, key, (size_t)len, h);
	unsigned nips = 0;
	/* block: pod, ips, "ns/name\0", "ns\0" */
	struct pod_obj *o = calloc(1, sizeof(*o) + p->nips * sizeof(o->ips[0]) +
	                              2 * ((size_t)len + 1));
	if (!o)
		return TERN_ENOMEM;
	for (unsigned i = 0; i < p->nips; i++)
		if (ip_valid(&p->ips[i]))
			o->ips[nips++] = ip_norm(&p->ips[i]);
	o->nips = nips;
	o->gen = b->gen[TERN_K8S_POD];
	if (old && old->nips == nips && memcmp(old->ips, o->ips, nips * sizeof(o->ips[0])) == 0) {
		old->gen = o->gen;
		free(o);
		return TERN_EOK;
	}
	char *k = memcpy(&o->ips[p->nips], key, (size_t)len + 1);
	o->node = (struct hnode){ .hash = h, .key = k, .keylen = (size_t)len };
	char *ns = memcpy(k + len + 1, key, (size_t)len + 1);
	*strchr(ns, '/') = '\0';
	o->ns = ns;
	if (old) {
		hmap_del(&b->pods, &old->node);
		free(old);
	}
	hmap_add(&b->pods, &o->node);
	b->pods_dirty = true;
	return TERN_EOK;
}

int tern_cluster_builder_pod_delete(struct tern_cluster_builder *b, const char *ns,
                                    const char *name)
{
	struct hnode *n;
	int ret = find_named(&b->pods, ns, name, &n);
	if (ret != TERN_EOK)
		return ret;
	hmap_del(&b->pods, n);
	free(n);
	b->pods_dirty = true;
	return TERN_EOK;
}

/* ---- relists ---------------------------------------------------------------------------- */

void tern_cluster_builder_relist_begin(struct tern_cluster_builder *b, enum tern_k8s_kind kind)
{
	if (kind < TERN_K8S_KIND_COUNT)
		b->gen[kind]++;
}

void tern_cluster_builder_relist_end(struct tern_cluster_builder *b, enum tern_k8s_kind kind)
{
	struct hmap *m = kind == TERN_K8S_SERVICE ? &b->groups :
	                 kind == TERN_K8S_SLICE ? &b->slices :
	                 kind == TERN_K8S_NAMESPACE ? &b->namespaces :
	                 kind == TERN_K8S_POD ? &b->pods : NULL;
	if (!m)
		return;
	uint32_t gen = b->gen[kind];
	for (size_t i = 0; i <= m->mask; i++) {
		for (struct hnode *n = m->b[i], *next; n; n = next) {
			next = n->next;
			switch (kind) {
			case TERN_K8S_SERVICE: {
				struct group *g = (struct group *)n;
				if (g->svc && g->svc_gen != gen)
					service_drop(b, g);
				break;
			}
			case TERN_K8S_SLICE:
				if (((struct slice_obj *)n)->gen != gen)
					slice_drop(b, (struct slice_obj *)n);
				break;
			case TERN_K8S_NAMESPACE:
				if (((struct ns_obj *)n)->gen != gen)
					namespace_drop(b, (struct ns_obj *)n);
				break;
			case TERN_K8S_POD:
				if (((struct pod_obj *)n)->gen != gen) {
					hmap_del(m, n);
					free(n);
					b->pods_dirty = true;
				}
				break;
			default:
				break;
			}
		}
	}
}

/* ---- retired snapshots -------------------------------------------------------------------- */

/*
 * ThreadSanitizer sees neither liburcu's hand-over of the entry to its call_rcu thread
 * nor the grace period: the entry is released before call_rcu and acquired by the
 * callback, which also acquires the token every reader releases at its quiescent
 * states (rcu.h), then releases `done`, which the builder acquires before freeing.
 */
static void retired_cb(struct rcu_head *head)
{
	struct retired *r = caa_container_of(head, struct retired, head);
	TERN_TSAN_ACQUIRE(r);
	TERN_TSAN_GRACE();
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
}

/*
 * @p old left its source: free it after a grace period. call_rcu never waits; liburcu
 * reads its per-CPU call_rcu data under the read lock, which is why its manual asks
 * QSBR callers to be online, but Tern creates none (every caller uses the default
 * call_rcu thread), so the offline or unregistered callers tern_cluster_builder_publish
 * allows are safe. Out of memory for the entry: wait for the grace period here.
 */
static void retire(struct tern_cluster_builder *b, struct tern_cluster *old)
{
	struct retired *r = calloc(1, sizeof(*r));
	if (!r) {
		tern_rcu_synchronize();
		tern_cluster_free(old);
		return;
	}
	r->snap = old;
	r->next = b->retired;
	b->retired = r;
	TERN_TSAN_RELEASE(r);
	urcu_qsbr_call_rcu(&r->head, retired_cb);
}

void tern_cluster_builder_reclaim(struct tern_cluster_builder *b)
{
	for (struct retired **p = &b->retired, *r; (r = *p);) {
		if (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
			p = &r->next;
			continue;
		}
		*p = r->next;
		tern_cluster_free(r->snap);
		free(r);
	}
}

/* Every retired snapshot, after waiting for the callbacks still due (builder_free). */
static void retired_drain(struct tern_cluster_builder *b)
{
	tern_cluster_builder_reclaim(b);
	if (!b->retired)
		return;
	urcu_qsbr_barrier();
	tern_cluster_builder_reclaim(b);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

struct tern_cluster_builder *tern_cluster_builder_new(const struct tern_cluster_source_conf *conf)
{
	struct tern_cluster_builder *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->conf = conf;
	if (hmap_init(&b->groups) < 0 || hmap_init(&b->slices) < 0 ||
	    hmap_init(&b->namespaces) < 0 || hmap_init(&b->pods) < 0) {
		tern_cluster_builder_free(b);
		return NULL;
	}
	return b;
}

static void hmap_free_all(struct hmap *m, size_t offset)
{
	if (!m->b)
		return;
	for (size_t i = 0; i <= m->mask; i++)
		for (struct hnode *n = m->b[i], *next; n; n = next) {
			next = n->next;
			free((char *)n - offset);
		}
	free(m->b);
}

void tern_cluster_builder_free(struct tern_cluster_builder *b)
{
	if (!b)
		return;
	if (b->groups.b)
		for (size_t i = 0; i <= b->groups.mask; i++)
			for (struct hnode *n = b->groups.b[i]; n; n = n->next)
				free(((struct group *)n)->svc);
	if (b->slices.b)
		for (size_t i = 0; i <= b->slices.mask; i++)
			for (struct hnode *n = b->slices.b[i]; n; n = n->next)
				tern_cluster_eps_release(((struct slice_obj *)n)->eps);
	hmap_free_all(&b->groups, offsetof(struct group, node));
	hmap_free_all(&b->slices, offsetof(struct slice_obj, node));
	hmap_free_all(&b->namespaces, offsetof(struct ns_obj, node));
	hmap_free_all(&b->pods, offsetof(struct pod_obj, node));
	tern_cluster_free(b->prev);
	retired_drain(b);
	free(b->eps);
	free(b->ports);
	free(b->pending);
	free(b);
}

void tern_cluster_builder_set_synced(struct tern_cluster_builder *b)
{
	b->synced = true;
}

bool tern_cluster_builder_dirty(const struct tern_cluster_builder *b)
{
	return !b->prev || b->dirty || b->ns_dirty || b->pods_dirty ||
	       tern_cluster_synced(b->prev) != b->synced;
}

/* ---- records ---------------------------------------------------------------------------- */

static int port_cmp(const void *a, const void *b)
{
	const struct tern_cluster_port *x = a, *y = b;
	int r = strcmp(x->name, y->name);
	if (r)
		return r;
	r = strcmp(x->proto, y->proto);
	return r ? r : (int)x->port - (int)y->port;
}

static int scratch_reserve(struct tern_cluster_builder *b, size_t neps, size_t nports)
{
	if (neps > b->eps_cap) {
		size_t cap = neps + neps / 2 + 16;
		void *p = realloc(b->eps, cap * sizeof(b->eps[0]));
		if (!p)
			return TERN_ENOMEM;
		b->eps = p;
		b->eps_cap = cap;
	}
	if (nports > b->ports_cap) {
		size_t cap = nports + nports / 2 + 16;
		void *p = realloc(b->ports, cap * sizeof(b->ports[0]));
		if (!p)
			return TERN_ENOMEM;
		b->ports = p;
		b->ports_cap = cap;
	}
	return TERN_EOK;
}

static char *pool_put(char **pool, const char *s)
{
	size_t len = strlen(s) + 1;
	char *out = memcpy(*pool, s, len);
	*pool += len;
	return out;
}

/**
 * The endpoints of group @p g into *out (NULL: none): the block of its one slice with
 * endpoints, shared (the common case), or a new block merging several (dual-stack
 * Services, more than a slice's worth of endpoints).
 */
static int group_eps(struct tern_cluster_builder *b, const struct group *g,
                     struct tern_cluster_eps **out)
{
	struct tern_cluster_eps *only = NULL;
	size_t n = 0, blocks = 0;
	*out = NULL;
	for (const struct slice_obj *sl = g->slices; sl; sl = sl->next) {
		if (!sl->eps || !sl->eps->n)
			continue;
		only = sl->eps;
		n += sl->eps->n;
		blocks++;
	}
	if (blocks <= 1) {
		if (only)
			tern_cluster_eps_hold(only);
		*out = only;
		return TERN_EOK;
	}
	if (scratch_reserve(b, n, 0) < 0)
		return TERN_ENOMEM;
	n = 0;
	for (const struct slice_obj *sl = g->slices; sl; sl = sl->next) {
		if (!sl->eps)
			continue;
		memcpy(&b->eps[n], sl->eps->v, sl->eps->n * sizeof(b->eps[0]));
		n += sl->eps->n;
	}
	n = eps_canonical(b->eps, n);
	size_t strbytes = 0;
	for (size_t i = 0; i < n; i++)
		strbytes += strlen(b->eps[i].hostname) + 1;
	char *pool;
	struct tern_cluster_eps *e = tern_cluster_eps_alloc(n, strbytes, &pool);
	if (!e)
		return TERN_ENOMEM;
	for (size_t i = 0; i < n; i++)
		e->v[i] = (struct tern_cluster_ep){ .ip = b->eps[i].ip,
			.hostname = pool_put(&pool, b->eps[i].hostname) };
	*out = e;
	return TERN_EOK;
}

/** The record of group @p g (which has a Service): one block, refs = 1. */
static int record_new(struct tern_cluster_builder *b, const struct group *g,
                      struct tern_cluster_svc **out)
{
	const struct svc_obj *so = g->svc;
	size_t nports = 0;
	for (const struct slice_obj *sl = g->slices; sl; sl = sl->next)
		nports += sl->nports;
	if (scratch_reserve(b, 0, nports) < 0)
		return TERN_ENOMEM;
	size_t np = 0;
	for (const struct slice_obj *sl = g->slices; sl; sl = sl->next) {
		if (sl->nports)
			memcpy(&b->ports[np], sl->ports, sl->nports * sizeof(b->ports[0]));
		np += sl->nports;
	}
	/* Merge the slices' ports: sort, then drop duplicates. */
	if (np > 1)
		qsort(b->ports, np, sizeof(b->ports[0]), port_cmp);
	size_t u = 0;
	for (size_t i = 0; i < np; i++)
		if (u == 0 || port_cmp(&b->ports[u - 1], &b->ports[i]) != 0)
			b->ports[u++] = b->ports[i];
	np = u;

	size_t strbytes = strlen(g->ns) + strlen(g->name) + 2 + so->strbytes;
	for (size_t i = 0; i < np; i++)
		strbytes += strlen(b->ports[i].name) + strlen(b->ports[i].proto) + 2;
	size_t payload = (so->nports + np) * sizeof(struct tern_cluster_port) +
	                 so->ncluster_ips * sizeof(struct tern_ip) + so->external_len + strbytes;
	struct tern_cluster_eps *eps;
	if (group_eps(b, g, &eps) < 0)
		return TERN_ENOMEM;
	void *area;
	struct tern_cluster_svc *svc = tern_cluster_svc_alloc(payload, &area, eps);
	if (!svc) {
		tern_cluster_eps_release(eps);
		return TERN_ENOMEM;
	}
	struct tern_cluster_port *ports = area;
	struct tern_cluster_port *ep_ports = ports + so->nports;
	struct tern_ip *ips = (struct tern_ip *)(ep_ports + np);
	uint8_t *ext = (uint8_t *)(ips + so->ncluster_ips);
	char *pool = (char *)(ext + so->external_len);

	svc->ns = pool_put(&pool, g->ns);
	svc->name = pool_put(&pool, g->name);
	svc->kind = so->kind;
	memcpy(ips, so->cluster_ips, so->ncluster_ips * sizeof(ips[0]));
	svc->cluster_ips = so->ncluster_ips ? ips : NULL;
	svc->ncluster_ips = so->ncluster_ips;
	if (so->external_len) {
		memcpy(ext, so->external_name, so->external_len);
		svc->external_name = ext;
	}
	for (unsigned i = 0; i < so->nports; i++)
		ports[i] = (struct tern_cluster_port){ .port = so->ports[i].port,
			.name = pool_put(&pool, so->ports[i].name),
			.proto = pool_put(&pool, so->ports[i].proto) };
	svc->ports = ports;
	svc->nports = so->nports;
	for (size_t i = 0; i < np; i++)
		ep_ports[i] = (struct tern_cluster_port){ .port = b->ports[i].port,
			.name = pool_put(&pool, b->ports[i].name),
			.proto = pool_put(&pool, b->ports[i].proto) };
	svc->ep_ports = ep_ports;
	svc->nep_ports = (unsigned)np;
	tern_cluster_svc_seal(svc);
	*out = svc;
	return TERN_EOK;
}

static bool record_equal(const struct tern_cluster_svc *a, const struct tern_cluster_svc *b)
{
	if (a->kind != b->kind || a->ncluster_ips != b->ncluster_ips ||
	    a->nports != b->nports || a->nep_ports != b->nep_ports || a->neps != b->neps)
		return false;
	if (a->ncluster_ips &&
	    memcmp(a->cluster_ips, b->cluster_ips, a->ncluster_ips * sizeof(a->cluster_ips[0])) != 0)
		return false;
	if (!a->external_name != !b->external_name ||
	    (a->external_name && !knot_dname_is_equal(a->external_name, b->external_name)))
		return false;
	return ports_equal(a->ports, b->ports, a->nports) &&
	       ports_equal(a->ep_ports, b->ep_ports, a->nep_ports) &&
	       eps_equal(a->eps, b->eps, a->neps);
}

/* ---- snapshots ------------------------------------------------------------------------------- */

/** The exposed namespaces, or NULL with *n = 0 when they equal @p prev's. */
static int collect_namespaces(struct tern_cluster_builder *b, const char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	const char **v = malloc((b->namespaces.n + 1) * sizeof(v[0]));
	if (!v)
		return TERN_ENOMEM;
	size_t k = 0;
	bool same = b->prev != NULL;
	for (size_t i = 0; i <= b->namespaces.mask; i++)
		for (struct hnode *h = b->namespaces.b[i]; h; h = h->next) {
			if (!ns_listed(b, h->key))
				continue;
			v[k++] = h->key;
			same = same && tern_cluster_has_namespace(b->prev, h->key, h->keylen);
		}
	struct tern_cluster_counts counts;
	tern_cluster_counts(b->prev, &counts);
	if (same && counts.namespaces == k) {
		free(v);
		return TERN_EOK;
	}
	*out = v;
	*n = k;
	return TERN_EOK;
}

static int collect_pods(struct tern_cluster_builder *b, struct tern_cluster_pod_key **out,
                        size_t *nkeys, size_t *npods)
{
	size_t cap = 1;
	for (size_t i = 0; i <= b->pods.mask; i++)
		for (struct hnode *h = b->pods.b[i]; h; h = h->next)
			cap += ((struct pod_obj *)h)->nips;
	struct tern_cluster_pod_key *v = malloc(cap * sizeof(v[0]));
	if (!v)
		return TERN_ENOMEM;
	size_t k = 0, pods = 0;
	for (size_t i = 0; i <= b->pods.mask; i++)
		for (struct hnode *h = b->pods.b[i]; h; h = h->next) {
			struct pod_obj *p = (struct pod_obj *)h;
			if (!ns_exposed(b, p->ns))
				continue;
			pods++;
			for (unsigned j = 0; j < p->nips; j++)
				v[k++] = (struct tern_cluster_pod_key){ .ns = p->ns, .ip = p->ips[j] };
		}
	*out = v;
	*nkeys = k;
	*npods = pods;
	return TERN_EOK;
}

static uint32_t next_serial(const struct tern_cluster *prev)
{
	uint32_t now = (uint32_t)time(NULL);
	if (!prev)
		return now;
	uint32_t last = tern_cluster_serial(prev);
	return now > last ? now : last + 1;
}

struct tern_cluster *tern_cluster_builder_snapshot(struct tern_cluster_builder *b)
{
	struct tern_cluster *prev = b->prev, *snap = NULL;
	size_t ndirty = 0;
	for (struct group *g = b->dirty; g; g = g->dirty_next)
		ndirty++;
	const struct tern_cluster_svc **removed = malloc((ndirty + 1) * sizeof(removed[0]));
	const struct tern_cluster_svc **added = malloc((ndirty + 1) * sizeof(added[0]));
	const char **nsv = NULL;
	struct tern_cluster_pod_key *pods = NULL;
	size_t nrem = 0, nadd = 0, nns = 0, npodkeys = 0, npods = 0;
	if (!removed || !added)
		goto out;

	for (struct group *g = b->dirty; g; g = g->dirty_next) {
		const struct tern_cluster_svc *old = prev ?
			tern_cluster_find_service(prev, g->ns, strlen(g->ns), g->name,
			                          strlen(g->name), NULL) : NULL;
		struct tern_cluster_svc *rec = NULL;
		if (g->svc && ns_exposed(b, g->ns) && record_new(b, g, &rec) < 0)
			goto out;
		if (old && rec && record_equal(old, rec)) {
			tern_cluster_svc_release(rec);   /* share the previous record */
			continue;
		}
		if (old)
			removed[nrem++] = old;
		if (rec)
			added[nadd++] = rec;
	}
	bool changed = nrem > 0 || nadd > 0;
	if ((b->ns_dirty || !prev) && collect_namespaces(b, &nsv, &nns) < 0)
		goto out;
	changed = changed || nsv;
	bool pods_new = b->conf->watch_pods && (b->pods_dirty || !prev);
	if (pods_new && collect_pods(b, &pods, &npodkeys, &npods) < 0)
		goto out;
	changed = changed || pods_new;

	struct tern_cluster_delta d = {
		.prev = prev,
		.removed = removed, .nremoved = nrem,
		.added = added, .nadded = nadd,
		.namespaces = nsv, .nnamespaces = nns,
		.pods_watched = b->conf->watch_pods,
		.pods = pods, .npods = npodkeys, .pod_count = npods,
		.synced = b->synced,
		.serial = changed || !prev ? next_serial(prev) : tern_cluster_serial(prev),
	};
	snap = tern_cluster_assemble(&d);
	if (!snap)
		goto out;
	nadd = 0;                        /* their references moved into the snapshot */

	/* Done: forget what was dirty, free groups that hold nothing any more. */
	for (struct group *g = b->dirty, *next; g; g = next) {
		next = g->dirty_next;
		g->dirty = false;
		g->dirty_next = NULL;
		group_free_if_empty(b, g);
	}
	b->dirty = NULL;
	b->ns_dirty = false;
	b->pods_dirty = false;
	tern_cluster_free(b->prev);
	b->prev = snap;
	tern_cluster_hold(snap);         /* one for the builder, one for the caller */
out:
	for (size_t i = 0; i < nadd; i++)
		tern_cluster_svc_release(added[i]);
	free(removed);
	free(added);
	free(nsv);
	free(pods);
	return snap;
}

/*
 * The calling thread must not be an online RCU reader: it is either not registered
 * with RCU at all, or registered and offline (tern_rcu_offline()) around this call.
 * Nothing here waits for readers: the previous snapshot is retired (freed after a
 * grace period, by tern_cluster_builder_reclaim() on this thread).
 * build_hist[k] counts publishes that took at most 0.0001 * 2^k s and more than the
 * bucket below (not cumulative); slower ones are only in `snapshots` (the +Inf bucket).
 */
int tern_cluster_builder_publish(struct tern_cluster_builder *b, struct tern_cluster_source *src)
{
	uint64_t t0 = tern_mono_ns();
	struct tern_cluster *snap = tern_cluster_builder_snapshot(b);
	if (!snap)
		return TERN_ENOMEM;
	struct tern_cluster *old = TERN_RCU_XCHG_SCOPED(&src->current, snap);
	programming_flush(b);
	if (old)
		retire(b, old);
	uint64_t dt = tern_mono_ns() - t0;
	struct tern_cluster_source_stats *st = &src->stats;
	__atomic_fetch_add(&st->snapshots, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st->build_ns_total, dt, __ATOMIC_RELAXED);
	uint64_t bound = 100000;         /* 0.0001 s */
	for (unsigned k = 0; k < TERN_ARRAY_LEN(st->build_hist); k++, bound *= 2) {
		if (dt <= bound) {
			__atomic_fetch_add(&st->build_hist[k], 1, __ATOMIC_RELAXED);
			break;
		}
	}
	tern_cluster_builder_reclaim(b);
	return TERN_EOK;
}
