/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/local: the query hook is driven with requests built by hand
 * (tests/support/query.h), and each answer is parsed back and compared with a case table
 * (question, verdict, RCODE, answer records as text, owner of the SOA in AUTHORITY), the
 * CoreDNS test-case style. The metrics hook is rendered into memory and checked.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <libknot/libknot.h>

#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/local/local.h"
#include "tests/support/query.h"

extern const struct tern_plugin tern_plugin_local;

#define PLUGIN_ID 2
#define V6_LOOPBACK "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
#define V6_UNSPEC   "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."

struct t_local {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
};

static void t_local_init(struct t_local *l, const struct tern_local_conf *conf)
{
	static const char *zones[] = { "." };
	struct tern_plugin_env env = { .zones = zones, .nzones = 1, .config_dir = "/tmp" };
	*l = (struct t_local){ .pi = { .plugin = &tern_plugin_local, .plugin_id = PLUGIN_ID } };
	tern_diag_init(&l->diag, NULL);
	cr_assert_eq(tern_plugin_local.init(&l->pi, conf, &env, &l->diag), 0);
}

static void t_local_deinit(struct t_local *l)
{
	tern_plugin_local.deinit(&l->pi);
	tern_diag_deinit(&l->diag);
}

/* One record as "TYPE rdata" (SOA: "SOA mname rname minimum"). */
static void rr_text(const knot_rrset_t *rr, char *buf, size_t len)
{
	const knot_rdata_t *rd = rr->rrs.rdata;
	char a[KNOT_DNAME_TXT_MAXLEN + 1], b[KNOT_DNAME_TXT_MAXLEN + 1];
	switch (rr->type) {
	case KNOT_RRTYPE_A:
		inet_ntop(AF_INET, rd->data, a, sizeof(a));
		snprintf(buf, len, "A %.64s", a);
		break;
	case KNOT_RRTYPE_AAAA:
		inet_ntop(AF_INET6, rd->data, a, sizeof(a));
		snprintf(buf, len, "AAAA %.64s", a);
		break;
	case KNOT_RRTYPE_SOA:
		knot_dname_to_str(a, knot_soa_primary(rd), sizeof(a));
		knot_dname_to_str(b, knot_soa_mailbox(rd), sizeof(b));
		snprintf(buf, len, "SOA %.255s %.255s %u", a, b, knot_soa_minimum(rd));
		break;
	default: {
		char type[16];
		knot_rrtype_to_string(rr->type, type, sizeof(type));
		knot_dname_to_str(a, rd->data, sizeof(a));
		snprintf(buf, len, "%.15s %.255s", type, a);
	}
	}
}

struct local_case {
	const char *qname;
	uint16_t qtype;
	enum tern_verdict verdict;
	uint8_t rcode;
	const char *answer;    /* records joined by "; ", in order; "" = none */
	const char *soa_owner; /* owner of the AUTHORITY SOA; NULL = no AUTHORITY */
};

static void run_case(struct t_local *l, const struct local_case *c)
{
	char what[300];
	char tname[16];
	knot_rrtype_to_string(c->qtype, tname, sizeof(tname));
	snprintf(what, sizeof(what), "%s %s", c->qname, tname);

	struct t_query *q = t_query_new(c->qname, c->qtype, 65535);
	enum tern_verdict v = tern_plugin_local.query(&q->req, &l->pi);
	cr_assert_eq(v, c->verdict, "%s: verdict %d, want %d", what, v, c->verdict);
	if (v == TERN_NEXT) {
		cr_assert_not(q->req.answered, "%s: answered on NEXT", what);
		cr_assert_eq(knot_wire_get_ancount(q->req.answer->wire), 0, "%s: untouched", what);
		t_query_free(q);
		return;
	}
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), c->rcode, "%s: rcode %u", what,
	             knot_wire_get_rcode(p->wire));
	cr_assert(knot_wire_get_aa(p->wire), "%s: AA", what);
	cr_assert(q->req.answered && q->req.plugin_id == PLUGIN_ID, "%s: answered by", what);

	char got[2048] = "";
	const knot_pktsection_t *an = knot_pkt_section(p, KNOT_ANSWER);
	for (uint16_t i = 0; i < an->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		cr_assert(knot_dname_is_equal(rr->owner, knot_pkt_qname(p)), "%s: owner", what);
		cr_assert_eq(rr->ttl, 604800, "%s: ttl %u", what, rr->ttl);
		char one[600];
		rr_text(rr, one, sizeof(one));
		size_t n = strlen(got);
		snprintf(got + n, sizeof(got) - n, "%s%s", n ? "; " : "", one);
	}
	cr_assert_str_eq(got, c->answer, "%s: answer \"%s\", want \"%s\"", what, got, c->answer);

	const knot_pktsection_t *ns = knot_pkt_section(p, KNOT_AUTHORITY);
	if (c->soa_owner == NULL) {
		cr_assert_eq(ns->count, 0, "%s: authority not empty", what);
	} else {
		cr_assert_eq(ns->count, 1, "%s: authority has %u records", what, ns->count);
		const knot_rrset_t *soa = knot_pkt_rr(ns, 0);
		cr_assert_eq(soa->type, KNOT_RRTYPE_SOA, "%s: authority type", what);
		char owner[KNOT_DNAME_TXT_MAXLEN + 1];
		knot_dname_to_str(owner, soa->owner, sizeof(owner));
		cr_assert_str_eq(owner, c->soa_owner, "%s: SOA owner %s", what, owner);
		char text[600];
		rr_text(soa, text, sizeof(text));
		cr_assert_str_eq(text, "SOA localhost. root.localhost. 604800", "%s: %s", what, text);
	}
	t_query_free(q);
}

static void run_cases(struct t_local *l, const struct local_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_case(l, &cases[i]);
}

#define SOA_TEXT "SOA localhost. root.localhost. 604800"

TestSuite(local);

Test(local, localhost_answers_loopback_addresses_and_nodata_otherwise)
{
	static const struct local_case cases[] = {
		{ "localhost.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR, "A 127.0.0.1", NULL },
		{ "LocalHost.", KNOT_RRTYPE_AAAA, TERN_DONE, KNOT_RCODE_NOERROR, "AAAA ::1", NULL },
		{ "localhost.", KNOT_RRTYPE_MX, TERN_DONE, KNOT_RCODE_NOERROR, "", "localhost." },
		{ "localhost.", KNOT_RRTYPE_SOA, TERN_DONE, KNOT_RCODE_NOERROR, SOA_TEXT, NULL },
		{ "localhost.", KNOT_RRTYPE_NS, TERN_DONE, KNOT_RCODE_NOERROR, "NS localhost.", NULL },
		{ "localhost.", KNOT_RRTYPE_ANY, TERN_DONE, KNOT_RCODE_NOERROR,
		  SOA_TEXT "; NS localhost.; A 127.0.0.1; AAAA ::1", NULL },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, names_under_localhost_are_loopback_too)
{
	static const struct local_case cases[] = {
		{ "foo.localhost.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR, "A 127.0.0.1", NULL },
		{ "a.B.localhost.", KNOT_RRTYPE_AAAA, TERN_DONE, KNOT_RCODE_NOERROR, "AAAA ::1", NULL },
		{ "foo.localhost.", KNOT_RRTYPE_ANY, TERN_DONE, KNOT_RCODE_NOERROR,
		  "A 127.0.0.1; AAAA ::1", NULL },
		{ "foo.localhost.", KNOT_RRTYPE_TXT, TERN_DONE, KNOT_RCODE_NOERROR, "", "localhost." },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, localhost_prefix_is_on_by_default)
{
	static const struct local_case cases[] = {
		{ "localhost.example.org.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR,
		  "A 127.0.0.1", NULL },
		{ "localhost.svc.cluster.local.", KNOT_RRTYPE_AAAA, TERN_DONE, KNOT_RCODE_NOERROR,
		  "AAAA ::1", NULL },
		{ "localhost.example.org.", KNOT_RRTYPE_MX, TERN_DONE, KNOT_RCODE_NOERROR, "",
		  "localhost.example.org." },
		{ "localhostx.example.org.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
		{ "www.localhost.example.org.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
		{ "notlocalhost.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, localhost_prefix_off_passes_localhost_dot_zone_on)
{
	static const struct local_case cases[] = {
		{ "localhost.example.org.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
		{ "foo.localhost.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR, "A 127.0.0.1", NULL },
		{ "localhost.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR, "A 127.0.0.1", NULL },
	};
	bool off = false;
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ .localhost_prefix = &off });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, ipv4_reverse_zones_are_answered_locally)
{
	static const struct local_case cases[] = {
		{ "1.0.0.127.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NOERROR,
		  "PTR localhost.", NULL },
		{ "1.0.0.127.in-addr.arpa.", KNOT_RRTYPE_A, TERN_DONE, KNOT_RCODE_NOERROR, "",
		  "127.in-addr.arpa." },
		{ "2.0.0.127.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NXDOMAIN, "",
		  "127.in-addr.arpa." },
		{ "127.in-addr.arpa.", KNOT_RRTYPE_SOA, TERN_DONE, KNOT_RCODE_NOERROR, SOA_TEXT, NULL },
		{ "127.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NOERROR, "",
		  "127.in-addr.arpa." },
		{ "0.in-addr.arpa.", KNOT_RRTYPE_NS, TERN_DONE, KNOT_RCODE_NOERROR, "NS localhost.",
		  NULL },
		{ "0.0.0.0.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NXDOMAIN, "",
		  "0.in-addr.arpa." },
		{ "255.255.255.255.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NXDOMAIN,
		  "", "255.in-addr.arpa." },
		{ "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR, TERN_NEXT, 0, NULL, NULL },
		{ "in-addr.arpa.", KNOT_RRTYPE_NS, TERN_NEXT, 0, NULL, NULL },
		{ "1.127.in-addr.arpa.example.", KNOT_RRTYPE_PTR, TERN_NEXT, 0, NULL, NULL },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, ipv6_loopback_and_unspecified_reverse_names_are_answered_locally)
{
	static const struct local_case cases[] = {
		{ V6_LOOPBACK, KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NOERROR, "PTR localhost.", NULL },
		{ V6_LOOPBACK, KNOT_RRTYPE_AAAA, TERN_DONE, KNOT_RCODE_NOERROR, "", V6_LOOPBACK },
		{ "x." V6_LOOPBACK, KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NXDOMAIN, "", V6_LOOPBACK },
		{ V6_UNSPEC, KNOT_RRTYPE_PTR, TERN_DONE, KNOT_RCODE_NOERROR, "", V6_UNSPEC },
		{ "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
		  KNOT_RRTYPE_PTR, TERN_NEXT, 0, NULL, NULL },
		{ "0.0.0.0.ip6.arpa.", KNOT_RRTYPE_PTR, TERN_NEXT, 0, NULL, NULL },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));
	t_local_deinit(&l);
}

Test(local, other_names_and_classes_pass_to_the_next_plugin)
{
	static const struct local_case cases[] = {
		{ "example.org.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
		{ ".", KNOT_RRTYPE_NS, TERN_NEXT, 0, NULL, NULL },
		{ "kubernetes.default.svc.cluster.local.", KNOT_RRTYPE_A, TERN_NEXT, 0, NULL, NULL },
	};
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	run_cases(&l, cases, sizeof(cases) / sizeof(cases[0]));

	struct t_query *q = t_query_new("localhost.", KNOT_RRTYPE_A, 65535);
	q->req.qclass = KNOT_CLASS_CH;
	cr_assert_eq(tern_plugin_local.query(&q->req, &l.pi), TERN_NEXT);
	t_query_free(q);
	t_local_deinit(&l);
}

static char *render_metrics(const struct t_local *l, bool in_view)
{
	struct tern_plugin_inst chain[1] = { l->pi };
	struct tern_server srv = { .chain = chain, .chain_len = in_view ? 1 : 0 };
	struct tern_view view = { .servers = &srv, .nservers = 1 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	cr_assert_not_null(out);
	tern_plugin_local.metrics(out, &view, PLUGIN_ID);
	fclose(out);
	return buf;
}

Test(local, metric_counts_names_under_localhost_and_the_prefix_but_not_localhost)
{
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });

	char *text = render_metrics(&l, false);
	cr_assert_str_eq(text, "", "no instance, nothing counted: no family");
	free(text);
	text = render_metrics(&l, true);
	cr_assert(strstr(text, "# TYPE coredns_local_localhost_requests_total counter\n"));
	cr_assert(strstr(text, "\ncoredns_local_localhost_requests_total 0\n"), "%s", text);
	free(text);

	const char *names[] = { "localhost.", "a.localhost.", "localhost.example.org.",
	                        "example.org." };
	for (size_t i = 0; i < 4; i++) {
		struct t_query *q = t_query_new(names[i], KNOT_RRTYPE_A, 65535);
		q->req.worker_id = (unsigned)i * 37;
		tern_plugin_local.query(&q->req, &l.pi);
		t_query_free(q);
	}
	text = render_metrics(&l, true);
	cr_assert(strstr(text, "\ncoredns_local_localhost_requests_total 2\n"), "%s", text);
	free(text);
	t_local_deinit(&l);
}

Test(local, answers_that_do_not_fit_are_truncated)
{
	struct t_local l;
	t_local_init(&l, &(struct tern_local_conf){ 0 });
	/* ANY at localhost. is 4 RRsets; a 40-byte budget holds the header and question only. */
	struct t_query *q = t_query_new("localhost.", KNOT_RRTYPE_ANY, 512);
	q->req.answer->max_size = 40;
	cr_assert_eq(tern_plugin_local.query(&q->req, &l.pi), TERN_DONE);
	cr_assert(q->req.truncated);
	t_query_free(q);
	t_local_deinit(&l);
}
