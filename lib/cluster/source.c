/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry of cluster sources: one per distinct watch configuration, shared by
 * every kubernetes plugin instance configured the same way (so a reload that keeps the
 * settings keeps the watch and its data). Sources are found by a canonical string of
 * all their settings; the registry is a plain list touched only by the loader thread.
 * A source with no refs left is freed by tern_cluster_sources_reap(), after the
 * daemon's stop callback has joined its watcher, together with its last snapshot.
 * Thread: loader, except tern_cluster_source_snapshot() (workers, RCU read side).
 */
#include "lib/cluster/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cluster/build.h"
#include "lib/core/rcu.h"

static struct tern_cluster_source *sources;

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
	for (struct tern_cluster_source *s = sources; s; s = s->next) {
		if (strcmp(s->key, key) == 0) {
			free(key);
			s->refs++;
			return s;
		}
	}
	struct tern_cluster_source *s = calloc(1, sizeof(*s));
	if (!s || conf_copy(&s->conf, conf) < 0) {
		free(s);
		free(key);
		return NULL;
	}
	s->key = key;
	s->refs = 1;
	s->next = sources;
	sources = s;
	return s;
}

void tern_cluster_source_put(struct tern_cluster_source *src)
{
	if (src && src->refs > 0)
		src->refs--;
}

const struct tern_cluster *tern_cluster_source_snapshot(const struct tern_cluster_source *src)
{
	return TERN_RCU_DEREF(src->current);
}

void tern_cluster_sources_foreach(void (*fn)(struct tern_cluster_source *src, void *ctx),
                                  void *ctx)
{
	for (struct tern_cluster_source *s = sources, *next; s; s = next) {
		next = s->next;
		fn(s, ctx);
	}
}

/*
 * The caller guarantees no worker still reads these sources' snapshots (the views
 * that used them were retired after a grace period); @p stop joins the watcher, so
 * the snapshot and its records are freed here with no other thread touching them.
 */
void tern_cluster_sources_reap(void (*stop)(struct tern_cluster_source *src))
{
	for (struct tern_cluster_source **p = &sources; *p;) {
		struct tern_cluster_source *s = *p;
		if (s->refs > 0) {
			p = &s->next;
			continue;
		}
		if (stop)
			stop(s);
		*p = s->next;
		tern_cluster_free(s->current);
		conf_deinit(&s->conf);
		free(s->key);
		free(s);
	}
}
