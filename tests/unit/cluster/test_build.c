/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/cluster/build.c and snapshot.c: slim objects go into a builder,
 * snapshots come out, and every check reads them back through the public lookups
 * (snapshot.h) only: slice merging, readiness, endpoint names, ExternalName targets,
 * namespace filters, the PTR and pod indexes, relists, record and endpoint sharing
 * between snapshots, the serial, and publishing through a source with RCU (a publish
 * never waits for readers; the snapshot it replaced stays readable until they pass).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <libknot/libknot.h>

#include "lib/cluster/build.h"
#include "lib/cluster/snapshot.h"
#include "lib/cluster/source.h"
#include "lib/core/attr.h"
#include "lib/core/errcode.h"
#include "lib/core/rcu.h"

/* ---- helpers ---------------------------------------------------------------------- */

static struct tern_ip t_ip(const char *s)
{
	struct tern_ip ip = { 0 };
	if (inet_pton(AF_INET, s, ip.addr) == 1) {
		ip.family = AF_INET;
	} else {
		cr_assert_eq(inet_pton(AF_INET6, s, ip.addr), 1, "bad address %s", s);
		ip.family = AF_INET6;
	}
	return ip;
}

static bool t_ip_is(const struct tern_ip *ip, const char *s)
{
	struct tern_ip want = t_ip(s);
	size_t len = want.family == AF_INET ? 4 : 16;
	return ip->family == want.family && memcmp(ip->addr, want.addr, len) == 0;
}

static const struct tern_cluster_svc *t_find(const struct tern_cluster *c, const char *ns,
                                             const char *name)
{
	return tern_cluster_find_service(c, ns, strlen(ns), name, strlen(name), NULL);
}

static const struct tern_k8s_port tcp80[] = { { .name = "http", .protocol = "TCP", .port = 80 } };

static void t_service(struct tern_cluster_builder *b, const char *ns, const char *name,
                      const char *cip)
{
	struct tern_k8s_service s = {
		.ns = ns, .name = name,
		.kind = cip ? TERN_SVC_CLUSTER_IP : TERN_SVC_HEADLESS,
		.ports = tcp80, .nports = 1,
	};
	if (cip) {
		s.cluster_ips[0] = t_ip(cip);
		s.ncluster_ips = 1;
	}
	cr_assert_eq(tern_cluster_builder_service(b, &s), 0);
}

/** A slice of single-address ready endpoints "ip" or "ip=hostname". */
static void t_slice(struct tern_cluster_builder *b, const char *ns, const char *name,
                    const char *svc, const char *const *addrs, unsigned n)
{
	struct tern_ip ips[32];
	char hosts[32][64];
	struct tern_k8s_endpoint eps[32];
	cr_assert(n <= 32);
	for (unsigned i = 0; i < n; i++) {
		const char *eq = strchr(addrs[i], '=');
		char a[64];
		snprintf(a, sizeof(a), "%.*s", eq ? (int)(eq - addrs[i]) : 63, addrs[i]);
		ips[i] = t_ip(a);
		if (eq)
			snprintf(hosts[i], sizeof(hosts[i]), "%s", eq + 1);
		eps[i] = (struct tern_k8s_endpoint){ .addrs = &ips[i], .naddrs = 1,
			.hostname = eq ? hosts[i] : NULL, .ready = true };
	}
	struct tern_k8s_slice s = { .ns = ns, .name = name, .service = svc, .endpoints = eps,
		.nendpoints = n, .ports = tcp80, .nports = 1 };
	cr_assert_eq(tern_cluster_builder_slice(b, &s), 0);
}

static struct tern_cluster_source_conf t_conf;

static struct tern_cluster_builder *t_builder(void)
{
	t_conf = (struct tern_cluster_source_conf){ .watch_endpoints = true };
	struct tern_cluster_builder *b = tern_cluster_builder_new(&t_conf);
	cr_assert_not_null(b);
	return b;
}

/* ---- endpoints -------------------------------------------------------------------- */

Test(build, slices_merged_across_families)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "web", NULL);
	const char *v4[] = { "10.0.0.2=b", "10.0.0.1=a" };
	const char *v6[] = { "fd00::2=b", "fd00::1=a" };
	t_slice(b, "default", "web-v4", "web", v4, 2);
	t_slice(b, "default", "web-v6", "web", v6, 2);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	cr_assert_not_null(c);
	const struct tern_cluster_svc *s = t_find(c, "default", "web");
	cr_assert_not_null(s);
	cr_assert_eq(s->kind, TERN_SVC_HEADLESS);
	cr_assert_eq(s->neps, 4);
	/* sorted by hostname, then address (v4 before v6: family order) */
	cr_assert_str_eq(s->eps[0].hostname, "a");
	cr_assert(t_ip_is(&s->eps[0].ip, "10.0.0.1"));
	cr_assert_str_eq(s->eps[1].hostname, "a");
	cr_assert(t_ip_is(&s->eps[1].ip, "fd00::1"));
	cr_assert_str_eq(s->eps[2].hostname, "b");
	cr_assert(t_ip_is(&s->eps[3].ip, "fd00::2"));
	cr_assert_eq(s->nep_ports, 1, "same port in both slices counted once");
	cr_assert_str_eq(s->ep_ports[0].proto, "tcp");
	cr_assert_str_eq(s->ep_ports[0].name, "http");
	struct tern_cluster_counts counts;
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, 1);
	cr_assert_eq(counts.endpoints, 4);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, duplicate_endpoints_removed)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "web", NULL);
	const char *one[] = { "10.0.0.1=a", "10.0.0.2" };
	const char *two[] = { "10.0.0.1=a", "10.0.0.2", "10.0.0.1=other" };
	t_slice(b, "default", "web-1", "web", one, 2);
	t_slice(b, "default", "web-2", "web", two, 3);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s = t_find(c, "default", "web");
	cr_assert_not_null(s);
	cr_assert_eq(s->neps, 3, "(a,10.0.0.1) (other,10.0.0.1) (10-0-0-2,10.0.0.2)");
	cr_assert_str_eq(s->eps[0].hostname, "10-0-0-2");
	cr_assert_str_eq(s->eps[1].hostname, "a");
	cr_assert_str_eq(s->eps[2].hostname, "other");
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, only_ready_endpoints)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "web", NULL);
	struct tern_ip ips[3] = { t_ip("10.0.0.1"), t_ip("10.0.0.2"), t_ip("10.0.0.3") };
	struct tern_k8s_endpoint eps[3] = {
		{ .addrs = &ips[0], .naddrs = 1, .ready = true },
		{ .addrs = &ips[1], .naddrs = 1, .ready = false },
		/* the decoder maps an absent ready condition to true, as the API says */
		{ .addrs = &ips[2], .naddrs = 1, .ready = true },
	};
	struct tern_k8s_slice sl = { .ns = "default", .name = "web-x", .service = "web",
		.endpoints = eps, .nendpoints = 3 };
	cr_assert_eq(tern_cluster_builder_slice(b, &sl), 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s = t_find(c, "default", "web");
	cr_assert_eq(s->neps, 2);
	cr_assert(t_ip_is(&s->eps[0].ip, "10.0.0.1"));
	cr_assert(t_ip_is(&s->eps[1].ip, "10.0.0.3"));
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, hostname_derivation)
{
	struct tern_cluster_builder *b = t_builder();
	t_conf.endpoint_pod_names = true;
	t_service(b, "default", "web", NULL);
	char longpod[80];
	memset(longpod, 'p', 64);
	longpod[64] = '\0';
	struct tern_ip ips[5] = { t_ip("10.1.2.3"), t_ip("fd00::"), t_ip("fd00::1:2"),
		t_ip("10.9.9.9"), t_ip("10.8.8.8") };
	struct tern_k8s_endpoint eps[5] = {
		{ .addrs = &ips[0], .naddrs = 1, .ready = true, .pod_name = longpod },
		{ .addrs = &ips[1], .naddrs = 1, .ready = true },
		{ .addrs = &ips[2], .naddrs = 1, .ready = true },
		{ .addrs = &ips[3], .naddrs = 1, .ready = true, .pod_name = "Web-Pod-1" },
		{ .addrs = &ips[4], .naddrs = 1, .ready = true, .pod_name = "web-pod-2",
		  .hostname = "Explicit" },
	};
	struct tern_k8s_slice sl = { .ns = "default", .name = "web-x", .service = "web",
		.endpoints = eps, .nendpoints = 5 };
	cr_assert_eq(tern_cluster_builder_slice(b, &sl), 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s = t_find(c, "default", "web");
	cr_assert_eq(s->neps, 5);
	const char *want[] = { "10-1-2-3", "explicit", "fd00--0", "fd00--1-2", "web-pod-1" };
	for (unsigned i = 0; i < 5; i++)
		cr_assert_str_eq(s->eps[i].hostname, want[i], "ep %u: %s", i, s->eps[i].hostname);
	tern_cluster_free(c);

	/* Without endpoint_pod_names the pod name is not used. */
	t_conf.endpoint_pod_names = false;
	struct tern_cluster_builder *b2 = tern_cluster_builder_new(&t_conf);
	t_service(b2, "default", "web", NULL);
	cr_assert_eq(tern_cluster_builder_slice(b2, &sl), 0);
	c = tern_cluster_builder_snapshot(b2);
	s = t_find(c, "default", "web");
	cr_assert_str_eq(s->eps[1].hostname, "10-9-9-9", "the pod name is not used");
	tern_cluster_free(c);
	tern_cluster_builder_free(b2);
	tern_cluster_builder_free(b);
}

Test(build, headless_without_ready_endpoints)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "empty", NULL);
	t_slice(b, "default", "empty-1", "empty", NULL, 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s = t_find(c, "default", "empty");
	cr_assert_not_null(s, "the service exists; the plugin answers NXDOMAIN for 0 eps");
	cr_assert_eq(s->kind, TERN_SVC_HEADLESS);
	cr_assert_eq(s->neps, 0);
	cr_assert_eq(s->ncluster_ips, 0);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

/* ---- services --------------------------------------------------------------------- */

Test(build, cluster_ip_and_lookup_case)
{
	struct tern_cluster_builder *b = t_builder();
	struct tern_k8s_port ports[] = { { .name = "DNS", .protocol = "UDP", .port = 53 },
		{ .name = "", .protocol = "TCP", .port = 9153 } };
	struct tern_k8s_service s = { .ns = "Kube-System", .name = "Kube-DNS",
		.kind = TERN_SVC_CLUSTER_IP, .ncluster_ips = 2, .ports = ports, .nports = 2 };
	s.cluster_ips[0] = t_ip("10.96.0.10");
	s.cluster_ips[1] = t_ip("fd00:96::a");
	cr_assert_eq(tern_cluster_builder_service(b, &s), 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *r = t_find(c, "kube-system", "kube-dns");
	cr_assert_not_null(r);
	cr_assert_str_eq(r->ns, "kube-system");
	cr_assert_str_eq(r->name, "kube-dns");
	cr_assert_eq(r->ncluster_ips, 2);
	cr_assert(t_ip_is(&r->cluster_ips[0], "10.96.0.10"));
	cr_assert(t_ip_is(&r->cluster_ips[1], "fd00:96::a"));
	cr_assert_eq(r->nports, 2);
	cr_assert_str_eq(r->ports[0].name, "dns");
	cr_assert_str_eq(r->ports[0].proto, "udp");
	cr_assert_str_eq(r->ports[1].name, "");
	cr_assert_null(t_find(c, "kube-system", "kube-dn"));
	cr_assert_null(t_find(c, "kube-systen", "kube-dns"));
	cr_assert_null(t_find(c, "Kube-System", "kube-dns"), "lookups take lowercase bytes");
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, external_name)
{
	struct tern_cluster_builder *b = t_builder();
	const char *targets[] = { "My.Example.COM", "db.example.org.", "10.0.0.1", "2001:db8::1",
		"bad..name", "" };
	for (unsigned i = 0; i < TERN_ARRAY_LEN(targets); i++) {
		char name[16];
		snprintf(name, sizeof(name), "ext%u", i);
		struct tern_k8s_service s = { .ns = "default", .name = name,
			.kind = TERN_SVC_EXTERNAL_NAME, .external_name = targets[i] };
		cr_assert_eq(tern_cluster_builder_service(b, &s), 0);
	}
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s = t_find(c, "default", "ext0");
	cr_assert_eq(s->kind, TERN_SVC_EXTERNAL_NAME);
	cr_assert_not_null(s->external_name);
	cr_assert(knot_dname_is_equal(s->external_name,
	                              (const uint8_t *)"\2my\7example\3com"));
	s = t_find(c, "default", "ext1");
	cr_assert(knot_dname_is_equal(s->external_name, (const uint8_t *)"\2db\7example\3org"));
	for (unsigned i = 2; i < TERN_ARRAY_LEN(targets); i++) {
		char name[16];
		snprintf(name, sizeof(name), "ext%u", i);
		s = t_find(c, "default", name);
		cr_assert_not_null(s);
		cr_assert_eq(s->kind, TERN_SVC_EXTERNAL_NAME);
		cr_assert_null(s->external_name, "%s is not a host name", targets[i]);
	}
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, namespaces_filter)
{
	char *only[] = { "team-a" };
	t_conf = (struct tern_cluster_source_conf){ .watch_endpoints = true, .namespaces = only,
		.nnamespaces = 1, .watch_pods = true };
	struct tern_cluster_builder *b = tern_cluster_builder_new(&t_conf);
	cr_assert_eq(tern_cluster_builder_namespace(b, "team-a"), 0);
	cr_assert_eq(tern_cluster_builder_namespace(b, "team-b"), 0);
	t_service(b, "team-a", "web", "10.0.0.1");
	t_service(b, "team-b", "web", "10.0.0.2");
	struct tern_ip pip = t_ip("10.244.0.5");
	struct tern_k8s_pod p = { .ns = "team-b", .name = "x", .ips = &pip, .nips = 1 };
	cr_assert_eq(tern_cluster_builder_pod(b, &p), 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	cr_assert_not_null(t_find(c, "team-a", "web"));
	cr_assert_null(t_find(c, "team-b", "web"));
	cr_assert(tern_cluster_has_namespace(c, "team-a", 6));
	cr_assert_not(tern_cluster_has_namespace(c, "team-b", 6));
	cr_assert_not(tern_cluster_has_pod(c, "team-b", 6, &pip));
	const struct tern_cluster_ptr *ptr;
	struct tern_ip hidden = t_ip("10.0.0.2");
	cr_assert_eq(tern_cluster_find_ptr(c, &hidden, &ptr, NULL), 0);
	struct tern_cluster_counts counts;
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, 1);
	cr_assert_eq(counts.namespaces, 1);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, namespace_labels_gate_services)
{
	t_conf = (struct tern_cluster_source_conf){ .watch_endpoints = true,
		.namespace_labels = "dns=on" };
	struct tern_cluster_builder *b = tern_cluster_builder_new(&t_conf);
	t_service(b, "team-a", "web", "10.0.0.1");
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	cr_assert_null(t_find(c, "team-a", "web"), "namespace not (yet) selected");
	tern_cluster_free(c);
	cr_assert_eq(tern_cluster_builder_namespace(b, "team-a"), 0);
	c = tern_cluster_builder_snapshot(b);
	cr_assert_not_null(t_find(c, "team-a", "web"));
	tern_cluster_free(c);
	cr_assert_eq(tern_cluster_builder_namespace_delete(b, "team-a"), 0);
	c = tern_cluster_builder_snapshot(b);
	cr_assert_null(t_find(c, "team-a", "web"));
	cr_assert_not(tern_cluster_has_namespace(c, "team-a", 6));
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

/* ---- indexes ---------------------------------------------------------------------- */

Test(build, ptr_index_order)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "zeta", "10.0.0.9");
	t_service(b, "default", "alpha", NULL);
	t_service(b, "other", "beta", "10.0.0.10");
	const char *a[] = { "10.0.0.9=pod", "fd00::9" };
	t_slice(b, "default", "alpha-1", "alpha", a, 2);
	const char *z[] = { "10.0.0.9" };
	t_slice(b, "other", "beta-1", "beta", z, 1);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_ptr *ptr;
	struct tern_ip ip = t_ip("10.0.0.9");
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 3);
	cr_assert_str_eq(ptr[0].svc->name, "zeta");
	cr_assert_null(ptr[0].ep, "the ClusterIP comes first");
	cr_assert_str_eq(ptr[1].svc->name, "alpha");
	cr_assert_str_eq(ptr[1].ep->hostname, "pod");
	cr_assert_str_eq(ptr[2].svc->name, "beta");
	cr_assert_str_eq(ptr[2].ep->hostname, "10-0-0-9");
	ip = t_ip("fd00::9");
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 1);
	cr_assert_str_eq(ptr[0].ep->hostname, "fd00--9");
	ip = t_ip("10.0.0.10");
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 1);
	cr_assert_str_eq(ptr[0].svc->ns, "other");
	ip = t_ip("10.0.0.11");
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 0);
	/* junk in the unused bytes of a v4 address does not matter */
	ip = t_ip("10.0.0.10");
	memset(ip.addr + 4, 0xaa, 12);
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 1);
	tern_cluster_free(c);

	/* After removing the ClusterIP service only the endpoints remain. */
	cr_assert_eq(tern_cluster_builder_service_delete(b, "default", "zeta"), 0);
	c = tern_cluster_builder_snapshot(b);
	ip = t_ip("10.0.0.9");
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 2);
	cr_assert_not_null(ptr[0].ep);
	tern_cluster_free(c);

	/* A ClusterIP added later still sorts first (incremental shard rebuild). */
	t_service(b, "zz", "late", "10.0.0.9");
	c = tern_cluster_builder_snapshot(b);
	cr_assert_eq(tern_cluster_find_ptr(c, &ip, &ptr, NULL), 3);
	cr_assert_str_eq(ptr[0].svc->name, "late");
	cr_assert_null(ptr[0].ep);
	cr_assert_not_null(ptr[1].ep);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, pods_index)
{
	t_conf = (struct tern_cluster_source_conf){ .watch_endpoints = true, .watch_pods = true };
	struct tern_cluster_builder *b = tern_cluster_builder_new(&t_conf);
	struct tern_ip ips[2] = { t_ip("10.244.1.7"), t_ip("fd00:244::7") };
	struct tern_k8s_pod p = { .ns = "default", .name = "p1", .ips = ips, .nips = 2 };
	cr_assert_eq(tern_cluster_builder_pod(b, &p), 0);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	cr_assert(tern_cluster_has_pod(c, "default", 7, &ips[0]));
	cr_assert(tern_cluster_has_pod(c, "default", 7, &ips[1]));
	cr_assert_not(tern_cluster_has_pod(c, "other", 5, &ips[0]));
	struct tern_ip no = t_ip("10.244.1.8");
	cr_assert_not(tern_cluster_has_pod(c, "default", 7, &no));
	struct tern_cluster_counts counts;
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.pods, 1);
	tern_cluster_free(c);

	p.nips = 1;                      /* the v6 address went away */
	cr_assert_eq(tern_cluster_builder_pod(b, &p), 0);
	c = tern_cluster_builder_snapshot(b);
	cr_assert(tern_cluster_has_pod(c, "default", 7, &ips[0]));
	cr_assert_not(tern_cluster_has_pod(c, "default", 7, &ips[1]));
	tern_cluster_free(c);
	cr_assert_eq(tern_cluster_builder_pod_delete(b, "default", "p1"), 0);
	c = tern_cluster_builder_snapshot(b);
	cr_assert_not(tern_cluster_has_pod(c, "default", 7, &ips[0]));
	tern_cluster_free(c);
	tern_cluster_builder_free(b);

	/* Without the pod watch there is no index at all. */
	struct tern_cluster_builder *b2 = t_builder();
	cr_assert_eq(tern_cluster_builder_pod(b2, &p), 0);
	c = tern_cluster_builder_snapshot(b2);
	cr_assert_not(tern_cluster_has_pod(c, "default", 7, &ips[0]));
	tern_cluster_free(c);
	tern_cluster_builder_free(b2);
}

/* ---- relists, sharing, serial ------------------------------------------------------- */

Test(build, relist_keeps_seen_removes_unseen)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "keep", "10.0.0.1");
	t_service(b, "default", "gone", "10.0.0.2");
	const char *e[] = { "10.1.0.1" };
	t_slice(b, "default", "keep-1", "keep", e, 1);
	t_slice(b, "default", "keep-2", "keep", e, 1);
	cr_assert_eq(tern_cluster_builder_namespace(b, "default"), 0);
	cr_assert_eq(tern_cluster_builder_namespace(b, "old"), 0);
	struct tern_cluster *c1 = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *keep1 = t_find(c1, "default", "keep");

	tern_cluster_builder_relist_begin(b, TERN_K8S_SERVICE);
	t_service(b, "default", "keep", "10.0.0.1");
	t_service(b, "default", "new", "10.0.0.3");
	/* a watch event inside the relist window counts as seen */
	tern_cluster_builder_relist_end(b, TERN_K8S_SERVICE);
	tern_cluster_builder_relist_begin(b, TERN_K8S_SLICE);
	t_slice(b, "default", "keep-1", "keep", e, 1);
	tern_cluster_builder_relist_end(b, TERN_K8S_SLICE);
	tern_cluster_builder_relist_begin(b, TERN_K8S_NAMESPACE);
	cr_assert_eq(tern_cluster_builder_namespace(b, "default"), 0);
	tern_cluster_builder_relist_end(b, TERN_K8S_NAMESPACE);

	struct tern_cluster *c2 = tern_cluster_builder_snapshot(b);
	cr_assert_eq(t_find(c2, "default", "keep"), keep1, "same content: same record");
	cr_assert_not_null(t_find(c2, "default", "new"));
	cr_assert_null(t_find(c2, "default", "gone"));
	cr_assert(tern_cluster_has_namespace(c2, "default", 7));
	cr_assert_not(tern_cluster_has_namespace(c2, "old", 3));
	cr_assert_eq(tern_cluster_builder_slice_delete(b, "default", "keep-2"), TERN_ENOENT,
	             "keep-2 was swept");
	/* the old snapshot is untouched */
	cr_assert_not_null(t_find(c1, "default", "gone"));
	tern_cluster_free(c1);
	tern_cluster_free(c2);
	tern_cluster_builder_free(b);
}

Test(build, records_shared_between_snapshots)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "a", "10.0.0.1");
	t_service(b, "default", "b", "10.0.0.2");
	const char *e[] = { "10.1.0.1" };
	t_slice(b, "default", "b-1", "b", e, 1);
	struct tern_cluster *c1 = tern_cluster_builder_snapshot(b);
	cr_assert_not(tern_cluster_builder_dirty(b));

	/* re-sending identical objects changes nothing */
	t_service(b, "default", "a", "10.0.0.1");
	t_slice(b, "default", "b-1", "b", e, 1);
	cr_assert_not(tern_cluster_builder_dirty(b), "unchanged upserts are not dirty");

	const char *e2[] = { "10.1.0.2" };
	t_slice(b, "default", "b-1", "b", e2, 1);
	cr_assert(tern_cluster_builder_dirty(b));
	struct tern_cluster *c2 = tern_cluster_builder_snapshot(b);
	cr_assert_eq(t_find(c2, "default", "a"), t_find(c1, "default", "a"));
	cr_assert_neq(t_find(c2, "default", "b"), t_find(c1, "default", "b"));
	cr_assert(t_ip_is(&t_find(c2, "default", "b")->eps[0].ip, "10.1.0.2"));
	cr_assert(t_ip_is(&t_find(c1, "default", "b")->eps[0].ip, "10.1.0.1"));
	const struct tern_cluster_ptr *ptr;
	struct tern_ip old = t_ip("10.1.0.1"), cur = t_ip("10.1.0.2");
	cr_assert_eq(tern_cluster_find_ptr(c2, &old, &ptr, NULL), 0);
	cr_assert_eq(tern_cluster_find_ptr(c2, &cur, &ptr, NULL), 1);
	cr_assert_eq(tern_cluster_find_ptr(c1, &old, &ptr, NULL), 1);
	/* free the newer first: the older still owns its records */
	tern_cluster_free(c2);
	cr_assert_str_eq(t_find(c1, "default", "b")->eps[0].hostname, "10-1-0-1");
	tern_cluster_free(c1);
	tern_cluster_builder_free(b);
}

/* A record rebuilt for a Service change keeps its slice's endpoint block (shared, not
 * copied), and each snapshot keeps the block it was built with alive. */
Test(build, endpoints_shared_not_copied)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "web", NULL);
	const char *e[] = { "10.2.0.3", "10.2.0.1=one", "10.2.0.2" };
	t_slice(b, "default", "web-1", "web", e, 3);
	struct tern_cluster *c1 = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s1 = t_find(c1, "default", "web");
	cr_assert_eq(s1->neps, 3);
	cr_assert_str_eq(s1->eps[0].hostname, "10-2-0-2", "sorted by hostname");
	cr_assert_str_eq(s1->eps[2].hostname, "one");

	/* the Service changes (now a ClusterIP): a new record, the same endpoints */
	t_service(b, "default", "web", "10.96.0.5");
	struct tern_cluster *c2 = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s2 = t_find(c2, "default", "web");
	cr_assert_neq(s1, s2);
	cr_assert_eq(s2->eps, s1->eps, "the endpoint block is shared");

	/* the slice changes: a new block; the old snapshots keep theirs */
	const char *e2[] = { "10.2.0.9" };
	t_slice(b, "default", "web-1", "web", e2, 1);
	struct tern_cluster *c3 = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s3 = t_find(c3, "default", "web");
	cr_assert_eq(s3->neps, 1);
	cr_assert(t_ip_is(&s3->eps[0].ip, "10.2.0.9"));
	tern_cluster_free(c1);
	cr_assert_str_eq(s2->eps[2].hostname, "one", "c2 still reads the first block");
	tern_cluster_free(c2);

	/* a second slice: the record merges both into a block of its own */
	const char *e3[] = { "10.2.0.8" };
	t_slice(b, "default", "web-2", "web", e3, 1);
	struct tern_cluster *c4 = tern_cluster_builder_snapshot(b);
	const struct tern_cluster_svc *s4 = t_find(c4, "default", "web");
	cr_assert_eq(s4->neps, 2);
	cr_assert(t_ip_is(&s4->eps[0].ip, "10.2.0.8"));
	cr_assert(t_ip_is(&s4->eps[1].ip, "10.2.0.9"));
	cr_assert_neq(s4->eps, s3->eps);
	/* the builder goes first; the snapshots still own everything they point to */
	tern_cluster_builder_free(b);
	cr_assert(t_ip_is(&s3->eps[0].ip, "10.2.0.9"));
	tern_cluster_free(c3);
	cr_assert(t_ip_is(&s4->eps[1].ip, "10.2.0.9"));
	tern_cluster_free(c4);
}

static void t_addr(char *buf, size_t len, unsigned i, bool v6)
{
	if (v6)
		snprintf(buf, len, "fd00::%x:%x", i >> 8, i & 255);
	else
		snprintf(buf, len, "10.%u.%u.%u", 50 + (i >> 16), (i >> 8) & 255, i & 255);
}

/* Every address of svc-i for i = first, first + step, ... < n (ClusterIP 10.96.x.y plus
 * two endpoints, one IPv4 and one IPv6, of which the IPv4 one is also an endpoint of
 * svc-(i+1) when that exists) finds its matches, in order. */
static void t_ptr_all(const struct tern_cluster *c, unsigned n, unsigned step, unsigned first)
{
	char addr[64], name[32];
	for (unsigned i = first; i < n; i += step) {
		const struct tern_cluster_ptr *p;
		t_addr(addr, sizeof(addr), i, false);
		struct tern_ip ip = t_ip(addr);
		/* shared with svc-(i+1), unless that one is gone (step 2) or never was */
		size_t want = step == 1 && i + 1 < n ? 2 : 1;
		cr_assert_eq(tern_cluster_find_ptr(c, &ip, &p, NULL), want, "%s", addr);
		snprintf(name, sizeof(name), "svc-%05u", i);
		cr_assert_str_eq(p[0].svc->name, name, "%s", addr);
		cr_assert_str_eq(p[0].ep->hostname, "v4");
		t_addr(addr, sizeof(addr), i, true);
		ip = t_ip(addr);
		cr_assert_eq(tern_cluster_find_ptr(c, &ip, &p, NULL), 1, "%s", addr);
		cr_assert_str_eq(p[0].svc->name, name);
		cr_assert_str_eq(p[0].ep->hostname, "v6");
		snprintf(addr, sizeof(addr), "10.96.%u.%u", i >> 8, i & 255);
		ip = t_ip(addr);
		cr_assert_eq(tern_cluster_find_ptr(c, &ip, &p, NULL), 1, "%s", addr);
		cr_assert_null(p[0].ep);
	}
}

/*
 * Service svc-<i> (ClusterIP 10.96.<i>) with one slice: its own v4 and v6 addresses
 * ("v4", "v6") and, from i = 1 on, the previous service's v4 address ("zz").
 */
static void t_ptr_service(struct tern_cluster_builder *b, unsigned i)
{
	char name[32], sname[40], cip[32], a4[64], a6[64], p4[64], e4[80], e6[80], e4p[80];
	snprintf(name, sizeof(name), "svc-%05u", i);
	snprintf(cip, sizeof(cip), "10.96.%u.%u", i >> 8, i & 255);
	t_service(b, "ns", name, cip);
	t_addr(a4, sizeof(a4), i, false);
	t_addr(a6, sizeof(a6), i, true);
	snprintf(e4, sizeof(e4), "%s=v4", a4);
	snprintf(e6, sizeof(e6), "%s=v6", a6);
	const char *eps[3] = { e4, e6, NULL };
	unsigned ne = 2;
	if (i > 0) {
		t_addr(p4, sizeof(p4), i - 1, false);
		snprintf(e4p, sizeof(e4p), "%s=zz", p4);
		eps[ne++] = e4p;
	}
	snprintf(sname, sizeof(sname), "%s-1", name);
	t_slice(b, "ns", sname, name, eps, ne);
}

/* Thousands of entries per family spread over every PTR shard: built at once, then
 * edited (half the services removed, some added back) and compared with a fresh build.
 * The shards' IPv4 and IPv6 runs are searched separately; both must stay sorted. */
Test(build, ptr_index_large_both_families)
{
	const unsigned n = 6000;
	struct tern_cluster_builder *b = t_builder();
	char name[32], sname[40], a4[64], a6[64];
	for (unsigned i = 0; i < n; i++)
		t_ptr_service(b, i);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	struct tern_cluster_counts counts;
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, n);
	cr_assert_eq(counts.endpoints, 3 * n - 1);
	t_ptr_all(c, n, 1, 0);
	tern_cluster_free(c);

	/* remove the odd services: every even one keeps only its own addresses */
	for (unsigned i = 1; i < n; i += 2) {
		snprintf(name, sizeof(name), "svc-%05u", i);
		snprintf(sname, sizeof(sname), "%s-1", name);
		cr_assert_eq(tern_cluster_builder_service_delete(b, "ns", name), 0);
		cr_assert_eq(tern_cluster_builder_slice_delete(b, "ns", sname), 0);
	}
	c = tern_cluster_builder_snapshot(b);
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, n / 2);
	t_ptr_all(c, n, 2, 0);
	for (unsigned i = 1; i < n; i += 2) {
		const struct tern_cluster_ptr *p;
		t_addr(a6, sizeof(a6), i, true);
		struct tern_ip ip = t_ip(a6);
		cr_assert_eq(tern_cluster_find_ptr(c, &ip, &p, NULL), 0, "%s is gone", a6);
		cr_assert_null(p);
	}
	/* the fresh build of the same state answers the same */
	struct tern_cluster_builder *f = t_builder();
	for (unsigned i = 0; i < n; i += 2)
		t_ptr_service(f, i);
	struct tern_cluster *fc = tern_cluster_builder_snapshot(f);
	for (unsigned i = 0; i < n; i++) {
		const struct tern_cluster_ptr *p, *q;
		t_addr(a4, sizeof(a4), i, false);
		struct tern_ip ip = t_ip(a4);
		size_t np = tern_cluster_find_ptr(c, &ip, &p, NULL);
		size_t nq = tern_cluster_find_ptr(fc, &ip, &q, NULL);
		cr_assert_eq(np, nq, "%s", a4);
		for (size_t j = 0; j < np; j++) {
			cr_assert_str_eq(p[j].svc->name, q[j].svc->name, "%s", a4);
			cr_assert_str_eq(p[j].ep->hostname, q[j].ep->hostname, "%s", a4);
		}
	}
	tern_cluster_free(fc);
	tern_cluster_builder_free(f);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, serial_only_on_dns_change)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "a", "10.0.0.1");
	struct tern_cluster *c1 = tern_cluster_builder_snapshot(b);
	uint32_t s1 = tern_cluster_serial(c1);
	cr_assert_gt(s1, 0);

	/* a not-ready endpoint appearing is not DNS-relevant */
	struct tern_ip ip = t_ip("10.1.0.9");
	struct tern_k8s_endpoint ep = { .addrs = &ip, .naddrs = 1, .ready = false };
	struct tern_k8s_slice sl = { .ns = "default", .name = "a-1", .service = "a",
		.endpoints = &ep, .nendpoints = 1 };
	cr_assert_eq(tern_cluster_builder_slice(b, &sl), 0);
	struct tern_cluster *c2 = tern_cluster_builder_snapshot(b);
	cr_assert_eq(tern_cluster_serial(c2), s1);
	cr_assert_eq(t_find(c2, "default", "a"), t_find(c1, "default", "a"));

	/* ...becoming ready is */
	ep.ready = true;
	cr_assert_eq(tern_cluster_builder_slice(b, &sl), 0);
	struct tern_cluster *c3 = tern_cluster_builder_snapshot(b);
	cr_assert_gt(tern_cluster_serial(c3), s1);

	/* synced changes the flag, not the serial */
	tern_cluster_builder_set_synced(b);
	cr_assert(tern_cluster_builder_dirty(b));
	struct tern_cluster *c4 = tern_cluster_builder_snapshot(b);
	cr_assert(tern_cluster_synced(c4));
	cr_assert_not(tern_cluster_synced(c3));
	cr_assert_eq(tern_cluster_serial(c4), tern_cluster_serial(c3));
	tern_cluster_free(c1);
	tern_cluster_free(c2);
	tern_cluster_free(c3);
	tern_cluster_free(c4);
	tern_cluster_builder_free(b);
}

Test(build, slice_relabel_moves_endpoints)
{
	struct tern_cluster_builder *b = t_builder();
	t_service(b, "default", "one", NULL);
	t_service(b, "default", "two", NULL);
	const char *e[] = { "10.1.0.1" };
	t_slice(b, "default", "s", "one", e, 1);
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	cr_assert_eq(t_find(c, "default", "one")->neps, 1);
	cr_assert_eq(t_find(c, "default", "two")->neps, 0);
	tern_cluster_free(c);
	t_slice(b, "default", "s", "two", e, 1);
	c = tern_cluster_builder_snapshot(b);
	cr_assert_eq(t_find(c, "default", "one")->neps, 0);
	cr_assert_eq(t_find(c, "default", "two")->neps, 1);
	tern_cluster_free(c);
	/* a slice that arrives before its Service is kept for it */
	t_slice(b, "default", "early", "three", e, 1);
	c = tern_cluster_builder_snapshot(b);
	cr_assert_null(t_find(c, "default", "three"));
	tern_cluster_free(c);
	t_service(b, "default", "three", "10.0.0.3");
	c = tern_cluster_builder_snapshot(b);
	cr_assert_eq(t_find(c, "default", "three")->neps, 1);
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

Test(build, rejects_bad_names)
{
	struct tern_cluster_builder *b = t_builder();
	struct tern_k8s_service s = { .ns = "", .name = "x", .kind = TERN_SVC_HEADLESS };
	cr_assert_eq(tern_cluster_builder_service(b, &s), TERN_EINVAL);
	char big[300];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = (struct tern_k8s_service){ .ns = "default", .name = big, .kind = TERN_SVC_HEADLESS };
	cr_assert_eq(tern_cluster_builder_service(b, &s), TERN_EINVAL);
	cr_assert_eq(tern_cluster_builder_service_delete(b, "default", "nope"), TERN_ENOENT);
	tern_cluster_builder_free(b);
}

/* A table big enough to grow, then shrink and rebuild, stays consistent. */
Test(build, many_services_churn)
{
	struct tern_cluster_builder *b = t_builder();
	char name[32], ip[32];
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "svc-%u", i);
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		t_service(b, "default", name, ip);
	}
	struct tern_cluster *c = tern_cluster_builder_snapshot(b);
	tern_cluster_free(c);
	for (unsigned i = 0; i < 3000; i += 2) {
		snprintf(name, sizeof(name), "svc-%u", i);
		cr_assert_eq(tern_cluster_builder_service_delete(b, "default", name), 0);
	}
	c = tern_cluster_builder_snapshot(b);
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "svc-%u", i);
		const struct tern_cluster_svc *s = t_find(c, "default", name);
		cr_assert_eq(s != NULL, i % 2 == 1, "%s", name);
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		struct tern_ip a = t_ip(ip);
		const struct tern_cluster_ptr *ptr;
		cr_assert_eq(tern_cluster_find_ptr(c, &a, &ptr, NULL), (size_t)(i % 2));
	}
	struct tern_cluster_counts counts;
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, 1500);
	tern_cluster_free(c);
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "svc-%u", i);
		tern_cluster_builder_service_delete(b, "default", name);
	}
	c = tern_cluster_builder_snapshot(b);
	tern_cluster_counts(c, &counts);
	cr_assert_eq(counts.services, 0);
	cr_assert_null(t_find(c, "default", "svc-1"));
	tern_cluster_free(c);
	tern_cluster_builder_free(b);
}

/* ---- publishing ------------------------------------------------------------------- */

Test(build, publish_and_free)
{
	struct tern_cluster_source_conf conf = { .watch_endpoints = true };
	struct tern_cluster_source *src = tern_cluster_source_get(&conf);
	cr_assert_not_null(src);
	struct tern_cluster_builder *b = tern_cluster_builder_new(&src->conf);
	t_service(b, "default", "a", "10.0.0.1");
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	const struct tern_cluster *c = tern_cluster_source_snapshot(src);
	cr_assert_not_null(c);
	cr_assert_not_null(t_find(c, "default", "a"));
	cr_assert_gt(tern_cluster_published_ms(c), 0);

	/* a registered reader that is offline does not block the grace period */
	tern_rcu_register();
	tern_rcu_offline();
	t_service(b, "default", "b", "10.0.0.2");
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	tern_rcu_online();
	tern_rcu_unregister();
	c = tern_cluster_source_snapshot(src);
	cr_assert_not_null(t_find(c, "default", "b"));
	cr_assert_eq(src->stats.snapshots, 2);
	cr_assert_gt(src->stats.build_ns_total, 0);
	uint64_t hist = 0;
	for (unsigned i = 0; i < 16; i++)
		hist += src->stats.build_hist[i];
	cr_assert_eq(hist, 2);

	/* the watcher stops first; the source then frees its last snapshot alone */
	tern_cluster_builder_free(b);
	tern_cluster_source_put(src);
	tern_cluster_sources_reap(NULL);
}

/* Thousands of publishes while a reader looks up between them: ASan sees no leak and no
 * use after free (the suite runs under ASan in tools/test.sh). */
Test(build, thousands_of_publishes_free_everything)
{
	struct tern_cluster_source_conf conf = { .watch_endpoints = true };
	struct tern_cluster_source *src = tern_cluster_source_get(&conf);
	struct tern_cluster_builder *b = tern_cluster_builder_new(&src->conf);
	char ip[32];
	for (unsigned i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.1.%u.%u", (i / 250) % 250, i % 250 + 1);
		t_service(b, "default", i % 3 ? "churn" : "other", ip);
		t_slice(b, "default", "churn-abc", "churn", (const char *[]) { ip }, 1);
		cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
		const struct tern_cluster *c = tern_cluster_source_snapshot(src);
		cr_assert_not_null(t_find(c, "default", i % 3 ? "churn" : "other"), "publish %u", i);
	}
	cr_assert_eq(src->stats.snapshots, 3000);
	tern_cluster_builder_free(b);
	tern_cluster_source_put(src);
	tern_cluster_sources_reap(NULL);
}

/*
 * A reader stays online holding the published snapshot (a worker in the middle of a
 * turn). Publishing must not wait for it (the test times out if it does), and the
 * snapshot it holds must stay readable until it goes offline (ASan sees no use after
 * free); then the builder frees it (ASan sees no leak).
 */
static atomic_int t_reader_state;   /* 1: holding the snapshot, 2: let go, 3: done */
static struct tern_cluster_source *t_reader_src;

static void *t_online_reader(void *arg)
{
	(void)arg;
	tern_rcu_register();   /* online */
	const struct tern_cluster *c = tern_cluster_source_snapshot(t_reader_src);
	atomic_store(&t_reader_state, 1);
	while (atomic_load(&t_reader_state) != 2) {
		const struct tern_cluster_svc *s = t_find(c, "default", "held");
		cr_assert_not_null(s);
		cr_assert(t_ip_is(&s->eps[0].ip, "10.3.0.1"));
	}
	tern_rcu_offline();
	tern_rcu_unregister();
	atomic_store(&t_reader_state, 3);
	return NULL;
}

Test(build, publish_never_waits_for_readers, .timeout = 20)
{
	struct tern_cluster_source_conf conf = { .watch_endpoints = true };
	struct tern_cluster_source *src = tern_cluster_source_get(&conf);
	struct tern_cluster_builder *b = tern_cluster_builder_new(&src->conf);
	t_service(b, "default", "held", NULL);
	t_slice(b, "default", "held-1", "held", (const char *[]){ "10.3.0.1" }, 1);
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	t_reader_src = src;
	atomic_store(&t_reader_state, 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, t_online_reader, NULL), 0);
	while (atomic_load(&t_reader_state) != 1)
		;
	/* replace the held record many times over while the reader stays online */
	char ip[32];
	for (unsigned i = 0; i < 200; i++) {
		snprintf(ip, sizeof(ip), "10.3.1.%u", i % 250);
		t_slice(b, "default", "held-1", "held", (const char *[]){ ip }, 1);
		cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
		tern_cluster_builder_reclaim(b);
	}
	const struct tern_cluster *c = tern_cluster_source_snapshot(src);
	cr_assert(t_ip_is(&t_find(c, "default", "held")->eps[0].ip, "10.3.1.199"));
	atomic_store(&t_reader_state, 2);
	while (atomic_load(&t_reader_state) != 3)
		;
	pthread_join(th, NULL);
	cr_assert_eq(src->stats.snapshots, 201);
	tern_cluster_builder_free(b);   /* waits for the last grace periods, frees the rest */
	tern_cluster_source_put(src);
	tern_cluster_sources_reap(NULL);
}

/* ---- incremental snapshots equal a fresh build ------------------------------------ */

static uint64_t t_rng = 88172645463325252ULL;

static unsigned t_rand(unsigned n)
{
	t_rng ^= t_rng << 13;
	t_rng ^= t_rng >> 7;
	t_rng ^= t_rng << 17;
	return (unsigned)(t_rng % n);
}

/* One random event (service or slice upsert or delete) in a small name/address space. */
static void t_random_op(struct tern_cluster_builder *b)
{
	char name[32], sname[32], ip[32];
	unsigned svc = t_rand(60), op = t_rand(10);
	snprintf(name, sizeof(name), "s%u", svc);
	snprintf(sname, sizeof(sname), "s%u-%u", svc, t_rand(3));
	snprintf(ip, sizeof(ip), "10.0.0.%u", t_rand(40));
	const char *addrs[6];
	char buf[6][40];
	unsigned n = t_rand(6);
	for (unsigned i = 0; i < n; i++) {
		if (t_rand(3) == 0)
			snprintf(buf[i], sizeof(buf[i]), "fd00::%x=h%u", t_rand(40), t_rand(3));
		else
			snprintf(buf[i], sizeof(buf[i]), "10.0.0.%u", t_rand(40));
		addrs[i] = buf[i];
	}
	if (op < 3)
		t_service(b, "default", name, t_rand(2) ? ip : NULL);
	else if (op < 4)
		tern_cluster_builder_service_delete(b, "default", name);
	else if (op < 8)
		t_slice(b, "default", sname, name, addrs, n);
	else
		tern_cluster_builder_slice_delete(b, "default", sname);
}

static void t_same(const struct tern_cluster *x, const struct tern_cluster *y)
{
	struct tern_cluster_counts cx, cy;
	tern_cluster_counts(x, &cx);
	tern_cluster_counts(y, &cy);
	cr_assert_eq(cx.services, cy.services);
	cr_assert_eq(cx.endpoints, cy.endpoints);
	char name[32], ip[40];
	for (unsigned i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		const struct tern_cluster_svc *a = t_find(x, "default", name);
		const struct tern_cluster_svc *b = t_find(y, "default", name);
		cr_assert_eq(!a, !b, "%s", name);
		if (!a)
			continue;
		cr_assert_eq(a->neps, b->neps, "%s", name);
		cr_assert_eq(a->ncluster_ips, b->ncluster_ips);
		for (unsigned j = 0; j < a->neps; j++) {
			cr_assert_str_eq(a->eps[j].hostname, b->eps[j].hostname);
			cr_assert_eq(memcmp(&a->eps[j].ip, &b->eps[j].ip, sizeof(a->eps[j].ip)), 0);
		}
	}
	for (unsigned i = 0; i < 80; i++) {
		if (i < 40)
			snprintf(ip, sizeof(ip), "10.0.0.%u", i);
		else
			snprintf(ip, sizeof(ip), "fd00::%x", i - 40);
		struct tern_ip a = t_ip(ip);
		const struct tern_cluster_ptr *px, *py;
		size_t nx = tern_cluster_find_ptr(x, &a, &px, NULL);
		size_t ny = tern_cluster_find_ptr(y, &a, &py, NULL);
		cr_assert_eq(nx, ny, "%s: %zu vs %zu", ip, nx, ny);
		for (size_t j = 0; j < nx; j++) {
			cr_assert_str_eq(px[j].svc->name, py[j].svc->name, "%s", ip);
			cr_assert_eq(!px[j].ep, !py[j].ep);
			if (j > 0 && !px[j].ep)
				cr_assert_null(px[j - 1].ep, "ClusterIPs first");
			if (px[j].ep)
				cr_assert_str_eq(px[j].ep->hostname, py[j].ep->hostname);
		}
	}
}

Test(build, incremental_equals_fresh)
{
	struct tern_cluster_builder *inc = t_builder(), *fresh = t_builder();
	struct tern_cluster *keep = NULL;
	for (unsigned round = 0; round < 60; round++) {
		unsigned ops = 1 + t_rand(20);
		for (unsigned i = 0; i < ops; i++)
			t_random_op(inc);
		struct tern_cluster *c = tern_cluster_builder_snapshot(inc);
		cr_assert_not_null(c);
		/* keep some snapshots alive across later ones, free others at once */
		if (round % 7 == 0) {
			tern_cluster_free(keep);
			keep = c;
		} else {
			tern_cluster_free(c);
		}
	}
	tern_cluster_free(keep);
	/* the other builder gets the same events (same seed) and builds once */
	t_rng = 88172645463325252ULL;
	for (unsigned round = 0; round < 60; round++) {
		unsigned ops = 1 + t_rand(20);
		for (unsigned i = 0; i < ops; i++)
			t_random_op(fresh);
	}
	struct tern_cluster *x = tern_cluster_builder_snapshot(inc);
	struct tern_cluster *y = tern_cluster_builder_snapshot(fresh);
	struct tern_cluster_counts counts;
	tern_cluster_counts(x, &counts);
	cr_assert_gt(counts.services, 10, "the random walk left services to compare");
	cr_assert_gt(counts.endpoints, 10);
	t_same(x, y);
	tern_cluster_free(x);
	tern_cluster_free(y);
	tern_cluster_builder_free(inc);
	tern_cluster_builder_free(fresh);
}
