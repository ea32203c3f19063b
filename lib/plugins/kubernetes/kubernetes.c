/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kubernetes plugin: the Kubernetes DNS spec (schema 1.1.0) plus CoreDNS's
 * kubernetes-plugin behaviour where the spec is silent, answered from the cluster
 * snapshot of a cluster source (lib/cluster/). init (loader) checks the options, turns
 * the zones into wire form with their SOA/NS rdata ready, and asks for the source that
 * watches the API with these settings (identical settings share a source, so a reload
 * does not relist); deinit gives the source back. The instance is read-only once the
 * view is published. query (worker, RCU read side) classifies the lowercase question
 * name (names.c), looks it up in the snapshot of this turn and writes the answer
 * (records.c). ready (HTTP thread, RCU read side) reports the first complete sync.
 * Hot path: no malloc, no locks, no syscalls; RRsets live in the request's arena.
 */
#include "lib/plugins/kubernetes/kubernetes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>

#include "lib/cluster/snapshot.h"
#include "lib/cluster/source.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/dns/answer.h"
#include "lib/dns/name.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/plugins/kubernetes/internal.h"

#define K8S_DEFAULT_TTL        5
#define K8S_MAX_TTL            3600
#define K8S_DEFAULT_STARTUP_MS 5000

/* ---- schema ------------------------------------------------------------------------ */

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_strval_t pods_strings[] = {
	{ "disabled", TERN_KUBERNETES_PODS_DISABLED },
	{ "insecure", TERN_KUBERNETES_PODS_INSECURE },
	{ "verified", TERN_KUBERNETES_PODS_VERIFIED },
};

static const cyaml_schema_field_t tls_fields[] = {
	CYAML_FIELD_STRING_PTR("cert", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_tls_conf,
	                       cert, 1, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("key", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_tls_conf,
	                       key, 1, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("ca", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_tls_conf,
	                       ca, 1, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

const cyaml_schema_field_t tern_kubernetes_conf_fields[] = {
	CYAML_FIELD_SEQUENCE("zones", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_kubernetes_conf, zones, &string_entry, 0,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("endpoint", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                       endpoint, 1, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING_PTR("tls", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf, tls,
	                        tls_fields),
	CYAML_FIELD_STRING_PTR("kubeconfig", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                       kubeconfig, 1, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("context", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                       context, 1, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("namespaces", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_kubernetes_conf, namespaces, &string_entry, 0,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("namespace_labels", CYAML_FLAG_OPTIONAL,
	                       struct tern_kubernetes_conf, namespace_labels, 1, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("labels", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                       labels, 1, CYAML_UNLIMITED),
	CYAML_FIELD_ENUM("pods", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf, pods,
	                 pods_strings, CYAML_ARRAY_LEN(pods_strings)),
	CYAML_FIELD_BOOL("endpoint_pod_names", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                 endpoint_pod_names),
	CYAML_FIELD_UINT_PTR("ttl", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf, ttl),
	CYAML_FIELD_BOOL("noendpoints", CYAML_FLAG_OPTIONAL, struct tern_kubernetes_conf,
	                 noendpoints),
	CYAML_FIELD_SEQUENCE("fallthrough", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_kubernetes_conf, fallthrough, &string_entry, 0,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_BOOL("ignore_empty_service", CYAML_FLAG_OPTIONAL,
	                 struct tern_kubernetes_conf, ignore_empty_service),
	CYAML_FIELD_STRING_PTR("startup_timeout", CYAML_FLAG_OPTIONAL,
	                       struct tern_kubernetes_conf, startup_timeout, 1, 32),
	CYAML_FIELD_END
};

/* ---- control plane --------------------------------------------------------------- */

static void k8s_free(struct k8s *k)
{
	if (k == NULL)
		return;
	if (k->src != NULL)
		tern_cluster_source_put(k->src);
	for (size_t i = 0; i < k->nzones; i++) {
		free(k->zones[i].name);
		free(k->zones[i].soa_rdata);
		free(k->zones[i].ns_name);
	}
	free(k->zones);
	for (size_t i = 0; i < k->nfall; i++)
		free(k->fall[i]);
	free(k->fall);
	free(k);
}

/* Lowercase wire form of a presentation name ("cluster.local" is taken as FQDN). */
static knot_dname_t *name_from_str(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return NULL;
	knot_dname_t *name = knot_dname_from_str_alloc(s);
	if (name != NULL)
		knot_dname_to_lower(name);
	return name;
}

/* @prefix (presentation, relative) + @zone as a fresh lowercase wire name. */
static knot_dname_t *name_join(const char *prefix, const knot_dname_t *zone)
{
	knot_dname_storage_t buf;
	knot_dname_t *p = knot_dname_from_str(buf, prefix, sizeof(buf));
	if (p == NULL)
		return NULL;
	size_t plen = knot_dname_size(p) - 1; /* without the root label */
	size_t zlen = knot_dname_size(zone);
	if (plen + zlen > KNOT_DNAME_MAXLEN)
		return NULL;
	knot_dname_t *out = malloc(plen + zlen);
	if (out == NULL)
		return NULL;
	memcpy(out, p, plen);
	memcpy(out + plen, zone, zlen);
	return out;
}

/* SOA rdata of @z with serial 0 (patched per answer), and its NS target. */
static int zone_prepare(struct k8s_zone *z, uint32_t minimum)
{
	z->labels = (size_t)knot_dname_labels(z->name, NULL);
	z->len = tern_name_len(z->name);
	z->reverse = tern_name_is_under(z->name, (const knot_dname_t *)K8S_IN_ADDR_ARPA) ||
	             tern_name_is_under(z->name, (const knot_dname_t *)K8S_IP6_ARPA);
	z->ns_name = name_join("ns.dns", z->name);
	knot_dname_t *mbox = name_join("hostmaster", z->name);
	if (z->ns_name == NULL || mbox == NULL) {
		free(mbox);
		return TERN_EINVAL;
	}
	size_t nlen = knot_dname_size(z->ns_name);
	size_t mlen = knot_dname_size(mbox);
	z->soa_len = nlen + mlen + 20;
	z->soa_rdata = malloc(z->soa_len);
	if (z->soa_rdata == NULL) {
		free(mbox);
		return TERN_ENOMEM;
	}
	uint8_t *w = z->soa_rdata;
	memcpy(w, z->ns_name, nlen);
	memcpy(w + nlen, mbox, mlen);
	free(mbox);
	uint8_t *nums = w + nlen + mlen;
	knot_wire_write_u32(nums, 0);            /* serial: from the snapshot */
	knot_wire_write_u32(nums + 4, 7200);     /* refresh */
	knot_wire_write_u32(nums + 8, 1800);     /* retry */
	knot_wire_write_u32(nums + 12, 86400);   /* expire */
	knot_wire_write_u32(nums + 16, minimum); /* minimum = the record TTL */
	return 0;
}

static int add_zones(struct k8s *k, char *const *names, size_t n, const char *key,
                     struct tern_diag *diag, bool *bad)
{
	k->zones = calloc(n ? n : 1, sizeof(*k->zones));
	if (k->zones == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		knot_dname_t *name = name_from_str(names[i]);
		if (name == NULL) {
			tern_diag_error(diag, key, "invalid zone name \"%s\"", names[i]);
			*bad = true;
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < k->nzones; j++)
			dup = dup || knot_dname_is_equal(k->zones[j].name, name);
		if (dup) {
			free(name);
			continue;
		}
		struct k8s_zone *z = &k->zones[k->nzones++];
		z->name = name;
		int ret = zone_prepare(z, k->ttl);
		if (ret == TERN_ENOMEM)
			return ret;
		if (ret != 0) {
			tern_diag_error(diag, key, "zone name \"%s\" is too long", names[i]);
			*bad = true;
		}
	}
	return 0;
}

/* Check the options and copy them into @k. Every problem goes to @diag. */
static int configure(struct k8s *k, const struct tern_kubernetes_conf *conf,
                     const struct tern_plugin_env *env, struct tern_diag *diag)
{
	bool bad = false;

	k->ttl = K8S_DEFAULT_TTL;
	if (conf->ttl != NULL) {
		if (*conf->ttl > K8S_MAX_TTL) {
			tern_diag_error(diag, "ttl", "must be 0..%u", K8S_MAX_TTL);
			bad = true;
		}
		k->ttl = *conf->ttl;
	}
	k->startup_ms = K8S_DEFAULT_STARTUP_MS;
	if (conf->startup_timeout != NULL &&
	    tern_parse_duration(conf->startup_timeout, &k->startup_ms) != 0) {
		tern_diag_error(diag, "startup_timeout",
		                "invalid duration \"%s\" (want e.g. \"5s\", \"500ms\", \"1m\")",
		                conf->startup_timeout);
		bad = true;
	}
	k->pods = conf->pods;
	k->noendpoints = conf->noendpoints;
	k->ignore_empty = conf->ignore_empty_service;

	if (conf->namespaces_count > 0 && conf->namespace_labels != NULL) {
		tern_diag_error(diag, "namespace_labels",
		                "namespaces and namespace_labels are mutually exclusive");
		bad = true;
	}
	for (unsigned i = 0; i < conf->namespaces_count; i++) {
		const char *ns = conf->namespaces[i];
		size_t len = strlen(ns);
		bool ok = len > 0 && len <= 63;
		for (size_t j = 0; ok && j < len; j++)
			ok = (ns[j] >= 'a' && ns[j] <= 'z') || (ns[j] >= '0' && ns[j] <= '9') ||
			     (ns[j] == '-' && j > 0 && j + 1 < len);
		if (!ok) {
			tern_diag_error(diag, "namespaces",
			                "\"%s\" is not a namespace name (RFC 1123 label)", ns);
			bad = true;
		}
	}
	if (conf->endpoint != NULL && strncmp(conf->endpoint, "https://", 8) != 0 &&
	    strncmp(conf->endpoint, "http://", 7) != 0) {
		tern_diag_error(diag, "endpoint", "must be an http:// or https:// URL");
		bad = true;
	}
	if (conf->context != NULL && conf->kubeconfig == NULL) {
		tern_diag_error(diag, "context", "needs kubeconfig");
		bad = true;
	}
	if (conf->tls != NULL) {
		const struct tern_kubernetes_tls_conf *t = conf->tls;
		if ((t->cert == NULL) != (t->key == NULL)) {
			tern_diag_error(diag, "tls", "cert and key go together");
			bad = true;
		}
		if (t->cert == NULL && t->key == NULL && t->ca == NULL) {
			tern_diag_error(diag, "tls", "give cert and key, ca, or all three");
			bad = true;
		}
		if (conf->endpoint == NULL)
			tern_warn("kubernetes: tls is only used with endpoint; ignored");
	}
	if (conf->endpoint != NULL && conf->kubeconfig != NULL)
		tern_warn("kubernetes: both endpoint and kubeconfig given; kubeconfig wins");

	/* Zones: the option's, else the server block's. */
	int ret;
	if (conf->zones_count > 0) {
		ret = add_zones(k, conf->zones, conf->zones_count, "zones", diag, &bad);
	} else {
		ret = add_zones(k, (char *const *)env->zones, env->nzones, "", diag, &bad);
	}
	if (ret != 0)
		return ret;
	k->primary = SIZE_MAX;
	for (size_t i = 0; i < k->nzones && k->primary == SIZE_MAX; i++) {
		if (!k->zones[i].reverse)
			k->primary = i;
	}
	if (k->primary == SIZE_MAX) {
		tern_diag_error(diag, conf->zones_count > 0 ? "zones" : "",
		                "at least one zone that is not a reverse zone is required");
		bad = true;
	}

	/* fallthrough: a list of zones; [] or absent = off; [.] = everywhere. */
	k->fall = calloc(conf->fallthrough_count ? conf->fallthrough_count : 1,
	                 sizeof(*k->fall));
	if (k->fall == NULL)
		return TERN_ENOMEM;
	for (unsigned i = 0; i < conf->fallthrough_count; i++) {
		knot_dname_t *name = name_from_str(conf->fallthrough[i]);
		if (name == NULL) {
			tern_diag_error(diag, "fallthrough", "invalid zone name \"%s\"",
			                conf->fallthrough[i]);
			bad = true;
			continue;
		}
		k->fall[k->nfall++] = name;
	}
	return bad ? TERN_ECONFIG : 0;
}

/* A config path made absolute under the config file's directory; NULL stays NULL. */
static int resolve_path(const char *path, const char *dir, char **out)
{
	*out = NULL;
	if (path == NULL)
		return 0;
	int n;
	if (path[0] != '/' && dir != NULL && dir[0] != '\0')
		n = asprintf(out, "%s/%s", dir, path);
	else
		n = asprintf(out, "%s", path);
	if (n < 0) {
		*out = NULL;
		return TERN_ENOMEM;
	}
	return 0;
}

/* Ask for the source of these watch settings (strings are deep-copied by the source). */
static int get_source(struct k8s *k, const struct tern_kubernetes_conf *conf,
                      const char *dir)
{
	struct tern_cluster_source_conf sc = {
		.endpoint = conf->endpoint,
		.context = conf->context,
		.namespaces = conf->namespaces,
		.nnamespaces = conf->namespaces_count,
		.namespace_labels = conf->namespace_labels,
		.labels = conf->labels,
		.watch_pods = conf->pods == TERN_KUBERNETES_PODS_VERIFIED,
		.watch_endpoints = !conf->noendpoints,
		.endpoint_pod_names = conf->endpoint_pod_names,
		.startup_timeout_ms = k->startup_ms,
	};
	const struct tern_kubernetes_tls_conf *tls = conf->tls;
	int ret = resolve_path(conf->kubeconfig, dir, &sc.kubeconfig);
	if (ret == 0 && tls != NULL)
		ret = resolve_path(tls->cert, dir, &sc.tls_cert);
	if (ret == 0 && tls != NULL)
		ret = resolve_path(tls->key, dir, &sc.tls_key);
	if (ret == 0 && tls != NULL)
		ret = resolve_path(tls->ca, dir, &sc.tls_ca);
	if (ret == 0) {
		k->src = tern_cluster_source_get(&sc);
		if (k->src == NULL)
			ret = TERN_ENOMEM;
	}
	free(sc.kubeconfig);
	free(sc.tls_cert);
	free(sc.tls_key);
	free(sc.tls_ca);
	return ret;
}

/*
 * struct tern_hot_scope's current(): the snapshot part an answer was built from is
 * unchanged in the snapshot published now (lib/cluster/snapshot.h), so a replay is
 * what the chain would answer, with the serial of now.
 */
static bool k8s_scope_current(const struct tern_hot_scope *scope, uint32_t part, uint64_t id,
                              uint64_t *seen, uint32_t *serial)
{
	const struct k8s *k = (const struct k8s *)scope;   /* its first member */
	const struct tern_cluster *c = tern_cluster_source_snapshot(k->src);
	return c != NULL && tern_cluster_part_unchanged(c, part, id, seen, serial);
}

static int k8s_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                    const struct tern_plugin_env *env, struct tern_diag *diag)
{
	const struct tern_kubernetes_conf *conf = conf_ptr;
	struct k8s *k = calloc(1, sizeof(*k));
	if (k == NULL)
		return TERN_ENOMEM;
	k->scope.current = k8s_scope_current;
	int ret = configure(k, conf, env, diag);
	if (ret == 0)
		ret = get_source(k, conf, env->config_dir);
	if (ret != 0) {
		k8s_free(k);
		return ret;
	}
	pi->data = k;
	return 0;
}

static void k8s_deinit(struct tern_plugin_inst *pi)
{
	k8s_free(pi->data);
	pi->data = NULL;
}

/* Ready after the first complete sync (CoreDNS's kubernetes Ready()). */
static bool k8s_ready(const struct tern_plugin_inst *pi)
{
	const struct k8s *k = pi->data;
	const struct tern_cluster *c = tern_cluster_source_snapshot(k->src);
	return c != NULL && tern_cluster_synced(c);
}

/* ---- data plane -------------------------------------------------------------------- */

static bool falls_through(const struct k8s *k, const knot_dname_t *name)
{
	for (size_t i = 0; i < k->nfall; i++) {
		if (tern_name_is_under(name, k->fall[i]))
			return true;
	}
	return false;
}

/*
 * Tell the hot answers which part of the snapshot this answer was read from (the
 * snapshot is published without advancing the epoch: TERN_RCU_XCHG_SCOPED). Before
 * the first sync nothing is kept; @p answered: this plugin wrote the answer (its SOA
 * serial then follows the snapshot's on replay).
 */
static void hot_scope(const struct k8s_query *q, bool answered)
{
	struct tern_hot_hint *h = &q->req->hot;
	if (h->scope != NULL || !tern_cluster_synced(q->c)) {
		h->deny = true;   /* a second scoped reader, or data still being listed */
		return;
	}
	h->scope = &q->k->scope;
	h->scope_part = q->part;
	h->scope_id = tern_cluster_part_id(q->c, q->part);
	h->scope_seen = tern_cluster_part_id(q->c, TERN_CLUSTER_PART_ALL);
	h->scope_serial = answered && q->serial;
}

static enum tern_verdict k8s_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct k8s *k = pi->data;
	if (req->qclass != KNOT_CLASS_IN)
		return TERN_NEXT;
	const struct k8s_zone *zone = k8s_find_zone(k, req->qname, req->qname_len);
	if (zone == NULL)
		return TERN_NEXT;
	if (req->qtype == KNOT_RRTYPE_AXFR || req->qtype == KNOT_RRTYPE_IXFR) {
		/* No transfer support: REFUSED, as CoreDNS without its transfer plugin. */
		tern_answer_by(req, pi->plugin_id);
		tern_answer_rcode(req, KNOT_RCODE_REFUSED);
		return TERN_DONE;
	}
	const struct tern_cluster *c = tern_cluster_source_snapshot(k->src);
	if (c == NULL)
		return TERN_FAIL; /* nothing listed yet: SERVFAIL, never NXDOMAIN */

	struct k8s_query q = {
		.req = req,
		.k = k,
		.c = c,
		.plugin_id = pi->plugin_id,
		.part = TERN_CLUSTER_PART_NONE,
	};
	k8s_room_init(&q);
	enum k8s_res res = k8s_resolve(&q, zone);
	if (res == K8S_RES_FAIL)
		return TERN_FAIL;
	if (res == K8S_RES_NXDOMAIN && q.written == 0) {
		if (falls_through(k, req->qname)) {
			hot_scope(&q, false);
			return TERN_NEXT;
		}
		if (!tern_cluster_synced(c))
			return TERN_FAIL; /* a name error before the first sync: SERVFAIL */
	}
	if (k8s_finish(&q, res) != 0)
		return TERN_FAIL;
	hot_scope(&q, true);
	return TERN_DONE;
}

TERN_PLUGIN_DEFINE(kubernetes,
	.hot = TERN_HOT_SKIP | TERN_HOT_PURE,
	.init = k8s_init,
	.deinit = k8s_deinit,
	.ready = k8s_ready,
	.query = k8s_query);
