/* SPDX-License-Identifier: Apache-2.0 */
/* Hand-built requests for plugin unit tests; see query.h. */
#include "tests/support/query.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <time.h>
#include <criterion/criterion.h>

struct t_query *t_query_new_opts(const char *name, uint16_t qtype, const struct t_query_opts *o)
{
	struct t_query *t = calloc(1, sizeof(*t));
	cr_assert_not_null(t);
	tern_arena_init(&t->arena, t->arena_buf, sizeof(t->arena_buf), &t->mm);

	knot_dname_storage_t qname;
	cr_assert_not_null(knot_dname_from_str(qname, name, sizeof(qname)), "name %s", name);
	knot_pkt_t *build = knot_pkt_new(t->qwire, sizeof(t->qwire), &t->mm);
	cr_assert_not_null(build);
	knot_wire_set_id(build->wire, o->id ? o->id : 0x3713);
	knot_wire_set_rd(build->wire);
	cr_assert_eq(knot_pkt_put_question(build, qname, KNOT_CLASS_IN, qtype), KNOT_EOK);
	if (o->edns_size != 0) {
		knot_rrset_t opt;
		cr_assert_eq(knot_edns_init(&opt, o->edns_size, 0, 0, &t->mm), KNOT_EOK);
		if (o->dnssec_ok)
			knot_edns_set_do(&opt);
		cr_assert_eq(knot_pkt_begin(build, KNOT_ADDITIONAL), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(build, KNOT_COMPR_HINT_NONE, &opt, 0), KNOT_EOK);
	}

	knot_pkt_t *query = knot_pkt_new(t->qwire, build->size, &t->mm);
	cr_assert_not_null(query);
	cr_assert_eq(knot_pkt_parse(query, 0), KNOT_EOK);
	knot_pkt_t *answer = knot_pkt_new(t->awire, sizeof(t->awire), &t->mm);
	cr_assert_not_null(answer);
	cr_assert_eq(knot_pkt_init_response(answer, query), KNOT_EOK);
	knot_dname_copy_lower(t->lower, knot_pkt_qname(query));

	struct sockaddr_in *sin = (struct sockaddr_in *)&t->src;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(55225);
	inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint16_t max_size = o->max_size ? o->max_size : 65535;
	t->req = (struct tern_req) {
		.query = query,
		.qname = t->lower,
		.qname_len = (uint16_t)knot_dname_size(t->lower),
		.qtype = qtype,
		.qclass = KNOT_CLASS_IN,
		.proto = max_size > 512 && !o->udp ? TERN_PROTO_TCP : TERN_PROTO_UDP,
		.src = &t->src,
		.has_edns = o->edns_size != 0,
		.dnssec_ok = o->dnssec_ok,
		.qsize = (uint16_t)query->size,
		.now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u,
		.mm = &t->mm,
		.answer = answer,
		.max_size = max_size,
	};
	return t;
}

const knot_pkt_t *t_query_parse_answer(struct t_query *t)
{
	knot_pkt_t *ans = t->req.answer;
	t->parsed = knot_pkt_new(ans->wire, ans->size, NULL);
	cr_assert_not_null(t->parsed);
	cr_assert_eq(knot_pkt_parse(t->parsed, 0), KNOT_EOK);
	return t->parsed;
}

void t_query_free(struct t_query *t)
{
	if (t == NULL)
		return;
	knot_pkt_free(t->parsed);
	free(t);
}

size_t t_wire_query(uint8_t *buf, const char *name, uint16_t qtype, const struct t_wire_opts *o)
{
	memset(buf, 0, 512);
	knot_pkt_t *q = knot_pkt_new(buf, 512, NULL);
	knot_dname_t *dn = knot_dname_from_str_alloc(name);
	cr_assert(q && dn, "query %s", name);
	knot_wire_set_id(q->wire, o->id);
	if (o->rd)
		knot_wire_set_rd(q->wire);
	if (o->cd)
		knot_wire_set_cd(q->wire);
	cr_assert_eq(knot_pkt_put_question(q, dn, KNOT_CLASS_IN, qtype), KNOT_EOK);
	if (o->edns) {
		knot_rrset_t opt;
		cr_assert_eq(knot_edns_init(&opt, o->edns, 0, o->edns_version, NULL), KNOT_EOK);
		if (o->dnssec_ok)
			knot_edns_set_do(&opt);
		knot_pkt_begin(q, KNOT_ADDITIONAL);
		cr_assert_eq(knot_pkt_put(q, KNOT_COMPR_HINT_NONE, &opt, KNOT_PF_FREE), KNOT_EOK);
	}
	size_t len = q->size;
	free(dn);
	knot_pkt_free(q);
	return len;
}
