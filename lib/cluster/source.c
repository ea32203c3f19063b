/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry of cluster sources: one per distinct watch configuration, shared by
 * every kubernetes plugin instance configured the same way (so a reload that keeps the
 * settings keeps the watch and its data). Sources are found by a canonical string of
 * all their settings; the registry is a plain list changed only by the loader thread
 * and read by the metrics scrape under a mutex (see source.h for why reap stops
 * watchers outside it). A source with no refs left is freed by
 * tern_cluster_sources_reap(), after the daemon's stop callback has joined its
 * watcher, together with its last snapshot. The metrics rendering of the sources (and
 * the process-wide DNS programming histogram the builder feeds) is at the end.
 * Thread: loader, except tern_cluster_source_snapshot() (workers, RCU read side) and
 * tern_cluster_sources_render() (HTTP thread, RCU read side).
 */
#include "lib/cluster/source.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/cluster/build.h"
#include "lib/cluster/internal.h"
#include "lib/core/attr.h"
#include "lib/core/clock.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"

static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tern_cluster_source *sources;   /* changed by the loader under sources_lock */

/* ---- canonical key -------------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = 2 * (b->len + n + 1) + 64;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/** "field=" then "-" for NULL or "<len>:<bytes>", then ";": unambiguous for any bytes. */
static void sb_field(struct sbuf *b, const char *field, const char *v)
{
	char num[32];
	sb_put(b, field, strlen(field));
	sb_put(b, "=", 1);
	if (!v) {
		sb_put(b, "-;", 2);
		return;
	}
	int n = snprintf(num, sizeof(num), "%zu:", strlen(v));
	sb_put(b, num, (size_t)n);
	sb_put(b, v, strlen(v));
	sb_put(b, ";", 1);
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/** The canonical form of @p c (namespaces as a sorted set). NULL when out of memory. */
static char *make_key(const struct tern_cluster_source_conf *c)
{
	struct sbuf b = { 0 };
	char num[64];
	sb_field(&b, "endpoint", c->endpoint);
	sb_field(&b, "tls_cert", c->tls_cert);
	sb_field(&b, "tls_key", c->tls_key);
	sb_field(&b, "tls_ca", c->tls_ca);
	sb_field(&b, "kubeconfig", c->kubeconfig);
	sb_field(&b, "context", c->context);
	sb_field(&b, "namespace_labels", c->namespace_labels);
	sb_field(&b, "labels", c->labels);
	char **ns = NULL;
	if (c->nnamespaces) {
		ns = malloc(c->nnamespaces * sizeof(ns[0]));
		if (!ns) {
			free(b.p);
			return NULL;
		}
		memcpy(ns, c->namespaces, c->nnamespaces * sizeof(ns[0]));
		qsort(ns, c->nnamespaces, sizeof(ns[0]), str_ptr_cmp);
	}
	snprintf(num, sizeof(num), "namespaces=%zu;", c->nnamespaces);
	sb_put(&b, num, strlen(num));
	for (size_t i = 0; i < c->nnamespaces; i++)
		sb_field(&b, "ns", ns[i]);
	free(ns);
	snprintf(num, sizeof(num), "pods=%d;endpoints=%d;pod_names=%d;startup=%llu;",
	         c->watch_pods, c->watch_endpoints, c->endpoint_pod_names,
	         (unsigned long long)c->startup_timeout_ms);
	sb_put(&b, num, strlen(num));
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- deep copies ---------------------------------------------------------------------- */

static bool dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

static void conf_deinit(struct tern_cluster_source_conf *c)
{
	free(c->endpoint);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c->kubeconfig);
	free(c->context);
	for (size_t i = 0; c->namespaces && i < c->nnamespaces; i++)
		free(c->namespaces[i]);
	free(c->namespaces);
	free(c->namespace_labels);
	free(c->labels);
	*c = (struct tern_cluster_source_conf){ 0 };
}

static int conf_copy(struct tern_cluster_source_conf *dst,
                     const struct tern_cluster_source_conf *src)
{
	*dst = (struct tern_cluster_source_conf){
		.watch_pods = src->watch_pods,
		.watch_endpoints = src->watch_endpoints,
		.endpoint_pod_names = src->endpoint_pod_names,
		.startup_timeout_ms = src->startup_timeout_ms,
	};
	bool ok = dup_str(&dst->endpoint, src->endpoint) &&
	          dup_str(&dst->tls_cert, src->tls_cert) &&
	          dup_str(&dst->tls_key, src->tls_key) &&
	          dup_str(&dst->tls_ca, src->tls_ca) &&
	          dup_str(&dst->kubeconfig, src->kubeconfig) &&
	          dup_str(&dst->context, src->context) &&
	          dup_str(&dst->namespace_labels, src->namespace_labels) &&
	          dup_str(&dst->labels, src->labels);
	if (ok && src->nnamespaces) {
		dst->namespaces = calloc(src->nnamespaces, sizeof(dst->namespaces[0]));
		ok = dst->namespaces != NULL;
		if (ok)
			dst->nnamespaces = src->nnamespaces;
		for (size_t i = 0; ok && i < src->nnamespaces; i++)
			ok = dup_str(&dst->namespaces[i], src->namespaces[i]);
	}
	if (!ok) {
		conf_deinit(dst);
		return -1;
	}
	return 0;
}

/* ---- registry ------------------------------------------------------------------------ */

struct tern_cluster_source *tern_cluster_source_get(const struct tern_cluster_source_conf *conf)
{
	char *key = make_key(conf);
	if (!key)
		return NULL;
	pthread_mutex_lock(&sources_lock);
	for (struct tern_cluster_source *s = sources; s; s = s->next) {
		if (strcmp(s->key, key) == 0) {
			s->refs++;
			pthread_mutex_unlock(&sources_lock);
			free(key);
			return s;
		}
	}
	struct tern_cluster_source *s = calloc(1, sizeof(*s));
	if (!s || conf_copy(&s->conf, conf) < 0) {
		pthread_mutex_unlock(&sources_lock);
		free(s);
		free(key);
		return NULL;
	}
	s->key = key;
	s->refs = 1;
	s->next = sources;
	sources = s;
	pthread_mutex_unlock(&sources_lock);
	return s;
}

void tern_cluster_source_put(struct tern_cluster_source *src)
{
	if (!src)
		return;
	pthread_mutex_lock(&sources_lock);
	if (src->refs > 0)
		src->refs--;
	pthread_mutex_unlock(&sources_lock);
}

const struct tern_cluster *tern_cluster_source_snapshot(const struct tern_cluster_source *src)
{
	return TERN_RCU_DEREF(src->current);
}

void tern_cluster_sources_foreach(void (*fn)(struct tern_cluster_source *src, void *ctx),
                                  void *ctx)
{
	pthread_mutex_lock(&sources_lock);
	struct tern_cluster_source *s = sources;
	pthread_mutex_unlock(&sources_lock);
	while (s) {
		pthread_mutex_lock(&sources_lock);
		struct tern_cluster_source *next = s->next;
		pthread_mutex_unlock(&sources_lock);
		fn(s, ctx);   /* without the mutex: @p fn may join a watcher (source.h) */
		s = next;
	}
}

/*
 * The caller guarantees no worker still reads these sources' snapshots (the views
 * that used them were retired after a grace period). Unused sources are unlinked
 * under the mutex, so the scrape cannot reach them any more; then, without it (a
 * watcher being joined may be waiting for a grace period that waits for a scrape
 * that waits for the mutex), @p stop joins each watcher, and the snapshot and its
 * records are freed here with no other thread touching them.
 */
void tern_cluster_sources_reap(void (*stop)(struct tern_cluster_source *src))
{
	struct tern_cluster_source *dead = NULL;
	pthread_mutex_lock(&sources_lock);
	for (struct tern_cluster_source **p = &sources; *p;) {
		struct tern_cluster_source *s = *p;
		if (s->refs > 0) {
			p = &s->next;
			continue;
		}
		*p = s->next;
		s->next = dead;
		dead = s;
	}
	pthread_mutex_unlock(&sources_lock);
	while (dead) {
		struct tern_cluster_source *s = dead;
		dead = s->next;
		if (stop)
			stop(s);
		tern_cluster_free(s->current);
		conf_deinit(&s->conf);
		free(s->key);
		free(s);
	}
}

/* ---- metrics ------------------------------------------------------------------------ */

/* CoreDNS: prometheus.ExponentialBuckets(0.001, 2, 20), 1 ms to ~17 minutes. */
#define PROG_BUCKETS   20
#define PROG_BASE_S    0.001
#define BUILD_BASE_NS  100000ull   /* build_hist[k]: at most 0.0001 s * 2^k */

/* Process-wide, as CoreDNS's histogram is; non-cumulative buckets, relaxed atomics. */
static struct {
	uint64_t bucket[PROG_BUCKETS];
	uint64_t count;
	uint64_t sum_ns;
} prog;

void tern_cluster_programming_observe(double seconds)
{
	if (!(seconds > 0))
		seconds = 0;   /* skew, or NaN */
	double bound = PROG_BASE_S;
	for (unsigned k = 0; k < PROG_BUCKETS; k++, bound *= 2) {
		if (seconds <= bound) {
			__atomic_fetch_add(&prog.bucket[k], 1, __ATOMIC_RELAXED);
			break;
		}
	}
	double ns = seconds * 1e9;
	uint64_t add = ns < 1.8e19 ? (uint64_t)ns : UINT64_MAX / 2;
	__atomic_fetch_add(&prog.sum_ns, add, __ATOMIC_RELAXED);
	__atomic_fetch_add(&prog.count, 1, __ATOMIC_RELAXED);
}

/** One source as the scrape saw it: counters copied, snapshot pinned by RCU. */
struct row {
	const struct tern_cluster_source *src;
	const struct tern_cluster *snap;     /* NULL before the first publish */
	struct tern_cluster_source_stats st;
	bool dup;                            /* another source has the same label base */
};

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void stats_copy(struct tern_cluster_source_stats *dst,
                       const struct tern_cluster_source_stats *src)
{
	for (unsigned i = 0; i < TERN_ARRAY_LEN(src->api_requests); i++)
		dst->api_requests[i] = ld(&src->api_requests[i]);
	/* Buckets before the totals: a publish racing the scrape then shows up in the
	 * totals first, and clamping the count to the buckets' sum keeps +Inf >= every le. */
	for (unsigned i = 0; i < TERN_ARRAY_LEN(src->build_hist); i++)
		dst->build_hist[i] = ld(&src->build_hist[i]);
	dst->watch_restarts = ld(&src->watch_restarts);
	dst->relists_gone = ld(&src->relists_gone);
	dst->relists_error = ld(&src->relists_error);
	dst->decode_errors = ld(&src->decode_errors);
	dst->snapshots = ld(&src->snapshots);
	dst->build_ns_total = ld(&src->build_ns_total);
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether two sources get the same source label before disambiguation. */
static bool same_label(const struct tern_cluster_source_conf *a,
                       const struct tern_cluster_source_conf *b)
{
	if (a->kubeconfig || b->kubeconfig)
		return str_eq(a->kubeconfig, b->kubeconfig) && str_eq(a->context, b->context);
	return str_eq(a->endpoint, b->endpoint);
}

static uint32_t key_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

/* source="..." (no braces): the settings that say where the watch goes. */
static void put_source(FILE *out, const struct row *r)
{
	const struct tern_cluster_source_conf *c = &r->src->conf;
	fputs("source=\"", out);
	if (c->kubeconfig) {          /* the kubeconfig wins over endpoint */
		fputs("kubeconfig:", out);
		tern_stats_put_label(out, c->kubeconfig);
		if (c->context) {
			fputs("?context=", out);
			tern_stats_put_label(out, c->context);
		}
	} else if (c->endpoint) {
		tern_stats_put_label(out, c->endpoint);
	} else {
		fputs("in-cluster", out);
	}
	if (r->dup)
		fprintf(out, "#%08" PRIx32, key_hash(r->src->key));
	fputc('"', out);
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per row of a per-source counter; @p field picks it from the copy. */
static void render_counter(FILE *out, const struct row *rows, size_t n, const char *name,
                           const char *help, size_t field)
{
	family(out, name, "counter", help);
	for (size_t i = 0; i < n; i++) {
		uint64_t v = *(const uint64_t *)((const char *)&rows[i].st + field);
		fprintf(out, "%s{", name);
		put_source(out, &rows[i]);
		fprintf(out, "} %" PRIu64 "\n", v);
	}
}

static void render_programming(FILE *out)
{
	static const char name[] = "coredns_kubernetes_dns_programming_duration_seconds";
	static const char labels[] = "service_kind=\"headless_with_selector\"";
	uint64_t cum = 0;
	family(out, name, "histogram",
	       "Histogram of the time (in seconds) it took to program a dns instance.");
	double bound = PROG_BASE_S;
	for (unsigned k = 0; k < PROG_BUCKETS; k++, bound *= 2) {
		cum += ld(&prog.bucket[k]);
		fprintf(out, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, labels, bound, cum);
	}
	uint64_t sum_ns = ld(&prog.sum_ns), count = ld(&prog.count);
	if (count < cum)
		count = cum;
	fprintf(out, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, count);
	fprintf(out, "%s_sum{%s} %.9f\n", name, labels, (double)sum_ns / 1e9);
	fprintf(out, "%s_count{%s} %" PRIu64 "\n", name, labels, count);
}

static void render_build(FILE *out, const struct row *rows, size_t n)
{
	static const char name[] = "tern_kubernetes_snapshot_build_seconds";
	family(out, name, "histogram",
	       "Histogram of the time (in seconds) to build and publish a cluster snapshot "
	       "(the previous one is freed later, after a grace period).");
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		uint64_t cum = 0;
		for (unsigned k = 0; k < TERN_ARRAY_LEN(r->st.build_hist); k++) {
			cum += r->st.build_hist[k];
			fprintf(out, "%s_bucket{", name);
			put_source(out, r);
			fprintf(out, ",le=\"%g\"} %" PRIu64 "\n",
			        (double)(BUILD_BASE_NS << k) / 1e9, cum);
		}
		uint64_t count = r->st.snapshots < cum ? cum : r->st.snapshots;
		fprintf(out, "%s_bucket{", name);
		put_source(out, r);
		fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n%s_sum{", count, name);
		put_source(out, r);
		fprintf(out, "} %.9f\n%s_count{", (double)r->st.build_ns_total / 1e9, name);
		put_source(out, r);
		fprintf(out, "} %" PRIu64 "\n", count);
	}
}

static void render_state(FILE *out, const struct row *rows, size_t n)
{
	uint64_t now = tern_mono_ms();
	bool head = false;
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].snap)
			continue;
		if (!head) {
			family(out, "tern_kubernetes_snapshot_age_seconds", "gauge",
			       "Seconds since the cluster snapshot answering queries was "
			       "published.");
			head = true;
		}
		uint64_t pub = tern_cluster_published_ms(rows[i].snap);
		fputs("tern_kubernetes_snapshot_age_seconds{", out);
		put_source(out, &rows[i]);
		fprintf(out, "} %.3f\n", now > pub ? (double)(now - pub) / 1e3 : 0.0);
	}
	family(out, "tern_kubernetes_synced", "gauge",
	       "1 once every watched kind was listed completely and published, else 0.");
	for (size_t i = 0; i < n; i++) {
		fputs("tern_kubernetes_synced{", out);
		put_source(out, &rows[i]);
		fprintf(out, "} %d\n", rows[i].snap && tern_cluster_synced(rows[i].snap));
	}
	head = false;
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].snap)
			continue;
		if (!head) {
			family(out, "tern_kubernetes_objects", "gauge",
			       "Objects in the published cluster snapshot, by kind.");
			head = true;
		}
		struct tern_cluster_counts c;
		tern_cluster_counts(rows[i].snap, &c);
		const struct {
			const char *kind;
			size_t v;
		} kinds[] = {
			{ "services", c.services }, { "endpoints", c.endpoints },
			{ "namespaces", c.namespaces }, { "pods", c.pods },
		};
		for (unsigned k = 0; k < TERN_ARRAY_LEN(kinds); k++) {
			fputs("tern_kubernetes_objects{", out);
			put_source(out, &rows[i]);
			fprintf(out, ",kind=\"%s\"} %zu\n", kinds[k].kind, kinds[k].v);
		}
	}
}

static void render_labelled(FILE *out, const struct row *rows, size_t n)
{
	static const char *const classes[] = { "error", "1xx", "2xx", "3xx", "4xx", "5xx" };
	_Static_assert(TERN_ARRAY_LEN(classes) ==
	               TERN_ARRAY_LEN(((struct tern_cluster_source_stats *)0)->api_requests),
	               "one label per api_requests class");
	family(out, "tern_kubernetes_relists_total", "counter",
	       "Lists started over from scratch, by reason: gone (410, resourceVersion too "
	       "old) or error (an error event, garbage or a failed apply).");
	for (size_t i = 0; i < n; i++) {
		fputs("tern_kubernetes_relists_total{", out);
		put_source(out, &rows[i]);
		fprintf(out, ",reason=\"gone\"} %" PRIu64 "\n", rows[i].st.relists_gone);
		fputs("tern_kubernetes_relists_total{", out);
		put_source(out, &rows[i]);
		fprintf(out, ",reason=\"error\"} %" PRIu64 "\n", rows[i].st.relists_error);
	}
	family(out, "tern_kubernetes_api_requests_total", "counter",
	       "Requests to the Kubernetes API finished, by HTTP status class "
	       "(error: no HTTP status, e.g. connection refused or timed out).");
	for (size_t i = 0; i < n; i++) {
		for (unsigned c = 0; c < TERN_ARRAY_LEN(classes); c++) {
			fputs("tern_kubernetes_api_requests_total{", out);
			put_source(out, &rows[i]);
			fprintf(out, ",code=\"%s\"} %" PRIu64 "\n", classes[c],
			        rows[i].st.api_requests[c]);
		}
	}
}

void tern_cluster_sources_render(FILE *out)
{
	pthread_mutex_lock(&sources_lock);
	size_t n = 0;
	for (const struct tern_cluster_source *s = sources; s; s = s->next)
		n++;
	struct row *rows = n ? calloc(n, sizeof(rows[0])) : NULL;
	if (n && !rows) {
		pthread_mutex_unlock(&sources_lock);
		return;
	}
	size_t i = 0;
	for (struct tern_cluster_source *s = sources; s; s = s->next, i++) {
		rows[i].src = s;
		rows[i].snap = TERN_RCU_DEREF(s->current);
		stats_copy(&rows[i].st, &s->stats);
		for (size_t j = 0; j < i; j++) {
			if (same_label(&rows[j].src->conf, &s->conf))
				rows[i].dup = rows[j].dup = true;
		}
	}
	if (n || ld(&prog.count))
		render_programming(out);
	if (n) {
		render_build(out, rows, n);
		render_state(out, rows, n);
		render_counter(out, rows, n, "tern_kubernetes_snapshots_total",
		               "Cluster snapshots published.",
		               offsetof(struct tern_cluster_source_stats, snapshots));
		render_counter(out, rows, n, "tern_kubernetes_watch_restarts_total",
		               "Watch streams that ended (server timeout, cut, garbage) and "
		               "were resumed from the last resourceVersion.",
		               offsetof(struct tern_cluster_source_stats, watch_restarts));
		render_counter(out, rows, n, "tern_kubernetes_decode_errors_total",
		               "Garbage, truncated or unexpected JSON from the API that was "
		               "dropped.",
		               offsetof(struct tern_cluster_source_stats, decode_errors));
		render_labelled(out, rows, n);
	}
	pthread_mutex_unlock(&sources_lock);
	free(rows);
}
