/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/kubernetes: the plugin is initialised from a config
 * struct, a cluster is built with lib/cluster/build.h and published into the source
 * the plugin asked for (found with tern_cluster_sources_foreach: each criterion test
 * is its own process, so it is the only one), and the query hook is driven with
 * requests built by hand, as tests/unit/plugins/test_hosts.c does. Answers are parsed
 * back from the wire and compared record by record ("owner ttl TYPE rdata") against
 * CoreDNS-style case tables. The test thread is an RCU reader that goes offline
 * around each publish (publish waits for a grace period).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <libknot/libknot.h>

#include "lib/cluster/build.h"
#include "lib/cluster/model.h"
#include "lib/cluster/source.h"
#include "lib/core/arena.h"
#include "lib/core/errcode.h"
#include "lib/core/rcu.h"
#include "lib/engine/conf.h"
#include "lib/engine/diag.h"
#include "lib/engine/hot.h"
#include "lib/engine/plugin.h"
#include "lib/engine/process.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/kubernetes/kubernetes.h"
#include "tests/support/query.h"

extern const struct tern_plugin tern_plugin_kubernetes;

#define PLUGIN_ID 7

/* ---- a request built by hand ---------------------------------------------------- */

/* ---- the plugin, its source and a builder ---------------------------------------- */

static const char *env_zones[] = { "cluster.local.", "in-addr.arpa.", "ip6.arpa." };

struct t_k8s {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
	int ret;
	struct tern_cluster_source *src;
	struct tern_cluster_builder *b;
};

static void find_source(struct tern_cluster_source *src, void *ctx)
{
	*(struct tern_cluster_source **)ctx = src;
}

static void setup(void)
{
	tern_rcu_register();
}

static void teardown(void)
{
	tern_rcu_unregister();
}

/* Init with @conf and the server zones above; on success find the source. */
static int t_k8s_init(struct t_k8s *h, struct tern_kubernetes_conf *conf)
{
	struct tern_plugin_env env = { .zones = env_zones, .nzones = 3, .config_dir = "/etc" };
	*h = (struct t_k8s){ .pi = { .plugin = &tern_plugin_kubernetes, .plugin_id = PLUGIN_ID } };
	tern_diag_init(&h->diag, NULL);
	tern_diag_set_prefix(&h->diag, "servers[0].plugins.kubernetes");
	h->ret = tern_plugin_kubernetes.init(&h->pi, conf, &env, &h->diag);
	if (h->ret == 0) {
		tern_cluster_sources_foreach(find_source, &h->src);
		cr_assert_not_null(h->src);
		h->b = tern_cluster_builder_new(&h->src->conf);
		cr_assert_not_null(h->b);
	}
	return h->ret;
}

static void t_k8s_deinit(struct t_k8s *h)
{
	if (h->ret == 0)
		tern_plugin_kubernetes.deinit(&h->pi);
	tern_cluster_sources_reap(NULL);
	tern_cluster_builder_free(h->b);
	tern_diag_deinit(&h->diag);
}

static void t_publish(struct t_k8s *h)
{
	tern_rcu_offline();
	cr_assert_eq(tern_cluster_builder_publish(h->b, h->src), 0);
	tern_rcu_online();
}

static struct tern_ip ip(const char *s)
{
	struct tern_ip out = { .family = strchr(s, ':') ? AF_INET6 : AF_INET };
	cr_assert_eq(inet_pton(out.family, s, out.addr), 1, "address %s", s);
	return out;
}

static void t_service(struct t_k8s *h, const char *ns, const char *name, enum tern_svc_kind kind,
                      const char *ip1, const char *ip2, const char *ext,
                      const struct tern_k8s_port *ports, unsigned nports)
{
	struct tern_k8s_service s = {
		.ns = ns, .name = name, .kind = kind, .external_name = ext,
		.ports = ports, .nports = nports,
	};
	if (ip1 != NULL)
		s.cluster_ips[s.ncluster_ips++] = ip(ip1);
	if (ip2 != NULL)
		s.cluster_ips[s.ncluster_ips++] = ip(ip2);
	cr_assert_eq(tern_cluster_builder_service(h->b, &s), 0, "service %s/%s", ns, name);
}

/* One endpoint: address, hostname (or NULL), ready. */
struct t_ep {
	const char *addr;
	const char *hostname;
	bool ready;
};

static void t_slice(struct t_k8s *h, const char *ns, const char *name, const char *svc,
                    const struct t_ep *eps, unsigned neps,
                    const struct tern_k8s_port *ports, unsigned nports)
{
	struct tern_ip addrs[64];
	struct tern_k8s_endpoint e[64];
	cr_assert(neps <= 64);
	for (unsigned i = 0; i < neps; i++) {
		addrs[i] = ip(eps[i].addr);
		e[i] = (struct tern_k8s_endpoint){
			.addrs = &addrs[i], .naddrs = 1, .hostname = eps[i].hostname,
			.ready = eps[i].ready,
		};
	}
	struct tern_k8s_slice s = {
		.ns = ns, .name = name, .service = svc, .endpoints = e, .nendpoints = neps,
		.ports = ports, .nports = nports,
	};
	cr_assert_eq(tern_cluster_builder_slice(h->b, &s), 0, "slice %s/%s", ns, name);
}

static const struct tern_k8s_port svc1_ports[] = {
	{ .name = "http", .protocol = "TCP", .port = 80 },
	{ .name = "dns", .protocol = "UDP", .port = 53 },
	{ .name = "", .protocol = "TCP", .port = 8080 },
};
static const struct tern_k8s_port http_port[] = {
	{ .name = "http", .protocol = "TCP", .port = 80 },
};

/*
 * The test cluster:
 *   ns1/svc1       ClusterIP 10.0.0.1 + fd00::1, ports http/TCP/80 dns/UDP/53 TCP/8080,
 *                  one ready endpoint 10.244.0.1 (no hostname) and one not ready
 *   ns1/hdls       headless: web-0 = 10.244.1.1 + fd00::1:1, 10.244.1.2 (no hostname),
 *                  fd00::1:9 not ready; port http/TCP/80; v4 and v6 slices
 *   ns1/empty      headless without endpoints
 *   ns1/noeps      ClusterIP 10.0.0.5 without endpoints
 *   ns1/ext        ExternalName svc1.ns1.svc.cluster.local (inside the zone)
 *   ns1/out        ExternalName www.example.com (outside)
 *   ns1/extip      ExternalName 1.2.3.4 (an IP: not answered)
 *   ns1/loop       ExternalName loop.ns1.svc.cluster.local (itself)
 *   ns2/v6only     ClusterIP fd00::2
 *   namespaces ns1, ns2, quiet (no services); pod ns1/p1 = 10.244.2.7
 */
static void t_fill(struct t_k8s *h)
{
	cr_assert_eq(tern_cluster_builder_namespace(h->b, "ns1"), 0);
	cr_assert_eq(tern_cluster_builder_namespace(h->b, "ns2"), 0);
	cr_assert_eq(tern_cluster_builder_namespace(h->b, "quiet"), 0);

	t_service(h, "ns1", "svc1", TERN_SVC_CLUSTER_IP, "10.0.0.1", "fd00::1", NULL, svc1_ports, 3);
	const struct t_ep svc1_eps[] = {
		{ "10.244.0.1", NULL, true }, { "10.244.0.9", NULL, false },
	};
	t_slice(h, "ns1", "svc1-abc", "svc1", svc1_eps, 2, svc1_ports, 3);

	t_service(h, "ns1", "hdls", TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
	const struct t_ep hdls4[] = { { "10.244.1.1", "web-0", true }, { "10.244.1.2", NULL, true } };
	const struct t_ep hdls6[] = { { "fd00::1:1", "web-0", true }, { "fd00::1:9", NULL, false } };
	t_slice(h, "ns1", "hdls-v4", "hdls", hdls4, 2, http_port, 1);
	t_slice(h, "ns1", "hdls-v6", "hdls", hdls6, 2, http_port, 1);

	t_service(h, "ns1", "empty", TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
	t_service(h, "ns1", "noeps", TERN_SVC_CLUSTER_IP, "10.0.0.5", NULL, NULL, http_port, 1);
	t_service(h, "ns1", "ext", TERN_SVC_EXTERNAL_NAME, NULL, NULL,
	          "svc1.ns1.svc.cluster.local", NULL, 0);
	t_service(h, "ns1", "out", TERN_SVC_EXTERNAL_NAME, NULL, NULL, "www.example.com", NULL, 0);
	t_service(h, "ns1", "extip", TERN_SVC_EXTERNAL_NAME, NULL, NULL, "1.2.3.4", NULL, 0);
	t_service(h, "ns1", "loop", TERN_SVC_EXTERNAL_NAME, NULL, NULL,
	          "loop.ns1.svc.cluster.local", NULL, 0);
	t_service(h, "ns2", "v6only", TERN_SVC_CLUSTER_IP, "fd00::2", NULL, NULL, NULL, 0);

	struct tern_ip pip = ip("10.244.2.7");
	struct tern_k8s_pod pod = { .ns = "ns1", .name = "p1", .ips = &pip, .nips = 1 };
	cr_assert_eq(tern_cluster_builder_pod(h->b, &pod), 0);
}

/* Standard instance: the test cluster, synced and published. */
static void t_k8s_cluster(struct t_k8s *h, struct tern_kubernetes_conf *conf)
{
	cr_assert_eq(t_k8s_init(h, conf), 0, "init: %s", h->diag.nmsgs ? h->diag.msgs[0] : "?");
	t_fill(h);
	tern_cluster_builder_set_synced(h->b);
	t_publish(h);
}

/* ---- checking answers ----------------------------------------------------------- */

#define T_MAX_RR 12

/* One CoreDNS-style case: records as "owner ttl TYPE rdata", in any order. */
struct t_case {
	const char *qname;
	uint16_t qtype;
	uint8_t rcode;
	const char *answer[T_MAX_RR];
	const char *additional[T_MAX_RR];
};

static void rr_text(const knot_rrset_t *rr, char *buf, size_t len)
{
	char owner[KNOT_DNAME_TXT_MAXLEN + 1], type[16], data[1024];
	cr_assert_not_null(knot_dname_to_str(owner, rr->owner, sizeof(owner)));
	knot_rrtype_to_string(rr->type, type, sizeof(type));
	cr_assert_geq(knot_rrset_txt_dump_data(rr, 0, data, sizeof(data),
	                                       &KNOT_DUMP_STYLE_DEFAULT), 0);
	snprintf(buf, len, "%s %u %s %s", owner, rr->ttl, type, data);
}

static void expect_section(const struct t_case *c, const knot_pkt_t *p, knot_section_t sec,
                           const char *const *want, const char *what)
{
	const knot_pktsection_t *s = knot_pkt_section(p, sec);
	size_t nwant = 0;
	while (nwant < T_MAX_RR && want[nwant] != NULL)
		nwant++;
	bool seen[T_MAX_RR] = { false };
	for (uint16_t i = 0; i < s->count; i++) {
		char text[2400];
		rr_text(knot_pkt_rr(s, i), text, sizeof(text));
		bool found = false;
		for (size_t k = 0; k < nwant && !found; k++) {
			if (!seen[k] && strcmp(text, want[k]) == 0)
				found = seen[k] = true;
		}
		cr_assert(found, "%s/%u: unexpected %s record \"%s\"", c->qname, c->qtype, what, text);
	}
	for (size_t k = 0; k < nwant; k++)
		cr_assert(seen[k], "%s/%u: missing %s record \"%s\"", c->qname, c->qtype, what, want[k]);
}

static void run_case(struct t_k8s *h, const struct t_case *c, uint32_t ttl)
{
	struct t_query *q = t_query_new(c->qname, c->qtype, 65535);
	enum tern_verdict v = tern_plugin_kubernetes.query(&q->req, &h->pi);
	cr_assert_eq(v, TERN_DONE, "%s/%u: verdict %d", c->qname, c->qtype, v);
	cr_assert_not(q->req.truncated, "%s/%u: truncated", c->qname, c->qtype);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), c->rcode, "%s/%u: rcode %u, want %u",
	             c->qname, c->qtype, knot_wire_get_rcode(p->wire), c->rcode);
	cr_assert(knot_wire_get_aa(p->wire), "%s/%u: AA", c->qname, c->qtype);
	cr_assert_eq(q->req.plugin_id, PLUGIN_ID, "%s/%u: plugin id", c->qname, c->qtype);
	expect_section(c, p, KNOT_ANSWER, c->answer, "answer");
	expect_section(c, p, KNOT_ADDITIONAL, c->additional, "additional");

	/* Negative answers: the zone's SOA in AUTHORITY with the configured TTL. */
	const knot_pktsection_t *ns = knot_pkt_section(p, KNOT_AUTHORITY);
	bool negative = c->rcode == KNOT_RCODE_NXDOMAIN || c->answer[0] == NULL;
	cr_assert_eq(ns->count, negative ? 1 : 0, "%s/%u: %u authority records", c->qname,
	             c->qtype, ns->count);
	if (negative) {
		const knot_rrset_t *soa = knot_pkt_rr(ns, 0);
		cr_assert_eq(soa->type, KNOT_RRTYPE_SOA, "%s/%u: SOA", c->qname, c->qtype);
		cr_assert_eq(soa->ttl, ttl, "%s/%u: SOA ttl %u", c->qname, c->qtype, soa->ttl);
		cr_assert_eq(knot_soa_minimum(soa->rrs.rdata), ttl, "%s/%u: minimum", c->qname,
		             c->qtype);
	}
	t_query_free(q);
}

static void run_cases(struct t_k8s *h, const struct t_case *cases, size_t n, uint32_t ttl)
{
	for (size_t i = 0; i < n; i++)
		run_case(h, &cases[i], ttl);
}

static enum tern_verdict ask(struct t_k8s *h, const char *name, uint16_t qtype)
{
	struct t_query *q = t_query_new(name, qtype, 65535);
	enum tern_verdict v = tern_plugin_kubernetes.query(&q->req, &h->pi);
	t_query_free(q);
	return v;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define SVC1 "svc1.ns1.svc.cluster.local."
#define HDLS "hdls.ns1.svc.cluster.local."

/* ---- records R1-R10 --------------------------------------------------------------- */

TestSuite(kubernetes, .init = setup, .fini = teardown);

static uint32_t ttl30 = 30;

Test(kubernetes, answers_every_spec_record_in_both_families)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const struct t_case cases[] = {
		/* R1 */
		{ .qname = "dns-version.cluster.local.", .qtype = KNOT_RRTYPE_TXT,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "dns-version.cluster.local. 28800 TXT \"1.1.0\"" } },
		/* R2, R3 */
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 A 10.0.0.1" } },
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_AAAA, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 AAAA fd00::1" } },
		{ .qname = "v6only.ns2.svc.cluster.local.", .qtype = KNOT_RRTYPE_AAAA,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "v6only.ns2.svc.cluster.local. 30 AAAA fd00::2" } },
		/* R4 */
		{ .qname = "_http._tcp." SVC1, .qtype = KNOT_RRTYPE_SRV,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "_http._tcp." SVC1 " 30 SRV 0 100 80 " SVC1 },
		  .additional = { SVC1 " 30 A 10.0.0.1", SVC1 " 30 AAAA fd00::1" } },
		{ .qname = "_dns._udp." SVC1, .qtype = KNOT_RRTYPE_SRV, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "_dns._udp." SVC1 " 30 SRV 0 100 53 " SVC1 },
		  .additional = { SVC1 " 30 A 10.0.0.1", SVC1 " 30 AAAA fd00::1" } },
		/* R6 */
		{ .qname = HDLS, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { HDLS " 30 A 10.244.1.1", HDLS " 30 A 10.244.1.2" } },
		{ .qname = HDLS, .qtype = KNOT_RRTYPE_AAAA, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { HDLS " 30 AAAA fd00::1:1" } },
		/* R7 */
		{ .qname = "web-0." HDLS, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "web-0." HDLS " 30 A 10.244.1.1" } },
		{ .qname = "web-0." HDLS, .qtype = KNOT_RRTYPE_AAAA, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "web-0." HDLS " 30 AAAA fd00::1:1" } },
		{ .qname = "10-244-1-2." HDLS, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "10-244-1-2." HDLS " 30 A 10.244.1.2" } },
		/* R8: 2 targets x 1 port, weight 50, glue for each target */
		{ .qname = "_http._tcp." HDLS, .qtype = KNOT_RRTYPE_SRV,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "_http._tcp." HDLS " 30 SRV 0 50 80 web-0." HDLS,
		    "_http._tcp." HDLS " 30 SRV 0 50 80 10-244-1-2." HDLS },
		  .additional = { "web-0." HDLS " 30 A 10.244.1.1", "web-0." HDLS " 30 AAAA fd00::1:1",
		    "10-244-1-2." HDLS " 30 A 10.244.1.2" } },
		/* R5 */
		{ .qname = "1.0.0.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.0.0.10.in-addr.arpa. 30 PTR " SVC1 } },
		{ .qname = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
		  .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 30 PTR "
		    SVC1 } },
		/* R9 */
		{ .qname = "1.1.244.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.1.244.10.in-addr.arpa. 30 PTR web-0." HDLS } },
		{ .qname = "1.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
		  .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 30 PTR "
		    "web-0." HDLS } },
		{ .qname = "1.0.244.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.0.244.10.in-addr.arpa. 30 PTR 10-244-0-1." SVC1 } },
		/* R10: CNAME to a target outside the zones; chased inside them */
		{ .qname = "out.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "out.ns1.svc.cluster.local. 30 CNAME www.example.com." } },
		{ .qname = "ext.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "ext.ns1.svc.cluster.local. 30 CNAME " SVC1, SVC1 " 30 A 10.0.0.1" } },
		{ .qname = "ext.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_AAAA,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "ext.ns1.svc.cluster.local. 30 CNAME " SVC1, SVC1 " 30 AAAA fd00::1" } },
		{ .qname = "ext.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_CNAME,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "ext.ns1.svc.cluster.local. 30 CNAME " SVC1 } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, coredns_extensions_all_port_srv_and_clusterip_endpoints)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const struct t_case cases[] = {
		/* <svc>.<ns>.svc SRV: every port, named or not; weight floor(100/3) */
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_SRV, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 SRV 0 33 80 " SVC1, SVC1 " 30 SRV 0 33 53 " SVC1,
		    SVC1 " 30 SRV 0 33 8080 " SVC1 },
		  .additional = { SVC1 " 30 A 10.0.0.1", SVC1 " 30 AAAA fd00::1" } },
		{ .qname = HDLS, .qtype = KNOT_RRTYPE_SRV, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { HDLS " 30 SRV 0 50 80 web-0." HDLS, HDLS " 30 SRV 0 50 80 10-244-1-2." HDLS },
		  .additional = { "web-0." HDLS " 30 A 10.244.1.1", "web-0." HDLS " 30 AAAA fd00::1:1",
		    "10-244-1-2." HDLS " 30 A 10.244.1.2" } },
		/* endpoint names of a ClusterIP service */
		{ .qname = "10-244-0-1." SVC1, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "10-244-0-1." SVC1 " 30 A 10.244.0.1" } },
		/* A on a _port._proto name: the service's addresses */
		{ .qname = "_http._tcp." SVC1, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "_http._tcp." SVC1 " 30 A 10.0.0.1" } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

/* ---- NXDOMAIN vs NODATA (reference §1.5) ----------------------------------------- */

Test(kubernetes, nxdomain_and_nodata_follow_the_coredns_table)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const uint8_t NX = KNOT_RCODE_NXDOMAIN, OK = KNOT_RCODE_NOERROR;
	const struct t_case cases[] = {
		{ .qname = "cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "cluster.local.", .qtype = KNOT_RRTYPE_NS, .rcode = OK,
		  .answer = { "cluster.local. 30 NS ns.dns.cluster.local." } },
		{ .qname = "svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "pod.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "quiet.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "nons.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "other.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "a.b.c.d.e.f.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "x._http._tcp." SVC1, .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "ns.dns.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "ns.dns.cluster.local.", .qtype = KNOT_RRTYPE_AAAA, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "dns-version.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "x.dns-version.cluster.local.", .qtype = KNOT_RRTYPE_TXT, .rcode = NX,
		  .answer = { NULL } },
		/* existing names, types they lack */
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_TXT, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_MX, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "noeps.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_AAAA, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "v6only.ns2.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "web-0." HDLS, .qtype = KNOT_RRTYPE_TXT, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "10-244-1-2." HDLS, .qtype = KNOT_RRTYPE_AAAA, .rcode = OK,
		  .answer = { NULL } },
		{ .qname = "1.0.0.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_A, .rcode = OK,
		  .answer = { NULL } },
		/* no such object */
		{ .qname = "nosvc.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "svc1.ns9.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "nope." HDLS, .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "10-244-0-9." SVC1, .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } }, /* not ready */
		{ .qname = "_nope._tcp." SVC1, .qtype = KNOT_RRTYPE_SRV, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "_http._udp." SVC1, .qtype = KNOT_RRTYPE_SRV, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "_8080._tcp." SVC1, .qtype = KNOT_RRTYPE_SRV, .rcode = NX,
		  .answer = { NULL } }, /* unnamed port */
		/* headless without ready endpoints (R6), ExternalName IP */
		{ .qname = "empty.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "extip.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "x.ext.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
		/* reverse names nobody has, or that are not addresses */
		{ .qname = "9.9.9.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "0.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR, .rcode = NX,
		  .answer = { NULL } },
		{ .qname = "300.0.0.10.in-addr.arpa.", .qtype = KNOT_RRTYPE_PTR, .rcode = NX,
		  .answer = { NULL } },
		/* pods: disabled by default */
		{ .qname = "10-244-2-7.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A, .rcode = NX,
		  .answer = { NULL } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, apex_soa_has_the_coredns_fields_and_the_snapshot_serial)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	struct t_query *q = t_query_new("cluster.local.", KNOT_RRTYPE_SOA, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	const knot_pkt_t *p = t_query_parse_answer(q);
	const knot_pktsection_t *an = knot_pkt_section(p, KNOT_ANSWER);
	cr_assert_eq(an->count, 1);
	const knot_rrset_t *soa = knot_pkt_rr(an, 0);
	cr_assert_eq(soa->type, KNOT_RRTYPE_SOA);
	cr_assert_eq(soa->ttl, 30);
	const knot_rdata_t *rd = soa->rrs.rdata;
	char text[KNOT_DNAME_TXT_MAXLEN + 1];
	knot_dname_to_str(text, knot_soa_primary(rd), sizeof(text));
	cr_assert_str_eq(text, "ns.dns.cluster.local.");
	knot_dname_to_str(text, knot_soa_mailbox(rd), sizeof(text));
	cr_assert_str_eq(text, "hostmaster.cluster.local.");
	const struct tern_cluster *c = tern_cluster_source_snapshot(h.src);
	cr_assert_eq(knot_soa_serial(rd), tern_cluster_serial(c));
	cr_assert_eq(knot_soa_refresh(rd), 7200);
	cr_assert_eq(knot_soa_retry(rd), 1800);
	cr_assert_eq(knot_soa_expire(rd), 86400);
	cr_assert_eq(knot_soa_minimum(rd), 30);
	cr_assert_eq(knot_pkt_section(p, KNOT_AUTHORITY)->count, 0);
	t_query_free(q);

	/* With the default TTL 5 the SOA TTL is 5; above 300 it is capped at 300. */
	t_k8s_deinit(&h);
}

Test(kubernetes, soa_ttl_is_capped_at_300)
{
	struct t_k8s h;
	uint32_t ttl = 3600;
	struct tern_kubernetes_conf conf = { .ttl = &ttl };
	t_k8s_cluster(&h, &conf);
	struct t_query *q = t_query_new("cluster.local.", KNOT_RRTYPE_SOA, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	const knot_pkt_t *p = t_query_parse_answer(q);
	const knot_rrset_t *soa = knot_pkt_rr(knot_pkt_section(p, KNOT_ANSWER), 0);
	cr_assert_eq(soa->ttl, 300);
	cr_assert_eq(knot_soa_minimum(soa->rrs.rdata), 3600);
	t_query_free(q);
	const struct t_case nx = { .qname = "nosvc.ns1.svc.cluster.local.",
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } };
	run_case(&h, &nx, 3600);
	t_k8s_deinit(&h);
}

Test(kubernetes, any_on_an_existing_name_is_rfc8482_hinfo)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const struct t_case cases[] = {
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_ANY, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 HINFO \"RFC8482\" \"\"" } },
		{ .qname = "web-0." HDLS, .qtype = KNOT_RRTYPE_ANY, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "web-0." HDLS " 30 HINFO \"RFC8482\" \"\"" } },
		{ .qname = "nosvc.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_ANY,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, externalname_loops_stop_after_a_bounded_chase)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	struct t_query *q = t_query_new("loop.ns1.svc.cluster.local.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), KNOT_RCODE_NOERROR);
	cr_assert_geq(knot_pkt_section(p, KNOT_ANSWER)->count, 1);
	cr_assert_leq(knot_pkt_section(p, KNOT_ANSWER)->count, 8);
	t_query_free(q);
	t_k8s_deinit(&h);
}

/* ---- options ---------------------------------------------------------------------- */

Test(kubernetes, pods_insecure_echo_the_ip_when_the_namespace_exists)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30, .pods = TERN_KUBERNETES_PODS_INSECURE };
	t_k8s_cluster(&h, &conf);
	const struct t_case cases[] = {
		{ .qname = "1-2-3-4.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1-2-3-4.ns1.pod.cluster.local. 30 A 1.2.3.4" } },
		{ .qname = "fd00--7.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_AAAA,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "fd00--7.ns1.pod.cluster.local. 30 AAAA fd00::7" } },
		{ .qname = "fd00--7.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { NULL } },
		{ .qname = "1-2-3-4.nons.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
		{ .qname = "not-an-ip.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
		{ .qname = "ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { NULL } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, pods_verified_answer_only_existing_pods)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30, .pods = TERN_KUBERNETES_PODS_VERIFIED };
	t_k8s_cluster(&h, &conf);
	cr_assert(h.src->conf.watch_pods, "verified watches pods");
	const struct t_case cases[] = {
		{ .qname = "10-244-2-7.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "10-244-2-7.ns1.pod.cluster.local. 30 A 10.244.2.7" } },
		{ .qname = "10-244-2-8.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
		{ .qname = "10-244-2-7.ns2.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, pods_disabled_are_nxdomain_and_watch_no_pods)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	cr_assert_not(h.src->conf.watch_pods);
	cr_assert(h.src->conf.watch_endpoints);
	const struct t_case cases[] = {
		{ .qname = "1-2-3-4.ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
		{ .qname = "ns1.pod.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, ignore_empty_service_makes_endpointless_clusterip_nxdomain)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30, .ignore_empty_service = true };
	t_k8s_cluster(&h, &conf);
	const struct t_case cases[] = {
		{ .qname = "noeps.ns1.svc.cluster.local.", .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } },
		{ .qname = SVC1, .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 A 10.0.0.1" } },
	};
	run_cases(&h, cases, N(cases), 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, without_ignore_empty_service_an_endpointless_clusterip_answers)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const struct t_case c = { .qname = "noeps.ns1.svc.cluster.local.",
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "noeps.ns1.svc.cluster.local. 30 A 10.0.0.5" } };
	run_case(&h, &c, 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, fallthrough_passes_nxdomain_on_only_in_the_listed_zones)
{
	struct t_k8s h;
	char *fall[] = { "in-addr.arpa", "ip6.arpa" };
	struct tern_kubernetes_conf conf = { .fallthrough = fall, .fallthrough_count = 2 };
	t_k8s_cluster(&h, &conf);
	cr_assert_eq(ask(&h, "9.9.9.10.in-addr.arpa.", KNOT_RRTYPE_PTR), TERN_NEXT);
	cr_assert_eq(ask(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR), TERN_DONE);
	cr_assert_eq(ask(&h, "nosvc.ns1.svc.cluster.local.", KNOT_RRTYPE_A), TERN_DONE);
	/* NODATA is an answer, not a miss. */
	cr_assert_eq(ask(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_TXT), TERN_DONE);
	t_k8s_deinit(&h);
}

Test(kubernetes, fallthrough_root_passes_every_nxdomain_on)
{
	struct t_k8s h;
	char *fall[] = { "." };
	struct tern_kubernetes_conf conf = { .fallthrough = fall, .fallthrough_count = 1 };
	t_k8s_cluster(&h, &conf);
	cr_assert_eq(ask(&h, "nosvc.ns1.svc.cluster.local.", KNOT_RRTYPE_A), TERN_NEXT);
	cr_assert_eq(ask(&h, "9.9.9.10.in-addr.arpa.", KNOT_RRTYPE_PTR), TERN_NEXT);
	cr_assert_eq(ask(&h, SVC1, KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(ask(&h, SVC1, KNOT_RRTYPE_TXT), TERN_DONE);
	t_k8s_deinit(&h);
}

Test(kubernetes, noendpoints_makes_headless_and_endpoint_names_nxdomain)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30, .noendpoints = true };
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	cr_assert_not(h.src->conf.watch_endpoints);
	t_fill(&h);
	tern_cluster_builder_set_synced(h.b);
	t_publish(&h);
	/* The watcher would never feed slices; the builder here was fed them anyway. The
	 * answers must not depend on it for ClusterIP services. */
	const struct t_case c = { .qname = SVC1,
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 A 10.0.0.1" } };
	run_case(&h, &c, 30);
	t_k8s_deinit(&h);
}

/* ---- sync, case, zones, size -------------------------------------------------- */

Test(kubernetes, before_the_first_publish_every_zone_name_is_servfail)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { 0 };
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	cr_assert_not(tern_plugin_kubernetes.ready(&h.pi));
	cr_assert_eq(ask(&h, SVC1, KNOT_RRTYPE_A), TERN_FAIL);
	cr_assert_eq(ask(&h, "cluster.local.", KNOT_RRTYPE_SOA), TERN_FAIL);
	cr_assert_eq(ask(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR), TERN_FAIL);
	cr_assert_eq(ask(&h, "example.com.", KNOT_RRTYPE_A), TERN_NEXT);
	t_k8s_deinit(&h);
}

Test(kubernetes, before_the_first_sync_name_errors_are_servfail_but_data_answers)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	t_fill(&h);
	t_publish(&h); /* not synced */
	cr_assert_not(tern_plugin_kubernetes.ready(&h.pi));
	cr_assert_eq(ask(&h, "nosvc.ns1.svc.cluster.local.", KNOT_RRTYPE_A), TERN_FAIL);
	const struct t_case c = { .qname = SVC1,
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { SVC1 " 30 A 10.0.0.1" } };
	run_case(&h, &c, 30);

	tern_cluster_builder_set_synced(h.b);
	t_publish(&h);
	cr_assert(tern_plugin_kubernetes.ready(&h.pi));
	const struct t_case nx = { .qname = "nosvc.ns1.svc.cluster.local.",
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NXDOMAIN,
		  .answer = { NULL } };
	run_case(&h, &nx, 30);
	t_k8s_deinit(&h);
}

Test(kubernetes, answers_echo_the_question_case)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	struct t_query *q = t_query_new("SVC1.Ns1.SVC.Cluster.Local.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_ancount(p->wire), 1);
	/* The owner is a pointer to the question, which keeps the client's spelling. */
	const uint8_t *first = p->wire + KNOT_WIRE_HEADER_SIZE + knot_pkt_question_size(p);
	cr_assert(first[0] == 0xc0 && first[1] == KNOT_WIRE_HEADER_SIZE);
	cr_assert_eq(memcmp(p->wire + KNOT_WIRE_HEADER_SIZE, "\x04SVC1\x03Ns1", 9), 0);
	t_query_free(q);
	t_k8s_deinit(&h);
}

Test(kubernetes, names_outside_the_zones_and_other_classes_pass_on)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { 0 };
	t_k8s_cluster(&h, &conf);
	cr_assert_eq(ask(&h, "example.com.", KNOT_RRTYPE_A), TERN_NEXT);
	cr_assert_eq(ask(&h, "cluster.local.example.", KNOT_RRTYPE_A), TERN_NEXT);
	struct t_query *q = t_query_new(SVC1, KNOT_RRTYPE_A, 65535);
	q->req.qclass = KNOT_CLASS_CH;
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_NEXT);
	t_query_free(q);
	t_k8s_deinit(&h);
}

Test(kubernetes, zones_option_limits_the_names_served)
{
	struct t_k8s h;
	char *zones[] = { "cluster.local" };
	struct tern_kubernetes_conf conf = { .zones = zones, .zones_count = 1 };
	t_k8s_cluster(&h, &conf);
	cr_assert_eq(ask(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR), TERN_NEXT);
	cr_assert_eq(ask(&h, SVC1, KNOT_RRTYPE_A), TERN_DONE);
	t_k8s_deinit(&h);
}

Test(kubernetes, an_answer_too_big_for_the_client_is_truncated)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { 0 };
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	cr_assert_eq(tern_cluster_builder_namespace(h.b, "big"), 0);
	t_service(&h, "big", "many", TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
	struct t_ep eps[64];
	char addrs[64][16];
	for (unsigned i = 0; i < 64; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.1.0.%u", i + 1);
		eps[i] = (struct t_ep){ addrs[i], NULL, true };
	}
	t_slice(&h, "big", "many-1", "many", eps, 64, http_port, 1);
	tern_cluster_builder_set_synced(h.b);
	t_publish(&h);

	struct t_query *q = t_query_new("many.big.svc.cluster.local.", KNOT_RRTYPE_A, 512);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	cr_assert(q->req.truncated, "64 A records do not fit in 512 bytes");
	t_query_free(q);

	q = t_query_new("many.big.svc.cluster.local.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	cr_assert_not(q->req.truncated);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_pkt_section(p, KNOT_ANSWER)->count, 64);
	t_query_free(q);

	/* 64 SRV records: weight floor(100/64) = 1. */
	q = t_query_new("_http._tcp.many.big.svc.cluster.local.", KNOT_RRTYPE_SRV, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	p = t_query_parse_answer(q);
	const knot_pktsection_t *an = knot_pkt_section(p, KNOT_ANSWER);
	cr_assert_eq(an->count, 64);
	for (uint16_t i = 0; i < an->count; i++)
		cr_assert_eq(knot_wire_read_u16(knot_pkt_rr(an, i)->rrs.rdata->data + 2), 1);
	cr_assert_eq(knot_pkt_section(p, KNOT_ADDITIONAL)->count, 64);
	t_query_free(q);
	t_k8s_deinit(&h);
}

/* ---- configuration ---------------------------------------------------------------- */

static void expect_config_error(struct tern_kubernetes_conf *conf, const char *needle)
{
	struct t_k8s h;
	cr_assert_eq(t_k8s_init(&h, conf), TERN_ECONFIG, "expected a config error (%s)", needle);
	bool found = false;
	for (size_t i = 0; i < h.diag.nmsgs; i++)
		found = found || strstr(h.diag.msgs[i], needle) != NULL;
	cr_assert(found, "no message containing \"%s\" (first: %s)", needle,
	          h.diag.nmsgs ? h.diag.msgs[0] : "none");
	t_k8s_deinit(&h);
}

Test(kubernetes, config_errors_are_reported_with_their_key)
{
	uint32_t big = 3601;
	struct tern_kubernetes_conf c1 = { .ttl = &big };
	expect_config_error(&c1, "kubernetes.ttl: must be 0..3600");

	char *ns[] = { "default" };
	struct tern_kubernetes_conf c2 = { .namespaces = ns, .namespaces_count = 1,
	                                   .namespace_labels = "team=a" };
	expect_config_error(&c2, "mutually exclusive");

	char *rev[] = { "in-addr.arpa", "ip6.arpa" };
	struct tern_kubernetes_conf c3 = { .zones = rev, .zones_count = 2 };
	expect_config_error(&c3, "not a reverse zone");

	struct tern_kubernetes_conf c4 = { .startup_timeout = "soon" };
	expect_config_error(&c4, "kubernetes.startup_timeout");

	struct tern_kubernetes_conf c5 = { .endpoint = "apiserver:6443" };
	expect_config_error(&c5, "kubernetes.endpoint");

	struct tern_kubernetes_conf c6 = { .context = "prod" };
	expect_config_error(&c6, "needs kubeconfig");

	struct tern_kubernetes_tls_conf tls = { .cert = "c.pem" };
	struct tern_kubernetes_conf c7 = { .endpoint = "https://k:6443", .tls = &tls };
	expect_config_error(&c7, "cert and key go together");

	char *bad_ns[] = { "Not_A_Namespace" };
	struct tern_kubernetes_conf c8 = { .namespaces = bad_ns, .namespaces_count = 1 };
	expect_config_error(&c8, "kubernetes.namespaces");
}

Test(kubernetes, the_source_gets_the_watch_settings)
{
	struct t_k8s h;
	char *ns[] = { "ns1", "ns2" };
	struct tern_kubernetes_tls_conf tls = { .cert = "c.pem", .key = "k.pem", .ca = "/ca.pem" };
	struct tern_kubernetes_conf conf = {
		.endpoint = "https://k:6443", .tls = &tls, .namespaces = ns, .namespaces_count = 2,
		.labels = "app=x", .endpoint_pod_names = true, .startup_timeout = "1m",
	};
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	const struct tern_cluster_source_conf *sc = &h.src->conf;
	cr_assert_str_eq(sc->endpoint, "https://k:6443");
	cr_assert_str_eq(sc->tls_cert, "/etc/c.pem");     /* relative to the config dir */
	cr_assert_str_eq(sc->tls_key, "/etc/k.pem");
	cr_assert_str_eq(sc->tls_ca, "/ca.pem");
	cr_assert_eq(sc->nnamespaces, 2);
	cr_assert_str_eq(sc->labels, "app=x");
	cr_assert(sc->endpoint_pod_names);
	cr_assert(sc->watch_endpoints);
	cr_assert_not(sc->watch_pods);
	cr_assert_eq(sc->startup_timeout_ms, 60000);
	cr_assert_eq(h.src->refs, 1);
	t_k8s_deinit(&h);
}

Test(kubernetes, the_first_non_reverse_zone_is_the_ptr_zone)
{
	struct t_k8s h;
	char *zones[] = { "in-addr.arpa", "Example.Org", "cluster.local" };
	struct tern_kubernetes_conf conf = { .zones = zones, .zones_count = 3, .ttl = &ttl30 };
	t_k8s_cluster(&h, &conf);
	const struct t_case c = { .qname = "1.0.0.10.in-addr.arpa.",
		  .qtype = KNOT_RRTYPE_PTR,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "1.0.0.10.in-addr.arpa. 30 PTR svc1.ns1.svc.example.org." } };
	run_case(&h, &c, 30);
	const struct t_case c2 = { .qname = "svc1.ns1.svc.example.org.",
		  .qtype = KNOT_RRTYPE_A,
		  .rcode = KNOT_RCODE_NOERROR,
		  .answer = { "svc1.ns1.svc.example.org. 30 A 10.0.0.1" } };
	run_case(&h, &c2, 30);
	t_k8s_deinit(&h);
}

/* ---- the YAML schema ------------------------------------------------------------- */

static const char full_yaml[] =
	"servers:\n"
	"  - zones: [cluster.local, in-addr.arpa, ip6.arpa]\n"
	"    listen: [\"127.0.0.1:5353\"]\n"
	"    plugins:\n"
	"      kubernetes:\n"
	"        zones: [cluster.local, in-addr.arpa, ip6.arpa]\n"
	"        endpoint: https://127.0.0.1:6443\n"
	"        tls: {cert: client.pem, key: client-key.pem, ca: ca.pem}\n"
	"        kubeconfig: kubeconfig\n"
	"        context: test\n"
	"        namespaces: [ns1, ns2]\n"
	"        labels: app=dns\n"
	"        pods: verified\n"
	"        endpoint_pod_names: true\n"
	"        ttl: 30\n"
	"        noendpoints: false\n"
	"        fallthrough: [in-addr.arpa, ip6.arpa]\n"
	"        ignore_empty_service: true\n"
	"        startup_timeout: 10s\n";

Test(kubernetes, yaml_loads_every_option)
{
	struct tern_diag diag;
	struct tern_conf *conf = NULL;
	tern_diag_init(&diag, "t.yaml");
	int ret = tern_conf_load_string(full_yaml, strlen(full_yaml), "/etc/tern", &diag, &conf);
	cr_assert_eq(ret, 0, "load: %s", diag.nmsgs ? diag.msgs[0] : "?");
	const struct tern_kubernetes_conf *k = conf->servers[0].plugins->kubernetes;
	cr_assert_not_null(k);
	cr_assert_eq(k->zones_count, 3);
	cr_assert_str_eq(k->endpoint, "https://127.0.0.1:6443");
	cr_assert_str_eq(k->tls->key, "client-key.pem");
	cr_assert_str_eq(k->kubeconfig, "kubeconfig");
	cr_assert_str_eq(k->context, "test");
	cr_assert_eq(k->namespaces_count, 2);
	cr_assert_str_eq(k->labels, "app=dns");
	cr_assert_eq(k->pods, TERN_KUBERNETES_PODS_VERIFIED);
	cr_assert(k->endpoint_pod_names);
	cr_assert_eq(*k->ttl, 30);
	cr_assert_eq(k->fallthrough_count, 2);
	cr_assert_str_eq(k->fallthrough[1], "ip6.arpa");
	cr_assert(k->ignore_empty_service);
	cr_assert_str_eq(k->startup_timeout, "10s");

	/* And the plugin accepts it: paths resolve under the config's directory. */
	struct t_k8s h;
	cr_assert_eq(t_k8s_init(&h, conf->servers[0].plugins->kubernetes), 0,
	             "init: %s", h.diag.nmsgs ? h.diag.msgs[0] : "?");
	cr_assert_str_eq(h.src->conf.kubeconfig, "/etc/kubeconfig");
	cr_assert_str_eq(h.src->conf.context, "test");
	cr_assert(h.src->conf.watch_pods);
	cr_assert_eq(h.src->conf.startup_timeout_ms, 10000);
	t_k8s_deinit(&h);
	tern_conf_free(conf);
	tern_diag_deinit(&diag);
}

Test(kubernetes, yaml_rejects_an_unknown_pods_mode)
{
	static const char yaml[] =
		"servers:\n"
		"  - zones: [cluster.local]\n"
		"    listen: [\"127.0.0.1:5353\"]\n"
		"    plugins:\n"
		"      kubernetes: {pods: sometimes}\n";
	struct tern_diag diag;
	struct tern_conf *conf = NULL;
	tern_diag_init(&diag, "t.yaml");
	cr_assert_eq(tern_conf_load_string(yaml, strlen(yaml), "/etc/tern", &diag, &conf),
	             TERN_ECONFIG);
	cr_assert_null(conf);
	tern_diag_deinit(&diag);
}

Test(kubernetes, yaml_empty_block_uses_the_server_zones_and_defaults)
{
	static const char yaml[] =
		"servers:\n"
		"  - zones: [cluster.local]\n"
		"    listen: [\"127.0.0.1:5353\"]\n"
		"    plugins:\n"
		"      kubernetes: {fallthrough: []}\n";
	struct tern_diag diag;
	struct tern_conf *conf = NULL;
	tern_diag_init(&diag, "t.yaml");
	cr_assert_eq(tern_conf_load_string(yaml, strlen(yaml), "/etc/tern", &diag, &conf), 0,
	             "load: %s", diag.nmsgs ? diag.msgs[0] : "?");
	const struct tern_kubernetes_conf *k = conf->servers[0].plugins->kubernetes;
	cr_assert_eq(k->pods, TERN_KUBERNETES_PODS_DISABLED);
	cr_assert_null(k->ttl);
	cr_assert_eq(k->fallthrough_count, 0);
	tern_conf_free(conf);
	tern_diag_deinit(&diag);
}

Test(kubernetes, zone_transfers_are_refused)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { 0 };
	t_k8s_cluster(&h, &conf);
	struct t_query *q = t_query_new("cluster.local.", KNOT_RRTYPE_AXFR, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	cr_assert_eq(knot_wire_get_rcode(q->req.answer->wire), KNOT_RCODE_REFUSED);
	cr_assert_eq(knot_wire_get_ancount(q->req.answer->wire), 0);
	t_query_free(q);
	t_k8s_deinit(&h);
}

Test(kubernetes, an_address_under_two_endpoint_names_is_answered_once)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { 0 };
	cr_assert_eq(t_k8s_init(&h, &conf), 0);
	cr_assert_eq(tern_cluster_builder_namespace(h.b, "dup"), 0);
	t_service(&h, "dup", "few", TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
	t_service(&h, "dup", "many", TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
	/* The same addresses with a hostname in one slice and without in the other. */
	struct t_ep named[20], bare[20];
	char addrs[20][16], hosts[20][16];
	for (unsigned i = 0; i < 20; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.2.0.%u", i + 1);
		snprintf(hosts[i], sizeof(hosts[i]), "h%u", i);
		named[i] = (struct t_ep){ addrs[i], hosts[i], true };
		bare[i] = (struct t_ep){ addrs[i], NULL, true };
	}
	t_slice(&h, "dup", "few-a", "few", named, 2, http_port, 1);      /* linear check */
	t_slice(&h, "dup", "few-b", "few", bare, 2, http_port, 1);
	t_slice(&h, "dup", "many-a", "many", named, 20, http_port, 1);   /* hash set */
	t_slice(&h, "dup", "many-b", "many", bare, 20, http_port, 1);
	tern_cluster_builder_set_synced(h.b);
	t_publish(&h);

	const struct t_case c = { .qname = "few.dup.svc.cluster.local.", .qtype = KNOT_RRTYPE_A,
	                          .rcode = KNOT_RCODE_NOERROR,
	                          .answer = { "few.dup.svc.cluster.local. 5 A 10.2.0.1",
	                                      "few.dup.svc.cluster.local. 5 A 10.2.0.2" } };
	run_case(&h, &c, 5);
	struct t_query *q = t_query_new("many.dup.svc.cluster.local.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(tern_plugin_kubernetes.query(&q->req, &h.pi), TERN_DONE);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_pkt_section(p, KNOT_ANSWER)->count, 20);
	t_query_free(q);
	/* Both names of an address resolve to it. */
	const struct t_case named_case = { .qname = "h3.many.dup.svc.cluster.local.",
	                                   .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
	                                   .answer = { "h3.many.dup.svc.cluster.local. 5 A 10.2.0.4" } };
	run_case(&h, &named_case, 5);
	const struct t_case bare_case = { .qname = "10-2-0-4.many.dup.svc.cluster.local.",
	                                  .qtype = KNOT_RRTYPE_A, .rcode = KNOT_RCODE_NOERROR,
	                                  .answer = { "10-2-0-4.many.dup.svc.cluster.local. 5 A "
	                                              "10.2.0.4" } };
	run_case(&h, &bare_case, 5);
	t_k8s_deinit(&h);
}

/* ---- hot answers under churn -------------------------------------------------------- */

/*
 * The engine with the kubernetes plugin as its whole chain, with and without a table
 * of hot answers: snapshots are published without advancing the publish epoch, and
 * each kept answer says which snapshot part it was read from (lib/cluster/snapshot.h).
 * After every random change, every answer replayed must be byte for byte what the
 * chain answers now (SOA serial included), and answers whose part no change touched
 * must still be replayed.
 */
struct t_engine {
	uint8_t arena_buf[256 * 1024];
	struct tern_arena arena;
	knot_mm_t mm;
	knot_dname_t *root;
	struct tern_server server;
	struct tern_route route;
	struct tern_listen_routes listens;
	struct tern_view view;
	struct sockaddr_storage client;
	struct tern_hot *hot;
};

static void t_engine_init(struct t_engine *e, struct tern_plugin_inst *chain)
{
	tern_arena_init(&e->arena, e->arena_buf, sizeof(e->arena_buf), &e->mm);
	e->root = knot_dname_from_str_alloc(".");
	e->server = (struct tern_server){ .zones = &e->root, .nzones = 1, .chain = chain,
	                                  .chain_len = 1 };
	e->route = (struct tern_route){ .zone = e->root, .server = &e->server, .stats_slot = -1,
	                                .len = 1 };
	e->listens = (struct tern_listen_routes){ .routes = &e->route, .nroutes = 1 };
	e->view = (struct tern_view){ .servers = &e->server, .nservers = 1,
	                              .listens = &e->listens, .nlistens = 1 };
	e->client.ss_family = AF_INET;
	e->hot = tern_hot_new(4096);
	cr_assert_not_null(e->hot);
}

static void t_engine_deinit(struct t_engine *e)
{
	tern_hot_free(e->hot);
	free(e->root);
}

/* Answer @p in (@p len bytes) into @p out, with the hot answers or without. */
static size_t t_engine_ask(struct t_engine *e, bool hot, const uint8_t *in, size_t len,
                           uint8_t *out)
{
	uint8_t q[512];
	memcpy(q, in, len);
	struct tern_query_ctx ctx = {
		.view = &e->view, .proto = TERN_PROTO_UDP, .src = &e->client,
		.arena = &e->arena, .mm = &e->mm, .now_ms = 1000, .hot = hot ? e->hot : NULL,
		.epoch = tern_rcu_epoch_read(),
	};
	return tern_process(&ctx, q, len, out, 4096);
}

static uint32_t t_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* One random change: a service, a slice, a namespace or a pod, added, changed or gone. */
static void t_churn(struct t_k8s *h, uint32_t *rng)
{
	static const char *const nss[] = { "ns1", "ns2", "quiet", "ns3" };
	static const char *const names[] = { "a", "b", "c", "svc1", "hdls" };
	static const char *const hosts[] = { "web-0", "web-1", NULL };
	char addr[32], addr2[32], slice[16];
	const char *ns = nss[t_rand(rng) % 4], *name = names[t_rand(rng) % 5];
	snprintf(addr, sizeof(addr), "10.9.%u.%u", t_rand(rng) % 2, t_rand(rng) % 4 + 1);
	snprintf(addr2, sizeof(addr2), "fd00::9:%u", t_rand(rng) % 4 + 1);
	snprintf(slice, sizeof(slice), "%s-%u", name, t_rand(rng) % 2);
	switch (t_rand(rng) % 9) {
	case 0:
	case 1:
		t_service(h, ns, name, TERN_SVC_CLUSTER_IP, addr, t_rand(rng) % 2 ? addr2 : NULL,
		          NULL, http_port, 1);
		break;
	case 2:
		t_service(h, ns, name, TERN_SVC_HEADLESS, NULL, NULL, NULL, http_port, 1);
		break;
	case 3:
		tern_cluster_builder_service_delete(h->b, ns, name);
		break;
	case 4:
	case 5: {
		const struct t_ep eps[] = { { addr, hosts[t_rand(rng) % 3], t_rand(rng) % 4 != 0 },
		                            { addr2, hosts[t_rand(rng) % 3], true } };
		t_slice(h, ns, slice, name, eps, 1 + t_rand(rng) % 2, http_port, 1);
		break;
	}
	case 6:
		tern_cluster_builder_slice_delete(h->b, ns, slice);
		break;
	case 7:
		if (t_rand(rng) % 2)
			tern_cluster_builder_namespace(h->b, ns);
		else
			tern_cluster_builder_namespace_delete(h->b, ns);
		break;
	default: {
		struct tern_ip pip = ip(addr);
		struct tern_k8s_pod pod = { .ns = ns, .name = slice, .ips = &pip, .nips = 1 };
		if (t_rand(rng) % 2)
			tern_cluster_builder_pod(h->b, &pod);
		else
			tern_cluster_builder_pod_delete(h->b, ns, slice);
		break;
	}
	}
}

/* The questions asked after each change: every kind of name the churn touches. */
static size_t t_churn_questions(char (*out)[96], uint16_t *types, size_t cap)
{
	static const char *const nss[] = { "ns1", "ns2", "quiet", "ns3", "nope" };
	static const char *const names[] = { "a", "b", "svc1", "hdls", "ext" };
	static const char *const prefixes[] = { "", "web-0.", "_http._tcp.", "10-9-0-1." };
	static const uint16_t qtypes[] = { KNOT_RRTYPE_A, KNOT_RRTYPE_AAAA, KNOT_RRTYPE_SRV,
	                                   KNOT_RRTYPE_TXT };
	size_t n = 0;
	for (size_t i = 0; i < 5; i++) {
		for (size_t j = 0; j < 5; j++) {
			for (size_t p = 0; p < 4; p++) {
				cr_assert_lt(n, cap);
				snprintf(out[n], sizeof(out[n]), "%s%s.%s.svc.cluster.local.",
				         prefixes[p], names[j], nss[i]);
				types[n] = qtypes[(i + j + p) % 4];
				n++;
			}
		}
		snprintf(out[n], sizeof(out[n]), "%s.svc.cluster.local.", nss[i]);
		types[n++] = KNOT_RRTYPE_A;
		snprintf(out[n], sizeof(out[n]), "10-9-0-1.%s.pod.cluster.local.", nss[i]);
		types[n++] = KNOT_RRTYPE_A;
		snprintf(out[n], sizeof(out[n]), "www.example.com.%s.svc.cluster.local.", nss[i]);
		types[n++] = KNOT_RRTYPE_A;
	}
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned a = 1; a <= 4; a++) {
			snprintf(out[n], sizeof(out[n]), "%u.%u.9.10.in-addr.arpa.", a, k);
			types[n++] = KNOT_RRTYPE_PTR;
		}
	}
	snprintf(out[n], sizeof(out[n]), "1.0.0.0.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	         "0.0.0.0.0.0.d.f.ip6.arpa.");
	types[n++] = KNOT_RRTYPE_PTR;
	snprintf(out[n], sizeof(out[n]), "cluster.local.");
	types[n++] = KNOT_RRTYPE_SOA;
	snprintf(out[n], sizeof(out[n]), "www.example.com.svc.cluster.local.");
	types[n++] = KNOT_RRTYPE_A;
	return n;
}

static void t_hot_churn(enum tern_kubernetes_pods pods, uint32_t seed)
{
	struct t_k8s h;
	struct tern_kubernetes_conf conf = { .ttl = &ttl30, .pods = pods };
	t_k8s_cluster(&h, &conf);
	static struct t_engine e;
	t_engine_init(&e, &h.pi);
	static char names[160][96];
	static uint16_t types[160];
	size_t nq = t_churn_questions(names, types, 150);
	static uint8_t in[512], hot_out[4096], ref_out[4096];
	static unsigned stored_round[160];
	unsigned replays = 0, across = 0;
	uint32_t rng = seed;
	for (unsigned round = 1; round <= 400; round++) {
		for (unsigned c = 1 + t_rand(&rng) % 3; c > 0; c--)
			t_churn(&h, &rng);
		t_publish(&h);
		for (size_t i = 0; i < nq; i++) {
			struct t_wire_opts o = { .id = (uint16_t)(round + i),
			                         .edns = i % 2 ? 1232 : 0 };
			size_t ql = t_wire_query(in, names[i], types[i], &o);
			struct tern_hot_key key;
			struct tern_hot_hit hit = tern_hot_serve(e.hot, tern_rcu_epoch_read(),
			                                         e.view.generation, 0, false, 1000,
			                                         in, ql, hot_out, sizeof(hot_out),
			                                         &key);
			size_t hl = hit.len;
			if (hl) {
				replays++;
				across += stored_round[i] < round;
			} else {
				hl = t_engine_ask(&e, true, in, ql, hot_out);   /* keeps it */
				stored_round[i] = round;
			}
			size_t rl = t_engine_ask(&e, false, in, ql, ref_out);
			cr_assert_eq(hl, rl, "round %u: %s/%u: %s answer %zu bytes, chain %zu",
			             round, names[i], types[i], hit.len ? "replayed" : "kept", hl, rl);
			cr_assert_arr_eq(hot_out, ref_out, rl, "round %u: %s/%u: %s answer differs",
			                 round, names[i], types[i], hit.len ? "replayed" : "kept");
		}
	}
	/* Most questions' parts are untouched by one change: their answers outlive it. */
	cr_assert_gt(across, 400 * nq / 4, "%u of %u answers replayed across a publish",
	             across, 400 * (unsigned)nq);
	cr_assert_gt(replays, across - 1);
	t_engine_deinit(&e);
	t_k8s_deinit(&h);
}

Test(kubernetes, hot_answers_follow_churn_byte_for_byte)
{
	t_hot_churn(TERN_KUBERNETES_PODS_INSECURE, 0x2545f491u);
}

Test(kubernetes, hot_answers_follow_churn_with_verified_pods)
{
	t_hot_churn(TERN_KUBERNETES_PODS_VERIFIED, 0x9e3779b9u);
}
