/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of lib/engine/process.c: validation, routing, truncation and EDNS, with
 * a view built by hand around a test plugin that answers A records.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/core/arena.h"
#include "lib/dns/answer.h"
#include "lib/engine/process.h"

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

static uint8_t arena_buf[256 * 1024];
static struct tern_arena arena;
static knot_mm_t mm;
static struct tern_plugin_inst inst = { .plugin = &testplug, .plugin_id = 0 };
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
	server = (struct tern_server) { .zones = &zone, .nzones = 1, .chain = &inst, .chain_len = 1 };
	route = (struct tern_route) { .zone = zone, .server = &server, .stats_slot = -1, .labels = 2 };
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

/* Build a query; edns_size 0 = no EDNS. @return its length. */
static size_t make_query(uint8_t *buf, const char *name, uint16_t qtype, uint16_t edns_size,
                         uint8_t edns_version)
{
	memset(buf, 0, 512);
	knot_pkt_t *q = knot_pkt_new(buf, 512, NULL);
	knot_dname_t *dn = knot_dname_from_str_alloc(name);
	knot_wire_set_id(q->wire, 0x1234);
	knot_wire_set_rd(q->wire);
	cr_assert_eq(knot_pkt_put_question(q, dn, KNOT_CLASS_IN, qtype), KNOT_EOK);
	if (edns_size) {
		knot_rrset_t opt;
		cr_assert_eq(knot_edns_init(&opt, edns_size, 0, edns_version, NULL), KNOT_EOK);
		knot_pkt_begin(q, KNOT_ADDITIONAL);
		cr_assert_eq(knot_pkt_put(q, KNOT_COMPR_HINT_NONE, &opt, KNOT_PF_FREE), KNOT_EOK);
	}
	size_t len = q->size;
	free(dn);
	knot_pkt_free(q);
	return len;
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
