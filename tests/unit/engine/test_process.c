/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of lib/engine/process.c: validation, routing, truncation and EDNS, with
 * a view built by hand around a test plugin that answers A records; parking and
 * re-runs through the scripted io (tests/support/fake_io.h), and raw answers, with a
 * second test plugin in front of it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/core/arena.h"
#include "lib/core/stats.h"
#include "lib/dns/answer.h"
#include "lib/engine/process.h"
#include "tests/support/fake_io.h"
#include "tests/support/metrics.h"
#include "tests/support/query.h"

/* The test plugin answers "<n>.example.org A" with n records 192.0.2.1..n. */
static enum tern_verdict testplug_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	unsigned n = req->qname[0] ? (unsigned)(req->qname[1] - '0') : 0;
	if (req->qname[0] != 1 || n > 9) {
		tern_answer_rcode(req, KNOT_RCODE_NXDOMAIN);
		tern_answer_authoritative(req, pi->plugin_id);
		return TERN_DONE;
	}
	if (n == 0)
		return TERN_FAIL;
	knot_rrset_t rr;
	knot_rrset_init(&rr, (knot_dname_t *)req->qname, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60);
	for (unsigned i = 1; i <= n * 20; i++) {
		uint8_t a[4] = { 192, 0, (uint8_t)(i >> 8), (uint8_t)i };
		cr_assert_eq(knot_rrset_add_rdata(&rr, a, 4, req->mm), KNOT_EOK);
	}
	tern_answer_authoritative(req, pi->plugin_id);
	tern_answer_put(req, KNOT_ANSWER, &rr);
	return TERN_DONE;
}

static const struct tern_plugin testplug = { .name = "test", .query = testplug_query };

/*
 * The async test plugin, in front of testplug:
 *  - "park.*": forwards through io and parks; re-run with an ANSWER it copies the
 *    reply as a raw answer; with a TIMEOUT or ERROR it fails (SERVFAIL).
 *  - "raw<n>.*": a raw answer with n * 20 A records, its header deliberately wrong
 *    (ID 0xdead, no QR, no RD) and the question lowercased.
 *  - "prefetch.*": asks io for a background refresh, then passes.
 * Its answer hook records what it saw.
 */
static struct {
	unsigned answer_hooks;
	size_t answer_size;
	bool saw_refresh;
	struct tern_resume resume;
	bool resumed;
} seen;

static bool first_label_is(const struct tern_req *req, const char *label, size_t len)
{
	return req->qname[0] >= len && memcmp(req->qname + 1, label, len) == 0;
}

static size_t put_raw_question(struct tern_req *req, uint8_t *w)
{
	size_t nlen = knot_dname_size(req->qname);
	memcpy(w + KNOT_WIRE_HEADER_SIZE, req->qname, nlen);
	knot_wire_write_u16(w + KNOT_WIRE_HEADER_SIZE + nlen, req->qtype);
	knot_wire_write_u16(w + KNOT_WIRE_HEADER_SIZE + nlen + 2, req->qclass);
	return KNOT_WIRE_HEADER_SIZE + nlen + 4;
}

static enum tern_verdict raw_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	uint8_t *w = req->answer->wire;
	memset(w, 0, KNOT_WIRE_HEADER_SIZE);
	knot_wire_set_id(w, 0xdead);
	knot_wire_set_aa(w);
	knot_wire_set_qdcount(w, 1);
	if (req->qname[4] == 'x') {
		memcpy(w + KNOT_WIRE_HEADER_SIZE, "\x01x\x00\x00\x01\x00\x01", 7);
		req->raw_len = KNOT_WIRE_HEADER_SIZE + 7;
		return TERN_DONE;
	}
	unsigned n = (unsigned)(req->qname[4] - '0') * 20;
	knot_wire_set_ancount(w, (uint16_t)n);
	size_t len = put_raw_question(req, w);
	size_t full = len + n * 16;
	for (unsigned i = 0; i < n && full <= req->answer->max_size; i++) {
		static const uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2 };
		memcpy(w + len, rr, sizeof(rr));
		w[len + sizeof(rr)] = (uint8_t)i;
		len += 16;
	}
	req->raw_len = (uint16_t)full;   /* larger than what was written when it won't fit */
	tern_answer_by(req, pi->plugin_id);
	return TERN_DONE;
}

static enum tern_verdict asyncplug_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	if (req->refresh)
		seen.saw_refresh = true;
	if (first_label_is(req, "raw", 3) && req->qname[0] == 4)
		return raw_answer(req, pi);
	if (first_label_is(req, "prefetch", 8)) {
		cr_assert_eq(tern_io_refresh(req), 0);
		return TERN_NEXT;
	}
	if (!first_label_is(req, "park", 4))
		return TERN_NEXT;
	const struct tern_resume *r = req->resume;
	if (!r) {
		struct tern_upstream_req u = { .timeout_ms = 2000, .tried = 7 };
		u.addr.ss_family = AF_INET;
		return tern_io_forward(req, pi->plugin_id, &u) == 0 ? TERN_PARK : TERN_FAIL;
	}
	seen.resume = *r;
	seen.resumed = true;
	if (r->status != TERN_RESUME_ANSWER)
		return TERN_FAIL;
	cr_assert_leq(r->len, req->answer->max_size);
	memcpy(req->answer->wire, r->wire, r->len);
	req->raw_len = r->len;
	tern_answer_by(req, pi->plugin_id);
	return TERN_DONE;
}

static void asyncplug_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	(void)pi;
	seen.answer_hooks++;
	seen.answer_size = req->answer->size;
}

static const struct tern_plugin asyncplug = {
	.name = "async", .query = asyncplug_query, .answer = asyncplug_answer,
};

static uint8_t arena_buf[256 * 1024];
static struct tern_arena arena;
static knot_mm_t mm;
static struct tern_plugin_inst inst[2] = {
	{ .plugin = &asyncplug, .plugin_id = 1 },
	{ .plugin = &testplug, .plugin_id = 0 },
};
static knot_dname_t *zone;
static struct tern_server server;
static struct tern_route route;
static struct tern_listen_routes listens;
static struct tern_view view;
static struct sockaddr_storage client;

static void setup(void)
{
	tern_arena_init(&arena, arena_buf, sizeof(arena_buf), &mm);
	zone = knot_dname_from_str_alloc("example.org.");
	server = (struct tern_server) { .zones = &zone, .nzones = 1, .chain = inst, .chain_len = 2 };
	memset(&seen, 0, sizeof(seen));
	route = (struct tern_route) { .zone = zone, .server = &server, .stats_slot = -1,
	                             .labels = 2, .len = (unsigned)knot_dname_size(zone) };
	listens = (struct tern_listen_routes) { .routes = &route, .nroutes = 1 };
	view = (struct tern_view) { .servers = &server, .nservers = 1, .listens = &listens,
	                            .nlistens = 1 };
	client.ss_family = AF_INET;
}

static void teardown(void)
{
	free(zone);
}

TestSuite(process);

/* A query with ID 0x1234 and RD; edns_size 0 = no EDNS. @return its length. */
static size_t make_query(uint8_t *buf, const char *name, uint16_t qtype, uint16_t edns_size,
                         uint8_t edns_version)
{
	return t_wire_query(buf, name, qtype, &(struct t_wire_opts) {
		.id = 0x1234, .rd = true, .edns = edns_size, .edns_version = edns_version,
	});
}

static size_t ask(enum tern_proto proto, uint8_t *in, size_t in_len, uint8_t *out, size_t cap)
{
	struct tern_query_ctx ctx = {
		.view = &view, .proto = proto, .src = &client, .arena = &arena, .mm = &mm,
	};
	return tern_process(&ctx, in, in_len, out, cap);
}

static knot_pkt_t *parse(uint8_t *wire, size_t len)
{
	knot_pkt_t *p = knot_pkt_new(wire, (uint16_t)len, NULL);
	cr_assert_eq(knot_pkt_parse(p, 0), KNOT_EOK, "answer does not parse");
	return p;
}

Test(process, answer_keeps_id_rd_and_question_case, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.ExAmple.ORG.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_gt(al, 0);
	knot_pkt_t *p = parse(a, al);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
	cr_assert(knot_wire_get_qr(a) && knot_wire_get_rd(a) && knot_wire_get_aa(a));
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x01" "1" "\x07" "ExAmple" "\x03" "ORG", 14), 0);
	cr_assert_eq(knot_wire_get_ancount(a), 20);
	knot_pkt_free(p);
}

Test(process, the_query_header_never_sets_the_answer_rcode, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 0, 0);
	knot_wire_set_rcode(q, KNOT_RCODE_NXDOMAIN);   /* garbage in a query's RCODE bits */
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_gt(al, 0);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NOERROR);
	cr_assert_eq(knot_wire_get_ancount(a), 20);
}

Test(process, too_big_for_512_is_truncated_with_question_only, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "9.example.org.", KNOT_RRTYPE_A, 0, 0);   /* 180 A records */
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_leq(al, 512);
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(knot_wire_get_qdcount(a), 1);
	cr_assert_eq(knot_wire_get_ancount(a), 0);
}

Test(process, tcp_gets_the_whole_answer, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "9.example.org.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_TCP, q, ql, a, sizeof(a));
	cr_assert_gt(al, 512);
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_eq(knot_wire_get_ancount(a), 180);
}

Test(process, edns_size_is_honoured_up_to_1232, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	/* 60 A records = 60 * 16 + header/question/OPT: about 1000 bytes. */
	size_t ql = make_query(q, "3.example.org.", KNOT_RRTYPE_A, 4096, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_gt(al, 512);
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	cr_assert_eq(knot_edns_get_payload(p->opt_rr), TERN_UDP_MAX_PAYLOAD);
	knot_pkt_free(p);

	ql = make_query(q, "4.example.org.", KNOT_RRTYPE_A, 4096, 0);   /* ~1330 bytes */
	al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert(knot_wire_get_tc(a));
	cr_assert_leq(al, TERN_UDP_MAX_PAYLOAD);
}

Test(process, edns_version_1_gets_badvers, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 1232, 1);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	cr_assert_eq(knot_pkt_ext_rcode(p), KNOT_RCODE_BADVERS);
	cr_assert_eq(knot_wire_get_ancount(a), 0);
	knot_pkt_free(p);
}

Test(process, outside_every_zone_is_refused, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.com.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_REFUSED);
	cr_assert_eq(knot_wire_get_qdcount(a), 1);
	cr_assert_eq(al, ql);
}

Test(process, axfr_is_refused_and_opt_qtype_is_formerr, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "example.org.", KNOT_RRTYPE_AXFR, 0, 0);
	ask(TERN_PROTO_TCP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_REFUSED);
	ql = make_query(q, "example.org.", KNOT_RRTYPE_OPT, 0, 0);
	ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR);
}

Test(process, plugin_failure_is_servfail, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "0.example.org.", KNOT_RRTYPE_A, 0, 0);
	ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_SERVFAIL);
	cr_assert_eq(knot_wire_get_ancount(a), 0);
}

Test(process, responses_and_runts_are_dropped, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 0, 0);
	knot_wire_set_qr(q);
	cr_assert_eq(ask(TERN_PROTO_UDP, q, ql, a, sizeof(a)), 0);
	cr_assert_eq(ask(TERN_PROTO_UDP, q, 11, a, sizeof(a)), 0);
}

Test(process, other_opcodes_get_notimp, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 0, 0);
	knot_wire_set_opcode(q, KNOT_OPCODE_UPDATE);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(al, KNOT_WIRE_HEADER_SIZE);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NOTIMPL);
}

Test(process, malformed_queries_get_formerr_never_longer_than_the_query, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 0, 0);
	/* Trailing garbage after the question. */
	memset(q + ql, 0xab, 7);
	size_t al = ask(TERN_PROTO_UDP, q, ql + 7, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR);
	cr_assert_eq(al, ql, "FORMERR must carry the whole question and nothing else");
	knot_pkt_free(parse(a, al));
	/* QDCOUNT 2 with one question. */
	ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 0, 0);
	knot_wire_set_qdcount(q, 2);
	al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR);
	cr_assert_eq(al, KNOT_WIRE_HEADER_SIZE);
	/* Every truncation of a valid query. */
	ql = make_query(q, "1.example.org.", KNOT_RRTYPE_A, 1232, 0);
	for (size_t cut = KNOT_WIRE_HEADER_SIZE; cut < ql; cut++) {
		al = ask(TERN_PROTO_UDP, q, cut, a, sizeof(a));
		cr_assert_leq(al, cut, "cut at %zu answered %zu bytes", cut, al);
		if (al)
			cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR, "cut at %zu", cut);
	}
}

/* ---- parking and re-runs (fake io) ---------------------------------------------- */

static struct tern_query_ctx async_ctx(struct tern_io *io, struct tern_stats_row *row,
                                       enum tern_proto proto, bool *parked)
{
	return (struct tern_query_ctx) {
		.view = &view, .proto = proto, .src = &client, .arena = &arena, .mm = &mm,
		.stats = row, .io = io, .parked = parked,
	};
}

Test(process, park_sends_nothing_and_counts_the_query_once, .init = setup, .fini = teardown)
{
	struct tern_stats_row *row = tern_stats_row_new(0);
	struct tern_io *io = t_io_new();
	bool parked = false;
	struct tern_query_ctx ctx = async_ctx(io, row, TERN_PROTO_UDP, &parked);
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "PaRk.example.org.", KNOT_RRTYPE_A, 0, 0);

	cr_assert_eq(tern_process(&ctx, q, ql, a, sizeof(a)), 0, "a parked query sends nothing");
	cr_assert(parked, "the transport is told the query parked");
	cr_assert(io->parked);
	cr_assert_eq(io->ncalls, 1);
	cr_assert_eq(t_io_last(io)->plugin_id, 1);
	cr_assert_eq(t_io_last(io)->u.tried, 7);
	cr_assert_eq(seen.answer_hooks, 0, "no answer hook runs for a parked query");
	char *text = t_metrics_render();
	cr_assert_eq(t_metrics_sum(text, "tern_dropped_total"), 0, "parked is not dropped");
	cr_assert_eq(t_metrics_sum(text, "tern_worker_queries_total"), 1);
	cr_assert_eq(t_metrics_sum(text, "coredns_dns_responses_total"), 0, "no response yet");
	free(text);

	/* The wait counts in the duration of the query. */
	struct timespec wait = { .tv_nsec = 30 * 1000 * 1000 };
	nanosleep(&wait, NULL);
	const char *addrs[] = { "192.0.2.7", "192.0.2.8" };
	uint8_t reply[512];
	size_t rl = t_io_reply_a(io, reply, sizeof(reply), KNOT_RCODE_NOERROR, addrs, 2, 300);
	parked = false;
	size_t al = t_io_resume(io, &ctx, TERN_RESUME_ANSWER, reply, (uint16_t)rl, a, sizeof(a),
	                        &parked);
	cr_assert_not(parked);
	cr_assert_gt(al, 0);
	cr_assert(seen.resumed);
	cr_assert_eq(seen.resume.status, TERN_RESUME_ANSWER);
	cr_assert_eq(seen.resume.tried, 7);
	cr_assert_eq(seen.resume.attempts, 1);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x04" "PaRk" "\x07" "example", 13), 0);
	cr_assert_eq(knot_wire_get_ancount(a), 2);
	knot_pkt_free(parse(a, al));

	text = t_metrics_render();
	cr_assert_eq(t_metrics_sum(text, "tern_worker_queries_total"), 1, "a re-run is no new query");
	cr_assert_eq(t_metrics_sum(text, "coredns_dns_responses_total"), 1);
	cr_assert_eq(t_metrics_sum(text, "tern_dropped_total"), 0);
	double dur = t_metrics_sum(text, "coredns_dns_request_duration_seconds_sum");
	cr_assert_geq(dur, 0.03, "the duration covers the wait (%f s)", dur);
	free(text);
	t_io_free(io);
	tern_stats_row_free(row);
}

Test(process, resumed_timeout_is_answered_servfail, .init = setup, .fini = teardown)
{
	struct tern_io *io = t_io_new();
	bool parked = false;
	struct tern_query_ctx ctx = async_ctx(io, NULL, TERN_PROTO_TCP, &parked);
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "park.example.org.", KNOT_RRTYPE_AAAA, 1232, 0);
	cr_assert_eq(tern_process(&ctx, q, ql, a, sizeof(a)), 0);
	cr_assert(parked);
	size_t al = t_io_resume(io, &ctx, TERN_RESUME_TIMEOUT, NULL, 0, a, sizeof(a), &parked);
	cr_assert_not(parked);
	cr_assert_eq(seen.resume.status, TERN_RESUME_TIMEOUT);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_SERVFAIL);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	knot_pkt_free(p);
	t_io_free(io);
}

Test(process, park_without_io_is_servfail, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "park.example.org.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_gt(al, 0);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_SERVFAIL);
}

Test(process, refresh_runs_the_answer_hooks_and_sends_nothing, .init = setup, .fini = teardown)
{
	struct tern_stats_row *row = tern_stats_row_new(0);
	struct tern_io *io = t_io_new();
	struct tern_query_ctx ctx = async_ctx(io, row, TERN_PROTO_UDP, NULL);
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "prefetch.example.org.", KNOT_RRTYPE_A, 0, 0);
	cr_assert_gt(tern_process(&ctx, q, ql, a, sizeof(a)), 0);
	cr_assert_eq(io->nrefreshes, 1);
	cr_assert_eq(seen.answer_hooks, 1);
	char *before = t_metrics_render();

	cr_assert_eq(t_io_run_refresh(io, &ctx, 0, a, sizeof(a), NULL), 0, "a refresh sends nothing");
	cr_assert(seen.saw_refresh);
	cr_assert_eq(seen.answer_hooks, 2, "answer hooks (a cache store) run for a refresh");
	char *after = t_metrics_render();
	cr_assert_eq(t_metrics_sum(after, "tern_worker_queries_total"),
	             t_metrics_sum(before, "tern_worker_queries_total"), "a refresh is not counted");
	cr_assert_eq(t_metrics_sum(after, "coredns_dns_responses_total"),
	             t_metrics_sum(before, "coredns_dns_responses_total"));
	cr_assert_eq(t_metrics_sum(after, "tern_dropped_total"), 0);
	free(before);
	free(after);
	t_io_free(io);
	tern_stats_row_free(row);
}

/* ---- raw answers ---------------------------------------------------------------- */

Test(process, raw_answer_gets_id_flags_client_case_and_opt, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "RaW1.ExAmple.org.", KNOT_RRTYPE_A, 1232, 0);
	knot_wire_set_cd(q);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_gt(al, 0);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
	cr_assert(knot_wire_get_qr(a) && knot_wire_get_rd(a) && knot_wire_get_cd(a));
	cr_assert(knot_wire_get_aa(a), "the plugin's flags are kept");
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x04" "RaW1" "\x07" "ExAmple", 13), 0);
	cr_assert_eq(knot_wire_get_ancount(a), 20);
	cr_assert_eq(knot_wire_get_arcount(a), 1);
	cr_assert_eq(seen.answer_size, al, "answer hooks see the final length");
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	cr_assert_eq(knot_edns_get_payload(p->opt_rr), TERN_UDP_MAX_PAYLOAD);
	cr_assert_eq(p->rrset_count, 21);
	knot_pkt_free(p);
}

Test(process, raw_answer_echoes_do_and_has_no_opt_without_edns, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = make_query(q, "raw1.example.org.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(knot_wire_get_arcount(a), 0);
	cr_assert_eq(al, ql + 20 * 16);
	knot_pkt_free(parse(a, al));

	/* EDNS with DO: the OPT echoes it. */
	memset(q, 0, sizeof(q));
	knot_pkt_t *b = knot_pkt_new(q, sizeof(q), NULL);
	knot_dname_t *dn = knot_dname_from_str_alloc("raw1.example.org.");
	knot_wire_set_id(b->wire, 0x1234);
	cr_assert_eq(knot_pkt_put_question(b, dn, KNOT_CLASS_IN, KNOT_RRTYPE_A), KNOT_EOK);
	knot_rrset_t opt;
	cr_assert_eq(knot_edns_init(&opt, 4096, 0, 0, NULL), KNOT_EOK);
	knot_edns_set_do(&opt);
	knot_pkt_begin(b, KNOT_ADDITIONAL);
	cr_assert_eq(knot_pkt_put(b, KNOT_COMPR_HINT_NONE, &opt, KNOT_PF_FREE), KNOT_EOK);
	ql = b->size;
	free(dn);
	knot_pkt_free(b);
	al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_not(knot_wire_get_rd(a), "RD is the query's");
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	cr_assert(knot_edns_do(p->opt_rr));
	knot_pkt_free(p);
}

Test(process, raw_answer_too_big_is_cut_to_the_question_with_tc, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	/* 180 records = 2880 bytes: over 512 (no EDNS) and over 1232 (EDNS). */
	size_t ql = make_query(q, "RAW9.example.org.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(al, ql, "header and question only");
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(knot_wire_get_ancount(a), 0);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x04" "RAW9", 5), 0);
	knot_pkt_free(parse(a, al));

	ql = make_query(q, "raw9.example.org.", KNOT_RRTYPE_A, 1232, 0);
	al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(al, ql, "question and OPT");
	knot_pkt_t *p = parse(a, al);
	cr_assert(knot_pkt_has_edns(p));
	knot_pkt_free(p);

	/* Over TCP it all fits. */
	ql = make_query(q, "raw9.example.org.", KNOT_RRTYPE_A, 0, 0);
	al = ask(TERN_PROTO_TCP, q, ql, a, sizeof(a));
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_eq(knot_wire_get_ancount(a), 180);
	cr_assert_eq(al, ql + 180 * 16);
	knot_pkt_free(parse(a, al));
}

Test(process, raw_answer_with_a_foreign_question_is_servfail, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	/* "rawx": the plugin stores the question "x." (another length): unusable. */
	size_t ql = make_query(q, "rawx.example.org.", KNOT_RRTYPE_A, 0, 0);
	size_t al = ask(TERN_PROTO_UDP, q, ql, a, sizeof(a));
	cr_assert_eq(al, ql);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_SERVFAIL);
	cr_assert_eq(knot_wire_get_ancount(a), 0);
	cr_assert_eq(knot_wire_get_id(a), 0x1234);
}
