/* SPDX-License-Identifier: Apache-2.0 */
/* A scripted lib/engine/io.h for unit tests; see fake_io.h. */
#include "tests/support/fake_io.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <criterion/criterion.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/core/parse.h"
#include "lib/engine/req.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct tern_io *t_io_new(void)
{
	struct tern_io *io = calloc(1, sizeof(*io));
	cr_assert_not_null(io);
	return io;
}

void t_io_free(struct tern_io *io)
{
	free(io);
}

void t_io_set_down(struct tern_io *io, const char *addr)
{
	cr_assert_lt(io->ndown, T_IO_MAX_DOWN);
	cr_assert_eq(tern_parse_addr(addr, 53, &io->down[io->ndown]), 0, "address %s", addr);
	io->ndown++;
}

const struct t_io_forward *t_io_last(const struct tern_io *io)
{
	cr_assert_gt(io->ncalls, 0, "no tern_io_forward call recorded");
	unsigned i = io->ncalls <= T_IO_MAX_CALLS ? io->ncalls - 1 : T_IO_MAX_CALLS - 1;
	return &io->calls[i];
}

int tern_io_forward(struct tern_req *req, unsigned plugin_id, const struct tern_upstream_req *u)
{
	struct tern_io *io = req->io;
	if (!io)
		return TERN_EINVAL;
	unsigned attempts = req->resume ? io->attempts + 1 : 1;
	if (io->ncalls < T_IO_MAX_CALLS) {
		struct t_io_forward *c = &io->calls[io->ncalls];
		c->plugin_id = plugin_id;
		c->u = *u;
		c->attempts = attempts;
		c->qlen = (uint16_t)(req->query->size < T_IO_QUERY_MAX ? req->query->size : 0);
		memcpy(c->query, req->query->wire, c->qlen);
	}
	io->ncalls++;
	if (io->forward_ret != 0)
		return io->forward_ret;
	if (req->query->size > T_IO_QUERY_MAX)
		return TERN_ENOSPC;
	if (!req->resume)
		io->start_ns = mono_ns();
	io->parked = true;
	io->attempts = attempts;
	memcpy(io->query, req->query->wire, req->query->size);
	io->qlen = (uint16_t)req->query->size;
	return 0;
}

int tern_io_refresh(struct tern_req *req)
{
	struct tern_io *io = req->io;
	if (!io)
		return TERN_EINVAL;
	if (io->refresh_ret != 0)
		return io->refresh_ret;
	if (io->nrefreshes >= T_IO_MAX_CALLS || req->query->size > T_IO_QUERY_MAX)
		return TERN_ENOSPC;
	struct t_io_refresh *r = &io->refreshes[io->nrefreshes++];
	memcpy(r->query, req->query->wire, req->query->size);
	r->qlen = (uint16_t)req->query->size;
	return 0;
}

bool tern_io_upstream_down(struct tern_req *req, const struct sockaddr_storage *addr,
                           unsigned max_fails)
{
	struct tern_io *io = req->io;
	if (!io)
		return false;
	io->down_queries++;
	io->last_max_fails = max_fails;
	if (max_fails == 0)
		return false;
	for (unsigned i = 0; i < io->ndown; i++) {
		if (tern_addr_equal(&io->down[i], addr))
			return true;
	}
	return false;
}

void t_io_make_resume(struct tern_io *io, enum tern_resume_status st, const uint8_t *wire,
                      uint16_t len, struct tern_resume *r)
{
	const struct t_io_forward *c = t_io_last(io);
	if (st == TERN_RESUME_ANSWER) {
		cr_assert_not_null(wire);
		memcpy(io->reply, wire, len);
	}
	*r = (struct tern_resume) {
		.plugin_id = c->plugin_id,
		.status = st,
		.wire = st == TERN_RESUME_ANSWER ? io->reply : NULL,
		.len = st == TERN_RESUME_ANSWER ? len : 0,
		.upstream = c->u.addr,
		.over_tcp = c->u.tcp,
		.tried = c->u.tried,
		.attempts = c->attempts,
		.rtt_us = 1000,
	};
	io->parked = false;
}

static size_t rerun(struct tern_io *io, const struct tern_query_ctx *base,
                    const struct tern_resume *r, bool refresh, const uint8_t *query,
                    uint16_t qlen, uint8_t *out, size_t cap, bool *parked)
{
	static uint8_t in[T_IO_QUERY_MAX];
	memcpy(in, query, qlen);
	bool p = false;
	struct tern_query_ctx ctx = *base;
	ctx.io = io;
	ctx.resume = r;
	ctx.refresh = refresh;
	ctx.start_ns = refresh ? 0 : io->start_ns;
	if (refresh)
		ctx.stats = NULL;   /* a refresh is no client query */
	ctx.parked = &p;
	size_t len = tern_process(&ctx, in, qlen, out, cap);
	if (parked)
		*parked = p;
	return len;
}

size_t t_io_resume(struct tern_io *io, const struct tern_query_ctx *base,
                   enum tern_resume_status st, const uint8_t *wire, uint16_t len,
                   uint8_t *out, size_t cap, bool *parked)
{
	cr_assert(io->parked, "nothing is parked");
	struct tern_resume r;
	t_io_make_resume(io, st, wire, len, &r);
	uint8_t query[T_IO_QUERY_MAX];
	uint16_t qlen = io->qlen;
	memcpy(query, io->query, qlen);
	return rerun(io, base, &r, false, query, qlen, out, cap, parked);
}

size_t t_io_run_refresh(struct tern_io *io, const struct tern_query_ctx *base, unsigned i,
                        uint8_t *out, size_t cap, bool *parked)
{
	cr_assert_lt(i, io->nrefreshes);
	uint8_t query[T_IO_QUERY_MAX];
	uint16_t qlen = io->refreshes[i].qlen;
	memcpy(query, io->refreshes[i].query, qlen);
	return rerun(io, base, NULL, true, query, qlen, out, cap, parked);
}

size_t t_io_reply_a(const struct tern_io *io, uint8_t *buf, size_t cap, uint8_t rcode,
                    const char *const *addrs, size_t n, uint32_t ttl)
{
	const struct t_io_forward *c = t_io_last(io);
	knot_pkt_t *q = knot_pkt_new((void *)c->query, c->qlen, NULL);
	cr_assert_not_null(q);
	cr_assert_eq(knot_pkt_parse(q, 0), KNOT_EOK);
	knot_pkt_t *a = knot_pkt_new(buf, (uint16_t)(cap < 65535 ? cap : 65535), NULL);
	cr_assert_not_null(a);
	cr_assert_eq(knot_pkt_init_response(a, q), KNOT_EOK);
	knot_wire_set_ra(a->wire);
	knot_wire_set_rcode(a->wire, rcode);
	if (n > 0) {
		knot_rrset_t rr;
		knot_rrset_init(&rr, knot_dname_copy(knot_pkt_qname(q), NULL), KNOT_RRTYPE_A,
		                KNOT_CLASS_IN, ttl);
		for (size_t i = 0; i < n; i++) {
			uint8_t ip[4];
			cr_assert_eq(inet_pton(AF_INET, addrs[i], ip), 1, "address %s", addrs[i]);
			cr_assert_eq(knot_rrset_add_rdata(&rr, ip, 4, NULL), KNOT_EOK);
		}
		cr_assert_eq(knot_pkt_begin(a, KNOT_ANSWER), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(a, KNOT_COMPR_HINT_QNAME, &rr, KNOT_PF_FREE), KNOT_EOK);
	}
	size_t len = a->size;
	knot_pkt_free(a);
	knot_pkt_free(q);
	return len;
}
