/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/forward: the query hook is driven by hand through the
 * park and re-run cycle. A scripted io (tests/support/fake_io.h) records every
 * tern_io_forward() attempt and says which upstreams are down; the test then builds
 * the tern_resume the worker would hand back (an upstream reply, a timeout, an error)
 * and runs the hook again, as the engine does. Answers are checked by parsing the
 * answer wire back as a client would.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <libknot/libknot.h>

#include "lib/core/arena.h"
#include "lib/core/errcode.h"
#include "lib/core/parse.h"
#include "lib/engine/conf.h"
#include "lib/engine/diag.h"
#include "lib/engine/io.h"
#include "lib/engine/plugin.h"
#include "lib/engine/process.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/forward/forward.h"
#include "tests/support/fake_io.h"
#include "tests/support/query.h"

extern const struct tern_plugin tern_plugin_forward;

#define PLUGIN_ID 5

static char tmpdir[64];
static const char *zones_root[] = { "." };
static struct tern_io *io;
static unsigned want_plugin_id = PLUGIN_ID; /* the registry index in engine tests */

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-forward-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	io = t_io_new();
	cr_assert_not_null(io);
}

static void teardown(void)
{
	t_io_free(io);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

/* A hand-built request whose io is the scripted one. */
static struct t_query *new_q_opts(const char *name, uint16_t qtype,
                                  const struct t_query_opts *o)
{
	struct t_query *q = t_query_new_opts(name, qtype, o);
	q->req.io = io;
	return q;
}

static struct t_query *new_q(const char *name, uint16_t qtype, uint16_t max_size)
{
	return new_q_opts(name, qtype, &(struct t_query_opts){ .max_size = max_size });
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* ---- an instance ------------------------------------------------------------------ */

struct t_fwd {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
	int ret;
};

static void t_fwd_init_zones(struct t_fwd *h, struct tern_forward_conf *conf,
                             const char **zones, size_t nzones)
{
	struct tern_plugin_env env = {
		.zones = zones,
		.nzones = nzones,
		.config_dir = tmpdir,
	};
	*h = (struct t_fwd){ .pi = { .plugin = &tern_plugin_forward, .plugin_id = PLUGIN_ID } };
	tern_diag_init(&h->diag, NULL);
	tern_diag_set_prefix(&h->diag, "servers[0].plugins.forward");
	h->ret = tern_plugin_forward.init(&h->pi, conf, &env, &h->diag);
}

static void t_fwd_init(struct t_fwd *h, struct tern_forward_conf *conf)
{
	t_fwd_init_zones(h, conf, zones_root, 1);
	cr_assert_eq(h->ret, 0, "init failed: %s", h->diag.nmsgs ? h->diag.msgs[0] : "?");
}

static void t_fwd_deinit(struct t_fwd *h)
{
	if (h->ret == 0)
		tern_plugin_forward.deinit(&h->pi);
	tern_diag_deinit(&h->diag);
}

/* Init must fail with a message containing @want. */
static void expect_config_error(struct tern_forward_conf *conf, const char *want)
{
	struct t_fwd h;
	t_fwd_init_zones(&h, conf, zones_root, 1);
	cr_assert_eq(h.ret, TERN_ECONFIG, "init should fail (%s)", want);
	bool found = false;
	for (size_t i = 0; i < h.diag.nmsgs; i++)
		found |= strstr(h.diag.msgs[i], want) != NULL;
	cr_assert(found, "no message with \"%s\" (first: %s)", want,
	          h.diag.nmsgs ? h.diag.msgs[0] : "none");
	t_fwd_deinit(&h);
}

#define TO(...) ((char *[]){ __VA_ARGS__ })
#define NTO(...) (sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *))
#define CONF_TO(...) .to = TO(__VA_ARGS__), .to_count = NTO(__VA_ARGS__)

/* ---- driving the hook -------------------------------------------------------------- */

static enum tern_verdict ask(struct t_fwd *h, struct t_query *q)
{
	return tern_plugin_forward.query(&q->req, &h->pi);
}

/* Ask for @p name A (over TCP size): forward must park it on io. */
static void ask_parks(struct t_fwd *h, const char *name)
{
	struct t_query *q = new_q(name, KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(h, q), TERN_PARK, "%s was not forwarded", name);
	t_query_free(q);
}

/* The upstream of io attempt @i, printed. */
static const char *call_to(unsigned i, char *buf)
{
	cr_assert_lt(i, io->ncalls, "attempt %u was not made", i);
	cr_assert_eq(tern_addr_str(&io->calls[i].u.addr, buf, TERN_ADDR_STRLEN), 0);
	return buf;
}

static void expect_call(unsigned i, const char *to, bool tcp)
{
	char buf[TERN_ADDR_STRLEN];
	cr_assert_str_eq(call_to(i, buf), to, "attempt %u went to %s, want %s", i, buf, to);
	cr_assert_eq(io->calls[i].u.tcp, tcp, "attempt %u: tcp %d", i, io->calls[i].u.tcp);
	cr_assert_eq(io->calls[i].plugin_id, want_plugin_id, "attempt %u: plugin id", i);
}

/* A resume for io attempt @i as the worker would build it. */
static void resume_from(struct tern_resume *r, unsigned i, enum tern_resume_status st,
                        const uint8_t *wire, uint16_t len)
{
	cr_assert_lt(i, io->ncalls);
	*r = (struct tern_resume){
		.plugin_id = io->calls[i].plugin_id,
		.status = st,
		.wire = wire,
		.len = len,
		.over_tcp = io->calls[i].u.tcp,
		.tried = io->calls[i].u.tried,
		.attempts = i + 1,
		.rtt_us = 1500,
	};
	memcpy(&r->upstream, &io->calls[i].u.addr, sizeof(r->upstream));
}

/* Re-run the hook for attempt @i's outcome; the engine starts a new answer each run. */
static enum tern_verdict rerun(struct t_fwd *h, struct t_query *q, struct tern_resume *r)
{
	knot_pkt_t *ans = q->req.answer;
	knot_pkt_clear(ans);
	cr_assert_eq(knot_pkt_init_response(ans, q->req.query), KNOT_EOK);
	if (q->req.max_size < ans->max_size)
		ans->max_size = q->req.max_size; /* the engine builds in a buffer this big */
	q->req.truncated = false;
	q->req.answered = false;
	q->req.resume = r;
	return ask(h, q);
}

/* What an upstream replies. */
struct t_reply {
	const char *qname;            /* NULL: the query's */
	uint16_t qtype;               /* 0: the query's */
	uint8_t rcode;
	bool tc, aa, ra, ad;
	unsigned nanswers;            /* A records 192.0.2.1.. for the question name */
	bool soa;                     /* an SOA in AUTHORITY */
	bool opt;                     /* an OPT record */
	uint8_t wire[4096];
	uint16_t len;
};

static void build_reply(struct t_query *q, struct t_reply *rep)
{
	knot_mm_t *mm = NULL;
	knot_pkt_t *p = knot_pkt_new(rep->wire, sizeof(rep->wire), mm);
	cr_assert_not_null(p);
	knot_wire_set_id(p->wire, 0x1234);
	knot_wire_set_qr(p->wire);
	knot_wire_set_rd(p->wire);
	knot_dname_storage_t qname;
	if (rep->qname)
		cr_assert_not_null(knot_dname_from_str(qname, rep->qname, sizeof(qname)));
	else
		knot_dname_copy_lower(qname, knot_pkt_qname(q->req.query));
	uint16_t qtype = rep->qtype ? rep->qtype : q->req.qtype;
	cr_assert_eq(knot_pkt_put_question(p, qname, KNOT_CLASS_IN, qtype), KNOT_EOK);
	knot_wire_set_rcode(p->wire, rep->rcode);
	if (rep->tc)
		knot_wire_set_tc(p->wire);
	if (rep->aa)
		knot_wire_set_aa(p->wire);
	if (rep->ra)
		knot_wire_set_ra(p->wire);
	if (rep->ad)
		knot_wire_set_ad(p->wire);

	cr_assert_eq(knot_pkt_begin(p, KNOT_ANSWER), KNOT_EOK);
	for (unsigned i = 0; i < rep->nanswers; i++) {
		knot_rrset_t rr;
		knot_rrset_init(&rr, qname, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300);
		uint8_t a[4] = { 192, 0, 2, (uint8_t)(1 + i) };
		cr_assert_eq(knot_rrset_add_rdata(&rr, a, 4, NULL), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(p, 0, &rr, 0), KNOT_EOK);
		knot_rdataset_clear(&rr.rrs, NULL);
	}
	cr_assert_eq(knot_pkt_begin(p, KNOT_AUTHORITY), KNOT_EOK);
	if (rep->soa) {
		static const uint8_t soa_rd[] = {
			2, 'n', 's', 0, 4, 'h', 'o', 's', 't', 0,
			0, 0, 0, 1,  0, 0, 0x0e, 0x10,  0, 0, 0x02, 0x58,
			0, 0x09, 0x3a, 0x80,  0, 0, 0x00, 0x3c,
		};
		knot_rrset_t rr;
		knot_rrset_init(&rr, knot_dname_from_str_alloc("example."), KNOT_RRTYPE_SOA,
		                KNOT_CLASS_IN, 60);
		cr_assert_eq(knot_rrset_add_rdata(&rr, soa_rd, sizeof(soa_rd), NULL), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(p, 0, &rr, 0), KNOT_EOK);
		knot_rdataset_clear(&rr.rrs, NULL);
		knot_dname_free(rr.owner, NULL);
	}
	cr_assert_eq(knot_pkt_begin(p, KNOT_ADDITIONAL), KNOT_EOK);
	if (rep->opt) {
		knot_rrset_t opt;
		cr_assert_eq(knot_edns_init(&opt, 1232, 0, 0, NULL), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(p, 0, &opt, 0), KNOT_EOK);
		knot_rrset_clear(&opt, NULL);
	}
	rep->len = (uint16_t)p->size;
	knot_pkt_free(p);
}

/* Resume attempt @i with @rep's reply and re-run. */
static enum tern_verdict rerun_reply(struct t_fwd *h, struct t_query *q, unsigned i,
                                     struct t_reply *rep, struct tern_resume *r)
{
	build_reply(q, rep);
	resume_from(r, i, TERN_RESUME_ANSWER, rep->wire, rep->len);
	return rerun(h, q, r);
}

static enum tern_verdict rerun_status(struct t_fwd *h, struct t_query *q, unsigned i,
                                      enum tern_resume_status st, struct tern_resume *r)
{
	resume_from(r, i, st, NULL, 0);
	return rerun(h, q, r);
}

static void expect_rcode(struct t_query *q, uint8_t rcode)
{
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), rcode, "rcode %u, want %u",
	             knot_wire_get_rcode(p->wire), rcode);
	cr_assert(q->req.answered, "answered");
	cr_assert_eq(q->req.plugin_id, PLUGIN_ID, "plugin id");
}

/* ---- tests: the happy path ---------------------------------------------------------- */

TestSuite(forward, .init = setup, .fini = teardown);

Test(forward, a_reply_is_copied_with_its_records_rcode_and_flags)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301") };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q_opts("WWW.Example.org.", KNOT_RRTYPE_A,
	                                     &(struct t_query_opts){ .max_size = 1232,
	                                                              .udp = true });
	cr_assert_eq(ask(&h, q), TERN_PARK);
	cr_assert_eq(io->ncalls, 1);
	expect_call(0, "127.0.0.1:5301", false);
	cr_assert_eq(io->calls[0].u.timeout_ms, 2000, "default read_timeout");
	cr_assert_eq(knot_wire_get_ancount(q->req.answer->wire), 0, "nothing written on park");

	struct t_reply rep = { .nanswers = 2, .soa = true, .opt = true, .ra = true, .ad = true };
	struct tern_resume r;
	cr_assert_eq(rerun_reply(&h, q, 0, &rep, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_NOERROR);
	const knot_pkt_t *p = q->parsed;
	cr_assert(knot_wire_get_ra(p->wire), "RA as the upstream set it");
	cr_assert(knot_wire_get_ad(p->wire), "AD as the upstream set it");
	cr_assert_not(knot_wire_get_aa(p->wire), "AA as the upstream set it");
	cr_assert_eq(knot_wire_get_id(p->wire), 0x3713, "the client's ID");
	cr_assert_eq(knot_pkt_section(p, KNOT_ANSWER)->count, 2);
	cr_assert_eq(knot_pkt_section(p, KNOT_AUTHORITY)->count, 1);
	cr_assert_eq(knot_pkt_section(p, KNOT_ADDITIONAL)->count, 0, "OPT is the engine's");
	cr_assert_null(p->opt_rr);
	const knot_rrset_t *a = knot_pkt_rr(knot_pkt_section(p, KNOT_ANSWER), 0);
	cr_assert_eq(a->type, KNOT_RRTYPE_A);
	cr_assert_eq(a->ttl, 300);
	/* The owner is a pointer to the question: the client's case is echoed. */
	const uint8_t *first = p->wire + KNOT_WIRE_HEADER_SIZE + knot_pkt_question_size(p);
	cr_assert(first[0] == 0xc0 && first[1] == KNOT_WIRE_HEADER_SIZE, "owner compressed");
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, an_nxdomain_reply_keeps_its_rcode_and_aa)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301") };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("nx.example.", KNOT_RRTYPE_AAAA, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	expect_call(0, "127.0.0.1:5301", false); /* UDP first, even for a TCP client */
	struct t_reply rep = { .rcode = KNOT_RCODE_NXDOMAIN, .aa = true, .soa = true };
	struct tern_resume r;
	cr_assert_eq(rerun_reply(&h, q, 0, &rep, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_NXDOMAIN);
	cr_assert(knot_wire_get_aa(q->parsed->wire));
	cr_assert_not(knot_wire_get_ra(q->parsed->wire));
	cr_assert_eq(knot_pkt_section(q->parsed, KNOT_AUTHORITY)->count, 1);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, an_answer_too_big_for_the_client_is_marked_truncated)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301") };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("big.example.", KNOT_RRTYPE_A, 512);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_reply rep = { .nanswers = 40 };
	struct tern_resume r;
	cr_assert_eq(rerun_reply(&h, q, 0, &rep, &r), TERN_DONE);
	cr_assert(q->req.truncated, "the engine sends TC");
	t_query_free(q);
	t_fwd_deinit(&h);
}

/* ---- tests: which names ------------------------------------------------------------ */

Test(forward, names_outside_the_zones_or_under_except_pass_on)
{
	struct t_fwd h;
	static const char *zones[] = { "example.org." };
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301"),
		.except = TO("private.example.org."), .except_count = 1,
	};
	t_fwd_init_zones(&h, &conf, zones, 1);
	cr_assert_eq(h.ret, 0);
	const char *pass[] = { "example.com.", "private.example.org.", "a.PRIVATE.example.org." };
	for (size_t i = 0; i < 3; i++) {
		struct t_query *q = new_q(pass[i], KNOT_RRTYPE_A, 65535);
		cr_assert_eq(ask(&h, q), TERN_NEXT, "%s should pass on", pass[i]);
		cr_assert_not(q->req.answered);
		t_query_free(q);
	}
	cr_assert_eq(io->ncalls, 0, "nothing sent");
	ask_parks(&h, "public.example.org.");
	t_fwd_deinit(&h);
}

/* ---- tests: policies ----------------------------------------------------------------- */

Test(forward, sequential_policy_tries_upstreams_in_order_skipping_down_ones)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302", "[::1]:5303"),
		.policy = "sequential",
	};
	t_fwd_init(&h, &conf);
	for (int i = 0; i < 3; i++)
		ask_parks(&h, "a.example.");
	for (unsigned i = 0; i < 3; i++)
		expect_call(i, "127.0.0.1:5301", false);

	t_io_set_down(io, "127.0.0.1:5301");
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	expect_call(3, "127.0.0.2:5302", false);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, round_robin_policy_rotates)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302", "127.0.0.3:5303"),
		.policy = "round_robin",
	};
	t_fwd_init(&h, &conf);
	for (int i = 0; i < 6; i++)
		ask_parks(&h, "a.example.");
	char a[TERN_ADDR_STRLEN], b[TERN_ADDR_STRLEN];
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_str_eq(call_to(i, a), call_to(i + 3, b), "period 3");
		cr_assert_str_neq(call_to(i, a), call_to((i + 1) % 3, b), "rotates");
	}
	t_fwd_deinit(&h);
}

Test(forward, random_policy_spreads_and_never_picks_a_down_upstream)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302", "127.0.0.3:5303"),
	};
	t_fwd_init(&h, &conf);
	t_io_set_down(io, "127.0.0.3:5303");
	unsigned seen[2] = { 0 };
	for (int i = 0; i < 60; i++) {
		ask_parks(&h, "a.example.");
		char buf[TERN_ADDR_STRLEN];
		call_to(io->ncalls - 1, buf);
		cr_assert_str_neq(buf, "127.0.0.3:5303", "a down upstream was picked");
		seen[strcmp(buf, "127.0.0.1:5301") == 0 ? 0 : 1]++;
		io->ncalls = 0;
	}
	cr_assert(seen[0] > 5 && seen[1] > 5, "spread %u/%u", seen[0], seen[1]);
	t_fwd_deinit(&h);
}

/* ---- tests: failures ------------------------------------------------------------------ */

Test(forward, a_timeout_moves_to_the_next_upstream_until_all_are_tried)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302", "127.0.0.3:5303"),
		.policy = "sequential", .read_timeout = "750ms",
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	cr_assert_eq(io->calls[0].u.timeout_ms, 750);
	cr_assert_eq(rerun_status(&h, q, 0, TERN_RESUME_TIMEOUT, &r), TERN_PARK);
	expect_call(1, "127.0.0.2:5302", false);
	cr_assert_eq(rerun_status(&h, q, 1, TERN_RESUME_ERROR, &r), TERN_PARK);
	expect_call(2, "127.0.0.3:5303", false);
	cr_assert_eq(rerun_status(&h, q, 2, TERN_RESUME_TIMEOUT, &r), TERN_DONE);
	cr_assert_eq(io->ncalls, 3, "each upstream once");
	expect_rcode(q, KNOT_RCODE_SERVFAIL);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_retry_skips_upstreams_that_are_down)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302", "127.0.0.3:5303"),
		.policy = "round_robin",
	};
	t_fwd_init(&h, &conf);
	t_io_set_down(io, "127.0.0.2:5302");
	t_io_set_down(io, "127.0.0.3:5303");
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	expect_call(0, "127.0.0.1:5301", false);
	cr_assert_eq(rerun_status(&h, q, 0, TERN_RESUME_TIMEOUT, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_SERVFAIL);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, all_down_tries_one_anyway_or_fails_fast)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301", "127.0.0.2:5302") };
	t_fwd_init(&h, &conf);
	t_io_set_down(io, "127.0.0.1:5301");
	t_io_set_down(io, "127.0.0.2:5302");
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK, "without failfast one is tried anyway");
	cr_assert_eq(io->ncalls, 1);
	t_query_free(q);
	t_fwd_deinit(&h);

	conf.failfast_all_unhealthy_upstreams = true;
	t_fwd_init(&h, &conf);
	q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_DONE);
	cr_assert_eq(io->ncalls, 1, "failfast sends nothing");
	expect_rcode(q, KNOT_RCODE_SERVFAIL);
	t_query_free(q);

	/* max_fails 0: never down, so never all down. */
	t_fwd_deinit(&h);
	conf.max_fails = &(uint32_t){ 0 };
	t_fwd_init(&h, &conf);
	q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_truncated_udp_reply_is_retried_over_tcp_on_the_same_upstream)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301", "127.0.0.2:5302") };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q_opts("a.example.", KNOT_RRTYPE_A,
	                                     &(struct t_query_opts){ .max_size = 4096,
	                                                              .udp = true });
	cr_assert_eq(ask(&h, q), TERN_PARK);
	cr_assert_not(io->calls[0].u.tcp, "a UDP client: UDP first");
	char first[TERN_ADDR_STRLEN];
	call_to(0, first);
	struct t_reply tc = { .tc = true };
	struct tern_resume r;
	cr_assert_eq(rerun_reply(&h, q, 0, &tc, &r), TERN_PARK);
	expect_call(1, first, true);
	struct t_reply full = { .nanswers = 3 };
	cr_assert_eq(rerun_reply(&h, q, 1, &full, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_NOERROR);
	cr_assert_eq(knot_pkt_section(q->parsed, KNOT_ANSWER)->count, 3);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, force_tcp_sends_over_tcp_whatever_the_client_used)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301"), .force_tcp = true };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 512); /* UDP client */
	cr_assert_eq(ask(&h, q), TERN_PARK);
	cr_assert(io->calls[0].u.tcp, "force_tcp");
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, prefer_udp_hands_a_truncated_reply_to_a_udp_client)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301"), .prefer_udp = true };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 512); /* UDP client */
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_reply tc = { .tc = true, .ra = true };
	cr_assert_eq(rerun_reply(&h, q, 0, &tc, &r), TERN_DONE);
	cr_assert(q->req.truncated, "the engine sends TC; the client retries over TCP");
	cr_assert_eq(io->ncalls, 1, "no TCP retry upstream");
	t_query_free(q);

	q = new_q("a.example.", KNOT_RRTYPE_A, 65535); /* TCP client: the retry is ours */
	cr_assert_eq(ask(&h, q), TERN_PARK);
	cr_assert_not(io->calls[1].u.tcp, "UDP first");
	cr_assert_eq(rerun_reply(&h, q, 1, &tc, &r), TERN_PARK);
	expect_call(2, "127.0.0.1:5301", true);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_garbage_reply_moves_to_the_next_upstream)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302"), .policy = "sequential",
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	static const uint8_t garbage[] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
	                                   0x3f, 'x', 'y' };
	struct tern_resume r;
	resume_from(&r, 0, TERN_RESUME_ANSWER, garbage, sizeof(garbage));
	cr_assert_eq(rerun(&h, q, &r), TERN_PARK);
	expect_call(1, "127.0.0.2:5302", false);
	cr_assert_not(q->req.answered);

	struct t_reply rep = { .nanswers = 1 };
	cr_assert_eq(rerun_reply(&h, q, 1, &rep, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_NOERROR);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_reply_to_another_question_is_ignored)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302"), .policy = "sequential",
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_reply other_name = { .qname = "b.example.", .nanswers = 1 };
	cr_assert_eq(rerun_reply(&h, q, 0, &other_name, &r), TERN_PARK);
	expect_call(1, "127.0.0.2:5302", false);
	struct t_reply other_type = { .qtype = KNOT_RRTYPE_AAAA };
	cr_assert_eq(rerun_reply(&h, q, 1, &other_type, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_SERVFAIL);
	cr_assert_eq(knot_pkt_section(q->parsed, KNOT_ANSWER)->count, 0);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, an_io_failure_answers_servfail)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301") };
	t_fwd_init(&h, &conf);
	io->forward_ret = TERN_ENOSPC;
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_SERVFAIL);
	t_query_free(q);
	t_fwd_deinit(&h);
}

/* ---- tests: rcode options ------------------------------------------------------------ */

Test(forward, a_next_rcode_passes_the_query_on_untouched)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301"), .next = TO("NXDOMAIN"), .next_count = 1,
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_reply rep = { .rcode = KNOT_RCODE_NXDOMAIN, .soa = true };
	cr_assert_eq(rerun_reply(&h, q, 0, &rep, &r), TERN_NEXT);
	cr_assert_not(q->req.answered);
	cr_assert_eq(knot_wire_get_rcode(q->req.answer->wire), KNOT_RCODE_NOERROR);
	cr_assert_eq(knot_wire_get_nscount(q->req.answer->wire), 0, "nothing copied");

	/* Other RCODEs are answers. */
	struct t_query *q2 = new_q("b.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q2), TERN_PARK);
	struct t_reply ok = { .nanswers = 1 };
	cr_assert_eq(rerun_reply(&h, q2, 1, &ok, &r), TERN_DONE);
	t_query_free(q2);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_failover_rcode_tries_the_next_upstream_and_the_last_reply_stands)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302"), .policy = "sequential",
		.failover = TO("SERVFAIL", "refused"), .failover_count = 2,
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_reply sf = { .rcode = KNOT_RCODE_SERVFAIL };
	cr_assert_eq(rerun_reply(&h, q, 0, &sf, &r), TERN_PARK);
	expect_call(1, "127.0.0.2:5302", false);
	struct t_reply ref = { .rcode = KNOT_RCODE_REFUSED };
	cr_assert_eq(rerun_reply(&h, q, 1, &ref, &r), TERN_DONE);
	expect_rcode(q, KNOT_RCODE_REFUSED);
	cr_assert_eq(io->ncalls, 2);
	t_query_free(q);
	t_fwd_deinit(&h);
}

/* ---- tests: max_concurrent ---------------------------------------------------------- */

Test(forward, max_concurrent_refuses_the_excess_and_frees_slots_on_resume)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "127.0.0.2:5302"), .policy = "sequential",
		.max_concurrent = &(uint32_t){ 2 },
	};
	t_fwd_init(&h, &conf);
	struct t_query *q[3];
	for (int i = 0; i < 2; i++) {
		q[i] = new_q("a.example.", KNOT_RRTYPE_A, 65535);
		cr_assert_eq(ask(&h, q[i]), TERN_PARK);
	}
	q[2] = new_q("c.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q[2]), TERN_DONE);
	expect_rcode(q[2], KNOT_RCODE_REFUSED);
	cr_assert_eq(io->ncalls, 2, "the refused query was not sent");
	t_query_free(q[2]);

	/* A retry keeps its slot: still full. */
	struct tern_resume r;
	cr_assert_eq(rerun_status(&h, q[0], 0, TERN_RESUME_TIMEOUT, &r), TERN_PARK);
	q[2] = new_q("c.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q[2]), TERN_DONE);
	expect_rcode(q[2], KNOT_RCODE_REFUSED);
	t_query_free(q[2]);

	/* An answered query frees its slot. */
	struct t_reply rep = { .nanswers = 1 };
	cr_assert_eq(rerun_reply(&h, q[1], 1, &rep, &r), TERN_DONE);
	q[2] = new_q("c.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q[2]), TERN_PARK);
	t_query_free(q[2]);
	t_query_free(q[0]);
	t_query_free(q[1]);
	t_fwd_deinit(&h);
}

Test(forward, max_concurrent_slots_of_lost_resumes_expire)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301"), .max_concurrent = &(uint32_t){ 1 },
		.read_timeout = "100ms",
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q), TERN_PARK);
	/* Its re-run never reaches forward (a cache before it answered it). */
	struct t_query *q2 = new_q("b.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q2), TERN_DONE, "full");
	t_query_free(q2);
	q2 = new_q("b.example.", KNOT_RRTYPE_A, 65535);
	q2->req.now_ms = q->req.now_ms + 4000; /* well past read_timeout + slack, x2 */
	cr_assert_eq(ask(&h, q2), TERN_PARK, "the lost attempt no longer counts");
	t_query_free(q2);
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, a_resume_parked_by_a_replaced_instance_starts_afresh)
{
	struct t_fwd old, h;
	struct tern_forward_conf conf = { CONF_TO("127.0.0.1:5301"), .policy = "sequential" };
	t_fwd_init(&old, &conf);
	struct tern_forward_conf conf2 = {
		CONF_TO("127.0.0.9:5309", "127.0.0.1:5301"), .policy = "sequential",
	};
	t_fwd_init(&h, &conf2);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&old, q), TERN_PARK);
	struct tern_resume r;
	cr_assert_eq(rerun_status(&h, q, 0, TERN_RESUME_TIMEOUT, &r), TERN_PARK);
	expect_call(1, "127.0.0.9:5309", false); /* not "all tried": a fresh start */
	t_query_free(q);
	t_fwd_deinit(&old);
	t_fwd_deinit(&h);
}

/* ---- tests: config ------------------------------------------------------------------ */

Test(forward, resolv_conf_nameservers_become_upstreams)
{
	write_file("resolv.conf",
	           "# generated\n"
	           "search example.svc.cluster.local\n"
	           "nameserver 10.0.0.10\n"
	           "nameserver   2001:db8::53  \n"
	           "nameserver fe80::1%eth0\n"
	           "nameserver dns.example.\n"
	           "options ndots:5\n");
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("resolv.conf", "dns://127.0.0.1:5301"),
	                                  .policy = "sequential" };
	t_fwd_init(&h, &conf);
	const char *want[] = { "10.0.0.10:53", "[2001:db8::53]:53", "127.0.0.1:5301" };
	for (unsigned i = 0; i < 3; i++) {
		char a[TERN_ADDR_STRLEN];
		if (i > 0)
			t_io_set_down(io, call_to(i - 1, a));
		struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
		cr_assert_eq(ask(&h, q), TERN_PARK);
		expect_call(i, want[i], false);
		t_query_free(q);
	}
	t_fwd_deinit(&h);

	write_file("empty.conf", "search x\n");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("empty.conf") },
	                    "no usable nameserver");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("/nonexistent/resolv.conf") },
	                    "cannot read /nonexistent/resolv.conf");
}

Test(forward, config_errors_are_reported_with_their_key)
{
	expect_config_error(&(struct tern_forward_conf){ 0 }, "needs at least one upstream");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("https://9.9.9.9") },
	                    "only plain DNS and DNS-over-TLS upstreams");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("300.1.2.3") },
	                    "to[0]: \"300.1.2.3\" is neither IP[:port]");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("dns.google") },
	                    "host names are not resolved");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1:70000") },
	                    "port out of range");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("0.0.0.0") },
	                    "unspecified address");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1"),
	                                                 .policy = "fastest" },
	                    "unknown policy \"fastest\"");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1"),
	                                                 .next = TO("NXDOMAN"), .next_count = 1 },
	                    "unknown RCODE \"NXDOMAN\"");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1"),
	                                                 .failover = TO("NOERROR"),
	                                                 .failover_count = 1 },
	                    "NOERROR cannot be used");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1"),
	                                                 .read_timeout = "2 s" },
	                    "read_timeout: invalid duration");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("127.0.0.1"),
	                                                 .except = TO("bad..name."),
	                                                 .except_count = 1 },
	                    "except: invalid name");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO(
		"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5",
		"127.0.0.1:6", "127.0.0.1:7", "127.0.0.1:8", "127.0.0.1:9", "127.0.0.1:10",
		"127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13", "127.0.0.1:14", "127.0.0.1:15",
		"127.0.0.1:16") },
	                    "to[15]: at most 15 upstreams");

	/* Exactly 15 is fine. */
	struct t_fwd h;
	struct tern_forward_conf ok = { CONF_TO(
		"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5",
		"127.0.0.1:6", "127.0.0.1:7", "127.0.0.1:8", "127.0.0.1:9", "127.0.0.1:10",
		"127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13", "127.0.0.1:14", "127.0.0.1:15") };
	t_fwd_init(&h, &ok);
	t_fwd_deinit(&h);
}

/* ---- tests: DNS over TLS ------------------------------------------------------------ */

static void expect_tls(unsigned i, const char *servername, const char *ca_file)
{
	const struct tern_upstream_tls *t = io->calls[i].u.tls;
	cr_assert_not_null(t, "attempt %u is not over TLS", i);
	cr_assert(io->calls[i].u.tcp, "attempt %u: TLS without TCP", i);
	if (servername)
		cr_assert_str_eq(t->servername, servername, "attempt %u: server name", i);
	else
		cr_assert_null(t->servername, "attempt %u: server name %s", i, t->servername);
	if (ca_file)
		cr_assert_str_eq(t->ca_file, ca_file, "attempt %u: CA file", i);
	else
		cr_assert_null(t->ca_file, "attempt %u: CA file %s", i, t->ca_file);
}

Test(forward, tls_upstreams_go_over_tls_with_the_server_name_and_files)
{
	write_file("ca.pem", "ca\n");
	write_file("client.pem", "cert\n");
	write_file("client.key", "key\n");
	char ca[128], cert[128], key[128];
	snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
	snprintf(cert, sizeof(cert), "%s/client.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/client.key", tmpdir);

	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("tls://9.9.9.9", "TLS://[2620:fe::9]:8853", "127.0.0.1:5301"),
		.policy = "sequential",
		.tls_servername = "dns.quad9.net.",
		.tls = &(struct tern_forward_tls_conf){ .ca = "ca.pem", .cert = cert,
		                                        .key = "client.key" },
	};
	t_fwd_init(&h, &conf);
	const char *want[] = { "9.9.9.9:853", "[2620:fe::9]:8853", "127.0.0.1:5301" };
	for (unsigned i = 0; i < 3; i++) {
		char a[TERN_ADDR_STRLEN];
		if (i > 0)
			t_io_set_down(io, call_to(i - 1, a));
		struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
		cr_assert_eq(ask(&h, q), TERN_PARK);
		expect_call(i, want[i], i < 2);
		t_query_free(q);
	}
	expect_tls(0, "dns.quad9.net", ca);
	expect_tls(1, "dns.quad9.net", ca);
	cr_assert_str_eq(io->calls[0].u.tls->cert_file, cert);
	cr_assert_str_eq(io->calls[0].u.tls->key_file, key);
	cr_assert_null(io->calls[2].u.tls, "a dns:// upstream went over TLS");
	t_fwd_deinit(&h);

	/* Per-upstream names (CoreDNS's tls://IP%name[:port]); no name: the IP is checked. */
	t_io_free(io);
	io = t_io_new();
	cr_assert_not_null(io);
	struct tern_forward_conf conf2 = {
		CONF_TO("tls://1.1.1.1%cloudflare-dns.com", "tls://[2606:4700::1111]%one.one:8853",
		        "tls://8.8.8.8"),
		.policy = "sequential",
	};
	t_fwd_init(&h, &conf2);
	const char *want2[] = { "1.1.1.1:853", "[2606:4700::1111]:8853", "8.8.8.8:853" };
	const char *names[] = { "cloudflare-dns.com", "one.one", NULL };
	for (unsigned i = 0; i < 3; i++) {
		char a[TERN_ADDR_STRLEN];
		if (i > 0)
			t_io_set_down(io, call_to(i - 1, a));
		struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
		cr_assert_eq(ask(&h, q), TERN_PARK);
		expect_call(i, want2[i], true);
		expect_tls(i, names[i], NULL);
		t_query_free(q);
	}
	t_fwd_deinit(&h);
}

Test(forward, a_truncated_reply_over_tls_is_not_retried)
{
	struct t_fwd h;
	struct tern_forward_conf conf = { CONF_TO("tls://127.0.0.1:8853") };
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q_opts("a.example.", KNOT_RRTYPE_A,
	                               &(struct t_query_opts){ .max_size = 4096, .udp = true });
	cr_assert_eq(ask(&h, q), TERN_PARK);
	expect_call(0, "127.0.0.1:8853", true);
	expect_tls(0, NULL, NULL);
	/* TLS runs over TCP: a TC reply is final (nothing bigger to ask for). */
	struct t_reply tc = { .tc = true, .nanswers = 1 };
	struct tern_resume r;
	cr_assert_eq(rerun_reply(&h, q, 0, &tc, &r), TERN_DONE);
	cr_assert_eq(io->ncalls, 1, "a TC reply over TLS was asked again");
	t_query_free(q);
	t_fwd_deinit(&h);
}

Test(forward, tls_config_errors_are_reported_with_their_key)
{
	write_file("ca.pem", "ca\n");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://dns.google") },
	                    "to[0]: \"tls://dns.google\": want tls://IP[%name][:port]");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9:70000") },
	                    "port out of range");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9%bad..name") },
	                    "invalid TLS server name \"bad..name\"");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9%") },
	                    "invalid TLS server name");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9"),
	                                                 .tls_servername = "a b" },
	                    "tls_servername: \"a b\": invalid TLS server name");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9%dns.quad9.net"),
	                                                 .tls_servername = "dns.quad9.net" },
	                    "tls_servername: not allowed with per-upstream names");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9"),
	                    .tls = &(struct tern_forward_tls_conf){ .cert = "ca.pem" } },
	                    "tls: cert and key go together");
	expect_config_error(&(struct tern_forward_conf){ CONF_TO("tls://9.9.9.9"),
	                    .tls = &(struct tern_forward_tls_conf){ .ca = "/nonexistent/ca.pem" } },
	                    "tls.ca: cannot read /nonexistent/ca.pem");
}

/* ---- tests: metrics ----------------------------------------------------------------- */

static char *render_metrics(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	cr_assert_not_null(out);
	tern_plugin_forward.metrics(out, NULL, PLUGIN_ID);
	fclose(out);
	return buf;
}

Test(forward, metrics_use_coredns_names_and_pass_promtool)
{
	struct t_fwd h;
	struct tern_forward_conf conf = {
		CONF_TO("127.0.0.1:5301", "[::1]:5302"), .policy = "sequential",
		.max_concurrent = &(uint32_t){ 1 },
	};
	t_fwd_init(&h, &conf);
	struct t_query *q = new_q("a.example.", KNOT_RRTYPE_A, 65535);
	struct tern_resume r;
	cr_assert_eq(ask(&h, q), TERN_PARK);
	struct t_query *q2 = new_q("b.example.", KNOT_RRTYPE_A, 65535);
	cr_assert_eq(ask(&h, q2), TERN_DONE, "rejected");
	cr_assert_eq(rerun_status(&h, q, 0, TERN_RESUME_TIMEOUT, &r), TERN_PARK);
	struct t_reply rep = { .rcode = KNOT_RCODE_NXDOMAIN };
	cr_assert_eq(rerun_reply(&h, q, 1, &rep, &r), TERN_DONE);

	char *text = render_metrics();
	const char *want[] = {
		"coredns_forward_max_concurrent_rejects_total 1\n",
		"coredns_forward_healthcheck_broken_total 0\n",
		"coredns_proxy_request_duration_seconds_count{proxy_name=\"forward\","
		"to=\"[::1]:5302\",rcode=\"NXDOMAIN\"} 1\n",
		"coredns_proxy_request_duration_seconds_bucket{proxy_name=\"forward\","
		"to=\"[::1]:5302\",rcode=\"NXDOMAIN\",le=\"0.002\"} 1\n",
		"coredns_proxy_request_duration_seconds_bucket{proxy_name=\"forward\","
		"to=\"[::1]:5302\",rcode=\"NXDOMAIN\",le=\"0.001\"} 0\n",
		"coredns_proxy_healthcheck_failures_total{proxy_name=\"forward\","
		"to=\"127.0.0.1:5301\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert_not_null(strstr(text, want[i]), "missing %s in:\n%s", want[i], text);

	if (access("/usr/bin/promtool", X_OK) == 0) {
		char path[128];
		snprintf(path, sizeof(path), "%s/metrics.txt", tmpdir);
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(text, f);
		fclose(f);
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s", path);
		cr_assert_eq(system(cmd), 0, "promtool check metrics failed on:\n%s", text);
	}
	free(text);
	t_query_free(q2);
	t_query_free(q);
	t_fwd_deinit(&h);
}

/* ---- tests: through the config loader and the engine ------------------------------- */

static struct tern_view *view_from_yaml(const char *yaml, struct tern_diag *diag)
{
	struct tern_conf *conf = NULL;
	tern_diag_init(diag, NULL);
	if (tern_conf_load_string(yaml, strlen(yaml), tmpdir, diag, &conf) != 0)
		return NULL;
	struct tern_view *view = NULL;
	if (tern_view_build(conf, diag, &view) != 0)
		return NULL;
	return view;
}

static bool diag_has(const struct tern_diag *d, const char *want)
{
	for (size_t i = 0; i < d->nmsgs; i++) {
		if (strstr(d->msgs[i], want) != NULL)
			return true;
	}
	return false;
}

Test(forward, a_yaml_config_forwards_through_the_engine_and_retries_after_a_timeout)
{
	static const char yaml[] =
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5399\"]\n"
		"    plugins:\n"
		"      forward:\n"
		"        to: [\"127.0.0.1:5301\", \"dns://[::1]:5302\"]\n"
		"        policy: sequential\n"
		"        max_fails: 0\n"
		"        read_timeout: 1500ms\n"
		"        max_concurrent: 10\n"
		"        next: [NXDOMAIN]\n"
		"        failover: [SERVFAIL]\n";
	struct tern_diag diag;
	struct tern_view *view = view_from_yaml(yaml, &diag);
	cr_assert_not_null(view, "config rejected: %s", diag.nmsgs ? diag.msgs[0] : "?");
	for (size_t i = 0; i < tern_plugins_count; i++) {
		if (tern_plugins[i] == &tern_plugin_forward)
			want_plugin_id = (unsigned)i;
	}

	static uint8_t arena_buf[256 * 1024];
	struct tern_arena arena;
	knot_mm_t mm;
	tern_arena_init(&arena, arena_buf, sizeof(arena_buf), &mm);
	struct sockaddr_storage client;
	cr_assert_eq(tern_parse_addr("127.0.0.1:40000", 53, &client), 0);
	bool parked = false;
	struct tern_query_ctx ctx = {
		.view = view, .listen_index = 0, .proto = TERN_PROTO_UDP, .src = &client,
		.arena = &arena, .mm = &mm, .io = io, .parked = &parked,
	};

	static uint8_t q[512], a[65535];
	knot_pkt_t *qp = knot_pkt_new(q, sizeof(q), NULL);
	knot_wire_set_id(qp->wire, 0xbeef);
	knot_wire_set_rd(qp->wire);
	knot_dname_storage_t qname;
	knot_dname_from_str(qname, "Www.Example.COM.", sizeof(qname));
	cr_assert_eq(knot_pkt_put_question(qp, qname, KNOT_CLASS_IN, KNOT_RRTYPE_A), KNOT_EOK);
	size_t ql = qp->size;
	knot_pkt_free(qp);

	cr_assert_eq(tern_process(&ctx, q, ql, a, sizeof(a)), 0, "parked: nothing sent");
	cr_assert(parked);
	expect_call(0, "127.0.0.1:5301", false);
	cr_assert_eq(io->calls[0].u.timeout_ms, 1500);

	parked = false;
	cr_assert_eq(t_io_resume(io, &ctx, TERN_RESUME_TIMEOUT, NULL, 0, a, sizeof(a), &parked),
	             0);
	cr_assert(parked, "the second upstream is tried");
	expect_call(1, "[::1]:5302", false);

	const char *addrs[] = { "192.0.2.7", "192.0.2.8" };
	uint8_t reply[512];
	size_t rl = t_io_reply_a(io, reply, sizeof(reply), KNOT_RCODE_NOERROR, addrs, 2, 300);
	size_t al = t_io_resume(io, &ctx, TERN_RESUME_ANSWER, reply, (uint16_t)rl, a, sizeof(a),
	                        &parked);
	cr_assert_not(parked);
	cr_assert_gt(al, 0);
	knot_pkt_t *p = knot_pkt_new(a, (uint16_t)al, NULL);
	cr_assert_eq(knot_pkt_parse(p, 0), KNOT_EOK);
	cr_assert_eq(knot_wire_get_id(a), 0xbeef);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NOERROR);
	cr_assert(knot_wire_get_ra(a));
	cr_assert_eq(knot_wire_get_ancount(a), 2);
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x03" "Www" "\x07" "Example", 12), 0,
	             "the client's case");
	knot_pkt_free(p);

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	tern_plugin_forward.metrics(out, view, want_plugin_id);
	fclose(out);
	cr_assert_not_null(strstr(text, "coredns_proxy_healthcheck_failures_total{proxy_name="
	                                "\"forward\",to=\"127.0.0.1:5301\"} 1\n"), "%s", text);
	free(text);
	tern_view_free(view);
	tern_diag_deinit(&diag);
}

Test(forward, yaml_config_errors_name_the_key)
{
	struct tern_diag diag;
	cr_assert_null(view_from_yaml(
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5399\"]\n"
		"    plugins:\n"
		"      forward: { to: [\"127.0.0.1\", \"tls://dns.google\"] }\n", &diag));
	cr_assert(diag_has(&diag, "servers[0].plugins.forward.to[1]"), "%s",
	          diag.nmsgs ? diag.msgs[0] : "no message");
	cr_assert(diag_has(&diag, "want tls://IP[%name][:port]"));
	tern_diag_deinit(&diag);

	cr_assert_null(view_from_yaml(
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5399\"]\n"
		"    plugins:\n"
		"      forward: { to: [\"tls://9.9.9.9\"], tls: { ca: missing-ca.pem } }\n",
		&diag));
	cr_assert(diag_has(&diag, "servers[0].plugins.forward.tls.ca: cannot read"), "%s",
	          diag.nmsgs ? diag.msgs[0] : "no message");
	tern_diag_deinit(&diag);

	/* The whole DoT syntax loads. */
	write_file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
	struct tern_view *view = view_from_yaml(
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5399\"]\n"
		"    plugins:\n"
		"      forward:\n"
		"        to: [\"tls://9.9.9.9\", \"tls://[2620:fe::fe]:853\"]\n"
		"        tls_servername: dns.quad9.net\n"
		"        tls: { ca: ca.pem }\n", &diag);
	cr_assert_not_null(view, "DoT config rejected: %s", diag.nmsgs ? diag.msgs[0] : "?");
	tern_view_free(view);
	tern_diag_deinit(&diag);

	cr_assert_null(view_from_yaml(
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5399\"]\n"
		"    plugins:\n"
		"      forward: { to: [\"127.0.0.1\"], max_fail: 3 }\n", &diag));
	cr_assert(diag_has(&diag, "max_fail"), "an unknown key is an error: %s",
	          diag.nmsgs ? diag.msgs[0] : "no message");
	tern_diag_deinit(&diag);
}
