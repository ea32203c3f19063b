/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the hot answers (lib/engine/hot.c) through tern_process(): what is
 * kept, that a replay is byte for byte what the chain writes for the query at hand,
 * that a publish retires everything, limits (client size, until, TTL countdown),
 * counters, plugins that forbid replay, and the ring overwriting old answers.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core/arena.h"
#include "lib/core/attr.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"
#include "lib/dns/answer.h"
#include "lib/engine/hot.h"
#include "lib/engine/process.h"
#include "tests/support/metrics.h"
#include "tests/support/query.h"

/*
 * The test plugin (pure, skippable) answers "<n>.example.org A" with n * 20 A records
 * (TTL 60) and anything else NXDOMAIN; "t<n>.example.org" answers one A record and
 * allows the replay with a TTL countdown from `ttl_base` until `until`; "v.example.org"
 * bumps a counter it hands to the engine.
 */
static unsigned calls;
static uint64_t ttl_base, until;
static uint32_t ttls[1] = { 60 };
static uint16_t ttl_offs[1];
static _Atomic uint64_t counter;

/*
 * "s<n>.example.org" reads scoped data (req.h: struct tern_hot_scope): NXDOMAIN with a
 * SOA whose serial is the data's, kept while the data's part keeps its id.
 */
static uint64_t scoped_id = 1;
static uint32_t scoped_serial = 100;

static bool scoped_current(const struct tern_hot_scope *scope, uint32_t part, uint64_t id,
                           uint64_t *seen, uint32_t *serial)
{
	(void)scope;
	cr_assert_eq(part, 3);
	*serial = scoped_serial;
	*seen = scoped_serial;   /* the whole data: new with each serial */
	return id == scoped_id;
}

static const struct tern_hot_scope scoped = { .current = scoped_current };

static enum tern_verdict scoped_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	static const uint8_t rdata[] = "\x02" "ns" "\x07" "example" "\x03" "org" "\x00"
	                               "\x01" "h" "\x07" "example" "\x03" "org" "\x00"
	                               "SSSS" "\x00\x00\x1c\x20" "\x00\x00\x07\x08"
	                               "\x00\x01\x51\x80" "\x00\x00\x00\x3c";
	uint8_t rd[sizeof(rdata) - 1];
	memcpy(rd, rdata, sizeof(rd));
	knot_wire_write_u32(rd + 16 + 15, scoped_serial);   /* after MNAME and RNAME */
	knot_rrset_t soa;
	knot_rrset_init(&soa, (knot_dname_t *)"\x07" "example" "\x03" "org", KNOT_RRTYPE_SOA,
	                KNOT_CLASS_IN, 60);
	cr_assert_eq(knot_rrset_add_rdata(&soa, rd, sizeof(rdata) - 1, req->mm), KNOT_EOK);
	tern_answer_rcode(req, KNOT_RCODE_NXDOMAIN);
	tern_answer_authoritative(req, pi->plugin_id);
	cr_assert_eq(tern_answer_put(req, KNOT_AUTHORITY, &soa), KNOT_EOK);
	req->hot.scope = &scoped;
	req->hot.scope_part = 3;
	req->hot.scope_id = scoped_id;
	req->hot.scope_seen = scoped_serial;
	req->hot.scope_serial = true;
	return TERN_DONE;
}

static enum tern_verdict testplug_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	calls++;
	const uint8_t *l = req->qname;
	if (l[0] == 2 && l[1] == 's')
		return scoped_answer(req, pi);
	bool timed = l[0] == 2 && l[1] == 't';
	unsigned n = timed ? 1 : (l[0] == 1 ? (unsigned)(l[1] - '0') * 20 : 0);
	if (l[0] == 1 && l[1] == 'v') {
		atomic_fetch_add(&counter, 1);
		tern_hot_count(req, &counter);
		n = 1;
	}
	if (n == 0 || n > 180) {
		tern_answer_rcode(req, KNOT_RCODE_NXDOMAIN);
		tern_answer_authoritative(req, pi->plugin_id);
		return TERN_DONE;
	}
	knot_rrset_t rr;
	knot_rrset_init(&rr, (knot_dname_t *)req->qname, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60);
	for (unsigned i = 1; i <= n; i++) {
		uint8_t a[4] = { 192, 0, (uint8_t)(i >> 8), (uint8_t)i };
		cr_assert_eq(knot_rrset_add_rdata(&rr, a, 4, req->mm), KNOT_EOK);
	}
	tern_answer_authoritative(req, pi->plugin_id);
	tern_answer_put(req, KNOT_ANSWER, &rr);
	if (timed) {
		/* Header, question, then the record: pointer (2), type, class, TTL. */
		ttl_offs[0] = (uint16_t)(KNOT_WIRE_HEADER_SIZE + knot_dname_size(req->qname) + 4 + 6);
		req->hot = (struct tern_hot_hint) {
			.allow = true, .until_ms = until, .ttl_base_ms = ttl_base,
			.ttls = ttls, .ttl_offs = ttl_offs, .nttl = 1,
		};
	}
	return TERN_DONE;
}

static const struct tern_plugin pure_plug = {
	.name = "test", .hot = TERN_HOT_SKIP | TERN_HOT_PURE, .query = testplug_query,
};
static const struct tern_plugin impure_plug = {
	.name = "test", .hot = TERN_HOT_SKIP, .query = testplug_query,
};

/* A plugin in front that only watches (like log): without TERN_HOT_SKIP. */
static unsigned watched;
static void watcher_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	(void)req;
	(void)pi;
	watched++;
}
static const struct tern_plugin watcher = { .name = "watch", .answer = watcher_answer };

static uint8_t arena_buf[256 * 1024];
static struct tern_arena arena;
static knot_mm_t mm;
static struct tern_plugin_inst inst[2];
static knot_dname_t *zone;
static struct tern_server server;
static struct tern_route route;
static struct tern_listen_routes listens;
static struct tern_view view;
static struct sockaddr_storage client;
static struct tern_hot *hot;

static void use_chain(const struct tern_plugin *front, const struct tern_plugin *answerer)
{
	size_t n = 0;
	if (front)
		inst[n++] = (struct tern_plugin_inst) { .plugin = front, .plugin_id = 1 };
	inst[n++] = (struct tern_plugin_inst) { .plugin = answerer, .plugin_id = 0 };
	server.chain_len = n;
}

static void setup_entries(unsigned entries)
{
	tern_arena_init(&arena, arena_buf, sizeof(arena_buf), &mm);
	zone = knot_dname_from_str_alloc("example.org.");
	server = (struct tern_server) { .zones = &zone, .nzones = 1, .chain = inst };
	use_chain(NULL, &pure_plug);
	route = (struct tern_route) { .zone = zone, .server = &server, .stats_slot = -1,
	                             .labels = 2, .len = (unsigned)knot_dname_size(zone) };
	listens = (struct tern_listen_routes) { .routes = &route, .nroutes = 1 };
	view = (struct tern_view) { .servers = &server, .nservers = 1, .listens = &listens,
	                            .nlistens = 1 };
	client.ss_family = AF_INET;
	calls = watched = 0;
	atomic_store(&counter, 0);
	hot = tern_hot_new(entries);
	cr_assert_not_null(hot);
}

static void setup(void)
{
	setup_entries(1024);
}

static void setup_tiny(void)
{
	setup_entries(1);
}

static void teardown(void)
{
	tern_hot_free(hot);
	free(zone);
}

TestSuite(hot);

/* A query message into buf: QUERY(q, "name.", KNOT_RRTYPE_A, .id = 1, .edns = 1232). */
#define QUERY(buf, name, qtype, ...) \
	t_wire_query(buf, name, qtype, &(struct t_wire_opts) { __VA_ARGS__ })

static uint64_t now = 1000000;

static size_t ask_with(struct tern_hot *h, enum tern_proto proto, const uint8_t *query,
                       size_t len, uint8_t *out)
{
	uint8_t in[512];
	memcpy(in, query, len);   /* tern_process may modify its input */
	struct tern_query_ctx ctx = {
		.view = &view, .proto = proto, .src = &client, .arena = &arena, .mm = &mm,
		.now_ms = now, .hot = h, .epoch = tern_rcu_epoch_read(),
	};
	return tern_process(&ctx, in, len, out, 65535);
}

/* Ask with the hot answers; also ask without and check the two answers are the same. */
static size_t ask(const uint8_t *query, size_t len, uint8_t *out)
{
	static uint8_t ref[65535];
	size_t al = ask_with(hot, TERN_PROTO_UDP, query, len, out);
	unsigned before = calls;
	size_t rl = ask_with(NULL, TERN_PROTO_UDP, query, len, ref);
	cr_assert_eq(al, rl, "hot answer length %zu, chain %zu", al, rl);
	cr_assert_eq(memcmp(out, ref, al), 0, "the hot answer differs from the chain's");
	calls = before;   /* count only the calls of the hot-table ask */
	return al;
}

Test(hot, same_question_is_replayed_byte_for_byte, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1, .rd = true);
	cr_assert_gt(ask(q, ql, a), 0);
	cr_assert_eq(calls, 1);

	/* Other ID, case and RD: the same kept answer, patched for this query. */
	ql = QUERY(q, "1.ExAMple.ORG.", KNOT_RRTYPE_A, .id = 0xbeef);
	size_t al = ask(q, ql, a);
	cr_assert_eq(calls, 1, "the chain ran again");
	cr_assert_eq(knot_wire_get_id(a), 0xbeef);
	cr_assert_not(knot_wire_get_rd(a));
	cr_assert(knot_wire_get_aa(a) && knot_wire_get_qr(a));
	cr_assert_eq(memcmp(a + KNOT_WIRE_HEADER_SIZE, "\x01" "1" "\x07" "ExAMple" "\x03" "ORG", 14), 0);
	cr_assert_eq(knot_wire_get_ancount(a), 20);
	cr_assert_gt(al, 20 * 16);

	/* CD is part of the key, and echoed. */
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 7, .cd = true);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert(knot_wire_get_cd(a));
	cr_assert_eq(calls, 2);
	calls = 1;

	/* EDNS is added per query; DO is part of the key (and echoed). */
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 2, .edns = 1232);
	ask(q, ql, a);
	cr_assert_eq(calls, 1);
	cr_assert_eq(knot_wire_get_arcount(a), 1);
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 3, .edns = 1232, .dnssec_ok = true);
	ask(q, ql, a);
	cr_assert_eq(calls, 2, "DO is a different key");
	ask(q, ql, a);
	cr_assert_eq(calls, 2);

	/* Another type or name is another answer; NXDOMAIN is kept too. */
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_AAAA, .id = 4);
	ask(q, ql, a);
	ask(q, ql, a);
	ql = QUERY(q, "nope.example.org.", KNOT_RRTYPE_A, .id = 5);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NXDOMAIN);
	cr_assert_eq(calls, 4);
}

Test(hot, a_publish_retires_every_answer, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert_eq(calls, 1);
	/* Any RCU publish advances the epoch. */
	static int one = 1, two = 2;
	static int *root = &one;
	cr_assert_eq(TERN_RCU_XCHG(&root, &two), &one);
	ask(q, ql, a);
	cr_assert_eq(calls, 2, "an answer from before the publish was replayed");
	ask(q, ql, a);
	cr_assert_eq(calls, 2);
}

/* Scoped data: kept across its publishes while its part is unchanged, serial patched. */
Test(hot, scoped_answers_follow_their_part, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = QUERY(q, "s1.example.org.", KNOT_RRTYPE_A, .id = 1, .edns = 1232);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert_eq(calls, 1);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NXDOMAIN);
	/* Published again, this part unchanged: replayed with the serial of now. */
	scoped_serial = 101;
	ask(q, ql, a);   /* ask() checks the bytes against the chain's, serial included */
	cr_assert_eq(calls, 1, "an unchanged part's answer was retired");
	/* The part changed: retired. */
	scoped_id = 2;
	ask(q, ql, a);
	cr_assert_eq(calls, 2);
	ask(q, ql, a);
	cr_assert_eq(calls, 2);
	/* The publish epoch (a config, zone or hosts reload) still retires it. */
	tern_rcu_epoch_advance();
	ask(q, ql, a);
	cr_assert_eq(calls, 3);
}

Test(hot, a_plugin_that_must_see_every_query_stops_replay, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	use_chain(&watcher, &pure_plug);
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert_eq(calls, 2);
	cr_assert_eq(watched, 4);   /* both asks of both rounds */
}

Test(hot, answers_not_vouched_for_are_not_kept, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	use_chain(NULL, &impure_plug);
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert_eq(calls, 2);
}

Test(hot, a_client_that_takes_less_gets_the_truncated_answer, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	/* 60 A records: ~1000 bytes, kept for an EDNS client of 1232. */
	size_t ql = QUERY(q, "3.example.org.", KNOT_RRTYPE_A, .id = 1, .edns = 1232);
	size_t al = ask(q, ql, a);
	cr_assert_gt(al, 512);
	ask(q, ql, a);
	cr_assert_eq(calls, 1);
	/* Without EDNS the chain runs and truncates. */
	ql = QUERY(q, "3.example.org.", KNOT_RRTYPE_A, .id = 2);
	al = ask(q, ql, a);
	cr_assert_leq(al, 512);
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(calls, 2);
	/* The truncated form is kept apart, and replayed to clients that take as little. */
	al = ask(q, ql, a);
	cr_assert(knot_wire_get_tc(a));
	cr_assert_leq(al, 512);
	cr_assert_eq(calls, 2);
	ql = QUERY(q, "3.example.org.", KNOT_RRTYPE_A, .id = 3, .edns = 600);
	al = ask(q, ql, a);   /* EDNS 600: also too small, but more than 512: the chain */
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(calls, 3);
	ql = QUERY(q, "3.example.org.", KNOT_RRTYPE_A, .id = 4, .edns = 1232);
	al = ask(q, ql, a);   /* the whole answer is still kept for clients it fits */
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_eq(calls, 3);
	/* Only the truncated form kept (another name): whole answers still run the chain. */
	ql = QUERY(q, "4.example.org.", KNOT_RRTYPE_A, .id = 5);
	ask(q, ql, a);
	ask(q, ql, a);
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(calls, 4);
	ql = QUERY(q, "4.example.org.", KNOT_RRTYPE_A, .id = 6, .edns = 1232);
	ask(q, ql, a);   /* 80 records: TC at 1232 too, kept with its own limit */
	cr_assert_eq(calls, 5);
	ask(q, ql, a);
	cr_assert(knot_wire_get_tc(a));
	cr_assert_eq(calls, 5);
	ql = QUERY(q, "3.example.org.", KNOT_RRTYPE_A, .id = 2);
	/* Over TCP the whole answer (kept under its own key: the TCP and UDP keys agree). */
	uint8_t in[512];
	memcpy(in, q, ql);
	al = ask_with(hot, TERN_PROTO_TCP, in, ql, a);
	cr_assert_not(knot_wire_get_tc(a));
	cr_assert_eq(knot_wire_get_ancount(a), 60);
}

Test(hot, ttl_counts_down_and_the_answer_expires, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	ttl_base = now;
	until = now + 10000;
	size_t ql = QUERY(q, "t1.example.org.", KNOT_RRTYPE_A, .id = 1);
	uint8_t in[512];
	memcpy(in, q, ql);
	size_t al = ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_gt(al, 0);
	cr_assert_eq(knot_wire_read_u32(a + ttl_offs[0]), 60);
	cr_assert_eq(calls, 1);

	now += 2500;
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 1);
	cr_assert_eq(knot_wire_read_u32(a + ttl_offs[0]), 58, "TTL %u",
	             knot_wire_read_u32(a + ttl_offs[0]));

	now = until;   /* the limit is exclusive */
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 2);
	now = 1000000;
}

Test(hot, answers_allowed_with_limits_outlive_publishes_but_not_a_new_view, .init = setup,
     .fini = teardown)
{
	uint8_t q[512], a[65535], in[512];
	ttl_base = now;
	until = now + 10000;
	size_t ql = QUERY(q, "t2.example.org.", KNOT_RRTYPE_A, .id = 1);
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 1);
	/* A publish: a cache would still answer this, so the replay does too. */
	static int one = 1, two = 2;
	static int *root = &one;
	TERN_RCU_XCHG(&root, &two);
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 1);
	/* A new view (a reload): the chain runs. */
	view.generation++;
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 2);
	memcpy(in, q, ql);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(calls, 2);
}

Test(hot, counters_handed_over_are_bumped_on_replay, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535];
	size_t ql = QUERY(q, "v.example.org.", KNOT_RRTYPE_A, .id = 1);
	uint8_t in[512];
	for (int i = 0; i < 5; i++) {
		memcpy(in, q, ql);
		cr_assert_gt(ask_with(hot, TERN_PROTO_UDP, in, ql, a), 0);
	}
	cr_assert_eq(calls, 1);
	cr_assert_eq(atomic_load(&counter), 5);
}

Test(hot, odd_queries_take_the_chain_and_get_its_answer, .init = setup, .fini = teardown)
{
	uint8_t q[600], a[65535], in[600];
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	ask(q, ql, a);
	cr_assert_eq(calls, 1);

	/* Trailing garbage: FORMERR, never the kept answer. */
	memcpy(in, q, ql);
	in[ql] = 0xff;
	size_t al = ask_with(hot, TERN_PROTO_UDP, in, ql + 1, a);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR);
	cr_assert_leq(al, ql + 1);

	/* EDNS version 1: BADVERS. */
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1, .edns = 1232);
	memcpy(in, q, ql);
	in[ql - 11 + 6] = 1;
	al = ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	knot_pkt_t *p = knot_pkt_new(a, (uint16_t)al, NULL);
	cr_assert_eq(knot_pkt_parse(p, 0), KNOT_EOK);
	cr_assert_eq(knot_pkt_ext_rcode(p), KNOT_RCODE_BADVERS);
	knot_pkt_free(p);

	/* A malformed EDNS option: FORMERR. */
	memcpy(in, q, ql);
	knot_wire_write_u16(in + ql - 2, 4);                          /* RDLEN 4 */
	memcpy(in + ql, "\x00\x0a\x00\x09", 4);                       /* cookie of 9: too long */
	knot_wire_write_u16(in + 10, 1);
	ask_with(hot, TERN_PROTO_UDP, in, ql + 4, a);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_FORMERR);

	/* A response (QR) is dropped, a NOTIFY is not a query. */
	ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	memcpy(in, q, ql);
	knot_wire_set_qr(in);
	cr_assert_eq(ask_with(hot, TERN_PROTO_UDP, in, ql, a), 0);
	memcpy(in, q, ql);
	knot_wire_set_opcode(in, KNOT_OPCODE_NOTIFY);
	ask_with(hot, TERN_PROTO_UDP, in, ql, a);
	cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NOTIMPL);
	cr_assert_eq(calls, 1);
}

Test(hot, overwritten_answers_are_never_served, .init = setup_tiny, .fini = teardown)
{
	/* The smallest table holds a few dozen answers: ask for many more names. */
	uint8_t q[512], a[65535];
	char name[64];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 400; i++) {
			snprintf(name, sizeof(name), "n%d.example.org.", i);
			size_t ql = QUERY(q, name, KNOT_RRTYPE_A, .id = (uint16_t)i);
			size_t al = ask(q, ql, a);   /* compares with the chain's answer */
			cr_assert_gt(al, 0);
			cr_assert_eq(knot_wire_get_rcode(a), KNOT_RCODE_NXDOMAIN);
		}
	}
	/* Most of the second round ran the chain again: the ring wrapped. */
	cr_assert_gt(calls, 600);
	/* The newest are still there. */
	unsigned before = calls;
	size_t ql = QUERY(q, "n399.example.org.", KNOT_RRTYPE_A, .id = 9);
	ask(q, ql, a);
	cr_assert_eq(calls, before);
}

Test(hot, replays_are_counted_as_the_chain_counts_answers, .init = setup, .fini = teardown)
{
	uint8_t q[512], a[65535], in[512];
	struct tern_stats_row *row = tern_stats_row_new(77);
	route.stats_slot = tern_stats_slot("dns://127.0.0.1:5300", "hot.test.");
	size_t ql = QUERY(q, "1.example.org.", KNOT_RRTYPE_A, .id = 1);
	for (int i = 0; i < 3; i++) {
		memcpy(in, q, ql);
		struct tern_query_ctx ctx = {
			.view = &view, .proto = TERN_PROTO_UDP, .src = &client, .arena = &arena,
			.mm = &mm, .now_ms = now, .hot = hot, .epoch = tern_rcu_epoch_read(),
			.stats = row, .worker_id = 77,
		};
		cr_assert_gt(tern_process(&ctx, in, ql, a, sizeof(a)), 0);
	}
	cr_assert_eq(calls, 1);
	char *text = t_metrics_render();
	const char *lbl = "server=\"dns://127.0.0.1:5300\",zone=\"hot.test.\",view=\"\"";
	char series[256];
	snprintf(series, sizeof(series), "coredns_dns_requests_total{%s,proto=\"udp\","
	         "family=\"1\",type=\"A\"}", lbl);
	cr_assert_eq(t_metrics_sample(text, series), 3, "%s", text);
	snprintf(series, sizeof(series), "coredns_dns_responses_total{%s,rcode=\"NOERROR\","
	         "plugin=\"", lbl);
	cr_assert_not_null(strstr(text, series), "%s", text);
	snprintf(series, sizeof(series), "coredns_dns_request_duration_seconds_count{%s}", lbl);
	cr_assert_eq(t_metrics_sample(text, series), 3, "%s", text);
	cr_assert_eq(t_metrics_sample(text, "tern_hot_answers_total{worker=\"77\",result=\"hit\"}"), 2);
	cr_assert_eq(t_metrics_sample(text, "tern_hot_answers_total{worker=\"77\",result=\"stored\"}"),
	             1);
	free(text);
	tern_stats_row_free(row);
}

/* A tiny deterministic generator for the mutation test. */
static uint32_t rnd_state = 0x2545f491;
static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/*
 * Differential test: mutated copies of kept questions (bytes overwritten, header bits,
 * counts, truncation, trailing bytes, case) are answered with the hot answers and
 * without; the two answers must always be the same bytes (or both nothing).
 */
Test(hot, mutated_queries_get_what_the_chain_gives, .init = setup, .fini = teardown)
{
	static const struct {
		const char *name;
		uint16_t qtype;
		struct t_wire_opts o;
	} seeds[] = {
		{ "1.example.org.", KNOT_RRTYPE_A, { .id = 1, .rd = true } },
		{ "1.ExAmple.org.", KNOT_RRTYPE_A, { .id = 2, .edns = 1232 } },
		{ "2.example.org.", KNOT_RRTYPE_AAAA, { .id = 3, .edns = 4096, .dnssec_ok = true } },
		{ "3.example.org.", KNOT_RRTYPE_A, { .id = 4 } },
		{ "nope.example.org.", KNOT_RRTYPE_TXT, { .id = 5, .cd = true } },
		{ "t1.example.org.", KNOT_RRTYPE_A, { .id = 6, .edns = 512 } },
	};
	ttl_base = now;
	until = now + 1000000000ull;
	uint8_t seed[TERN_ARRAY_LEN(seeds)][512];
	size_t seed_len[TERN_ARRAY_LEN(seeds)];
	static uint8_t a[65535], ref[65535];
	uint8_t in[1024], q[1024];
	for (size_t i = 0; i < TERN_ARRAY_LEN(seeds); i++) {
		seed_len[i] = t_wire_query(seed[i], seeds[i].name, seeds[i].qtype, &seeds[i].o);
		ask(seed[i], seed_len[i], a);   /* kept */
	}
	unsigned same_len = 0, replayed = 0;
	for (int n = 0; n < 40000; n++) {
		size_t s = rnd() % TERN_ARRAY_LEN(seeds), len = seed_len[s];
		memcpy(q, seed[s], len);
		for (uint32_t m = rnd() % 3 + 1; m > 0; m--) {
			switch (rnd() % 6) {
			case 0:   /* any byte */
				q[rnd() % len] = (uint8_t)rnd();
				break;
			case 1:   /* header flags */
				q[2 + rnd() % 2] ^= (uint8_t)(1u << (rnd() % 8));
				break;
			case 2:   /* section counts */
				q[4 + rnd() % 8] = (uint8_t)(rnd() % 3);
				break;
			case 3:   /* truncated */
				len = 1 + rnd() % len;
				break;
			case 4:   /* trailing bytes */
				for (uint32_t k = rnd() % 12 + 1; k > 0 && len < sizeof(q); k--)
					q[len++] = (uint8_t)rnd();
				break;
			default:  /* case of a name byte */
				q[KNOT_WIRE_HEADER_SIZE + rnd() % 8] ^= 0x20;
				break;
			}
		}
		struct tern_query_ctx ctx = {
			.view = &view, .proto = rnd() % 4 ? TERN_PROTO_UDP : TERN_PROTO_TCP,
			.src = &client, .arena = &arena, .mm = &mm, .now_ms = now,
			.epoch = tern_rcu_epoch_read(),
		};
		memcpy(in, q, len);
		ctx.hot = hot;
		unsigned c0 = calls;
		size_t al = tern_process(&ctx, in, len, a, sizeof(a));
		replayed += calls == c0 && al > 0 &&
		            (knot_wire_get_rcode(a) == KNOT_RCODE_NOERROR ||
		             knot_wire_get_rcode(a) == KNOT_RCODE_NXDOMAIN);
		memcpy(in, q, len);
		ctx.hot = NULL;
		size_t rl = tern_process(&ctx, in, len, ref, sizeof(ref));
		cr_assert_eq(al, rl, "mutation %d: hot answer of %zu bytes, chain %zu", n, al, rl);
		cr_assert_eq(memcmp(a, ref, al), 0, "mutation %d: the answers differ", n);
		same_len += al > 0;
	}
	cr_assert_gt(same_len, 10000, "most mutations are still answered");
	cr_assert_gt(replayed, 3000, "only %u mutations were replayed", replayed);
}
