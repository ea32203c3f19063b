/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Query processing: from raw query bytes to the answer bytes (process.h), including
 * parked requests (TERN_PARK), their re-runs and raw answers.
 * Hot path: no malloc, no locks, no blocking.
 */
#include "lib/engine/process.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/core/attr.h"
#include "lib/core/clock.h"
#include "lib/core/stats.h"
#include "lib/dns/answer.h"
#include "lib/engine/hot.h"

/* Extended RCODE BADVERS (RFC 6891): 16 = header 0 + OPT ext-rcode 1. */
#define RCODE_BADVERS 16

static int family_of(const struct sockaddr_storage *ss)
{
	return ss && ss->ss_family == AF_INET6 ? 2 : 1;
}

/* Start (or restart) the answer: header and question copied from the query. */
static int answer_begin(struct tern_req *req, uint8_t *out, uint16_t cap)
{
	req->answer = knot_pkt_new(out, cap, req->mm);
	if (!req->answer)
		return KNOT_ENOMEM;
	int ret = knot_pkt_init_response(req->answer, req->query);
	if (ret != KNOT_EOK)
		return ret;
	/*
	 * Tern recurses only through forward; RA is set by that plugin. The RCODE bits
	 * are the query's after the copy: a client must never choose the answer's.
	 */
	knot_wire_clear_aa(req->answer->wire);
	knot_wire_clear_ad(req->answer->wire);
	knot_wire_set_rcode(req->answer->wire, KNOT_RCODE_NOERROR);
	if (req->has_edns)
		ret = knot_pkt_reserve(req->answer, 11);   /* OPT without options */
	return ret;
}

/* Append the OPT record (payload size, extended RCODE, DO echoed). */
static int answer_add_opt(struct tern_req *req, uint16_t rcode)
{
	knot_rrset_t opt;
	int ret = knot_edns_init(&opt, TERN_UDP_MAX_PAYLOAD, (uint8_t)(rcode >> 4), 0, req->mm);
	if (ret != KNOT_EOK)
		return ret;
	if (req->dnssec_ok)
		knot_edns_set_do(&opt);
	knot_pkt_reclaim(req->answer, 11);
	if (req->answer->current < KNOT_ADDITIONAL) {
		ret = knot_pkt_begin(req->answer, KNOT_ADDITIONAL);
		if (ret != KNOT_EOK)
			return ret;
	}
	return knot_pkt_put(req->answer, KNOT_COMPR_HINT_NONE, &opt, KNOT_PF_NOTRUNC);
}

/*
 * An answer with only header (and the question when it parsed) for errors found
 * before the chain. Never bigger than the query: no amplification.
 */
static size_t answer_bare(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                          uint16_t rcode, size_t qsection_len)
{
	size_t len = KNOT_WIRE_HEADER_SIZE + qsection_len;
	if (len > out_cap || len > in_len)
		return 0;
	memcpy(out, in, len);
	knot_wire_set_qr(out);
	knot_wire_clear_aa(out);
	knot_wire_clear_tc(out);
	knot_wire_clear_ra(out);
	knot_wire_clear_ad(out);
	knot_wire_set_rcode(out, (uint8_t)(rcode & 0xf));
	knot_wire_set_qdcount(out, qsection_len ? 1 : 0);
	knot_wire_set_ancount(out, 0);
	knot_wire_set_nscount(out, 0);
	knot_wire_set_arcount(out, 0);
	return len;
}

/*
 * FORMERR for a query libknot cannot parse: with its question when that part parses
 * (malformed records, several OPTs, trailing garbage), else the header alone.
 */
static TERN_COLD size_t answer_formerr(const uint8_t *in, size_t in_len, uint8_t *out,
                                       size_t out_cap, knot_mm_t *mm)
{
	size_t qsection = 0;
	knot_pkt_t *q = knot_wire_get_qdcount(in) == 1 ?
	                knot_pkt_new((uint8_t *)in, (uint16_t)in_len, mm) : NULL;
	if (q && knot_pkt_parse_question(q) == KNOT_EOK)
		qsection = knot_pkt_question_size(q);   /* qname + type + class */
	return answer_bare(in, in_len, out, out_cap, KNOT_RCODE_FORMERR, qsection);
}

static uint16_t answer_rcode(const struct tern_req *req)
{
	return knot_wire_get_rcode(req->answer->wire);
}

/* Replace whatever was built by a bare answer with @p rcode (question kept). */
static int answer_reset(struct tern_req *req, uint8_t *out, uint16_t cap, uint8_t rcode)
{
	int ret = answer_begin(req, out, cap);
	if (ret == KNOT_EOK)
		knot_wire_set_rcode(req->answer->wire, rcode);
	return ret;
}

static enum tern_verdict run_chain(struct tern_req *req, size_t *ran)
{
	const struct tern_server *srv = req->server;
	for (size_t i = 0; i < srv->chain_len; i++) {
		const struct tern_plugin_inst *pi = &srv->chain[i];
		*ran = i + 1;
		if (!pi->plugin->query)
			continue;
		enum tern_verdict v = pi->plugin->query(req, pi);
		if (v != TERN_NEXT)
			return v;
	}
	return TERN_NEXT;
}

static void run_answer_hooks(struct tern_req *req, size_t ran)
{
	const struct tern_server *srv = req->server;
	for (size_t i = ran; i-- > 0;) {
		const struct tern_plugin_inst *pi = &srv->chain[i];
		if (pi->plugin->answer)
			pi->plugin->answer(req, pi);
	}
}

int tern_process_finish_raw(struct tern_req *req)
{
	knot_pkt_t *ans = req->answer;
	uint8_t *wire = ans->wire;
	const uint8_t *q = req->query->wire;
	size_t qsec = knot_pkt_question_size(req->query);
	size_t head = KNOT_WIRE_HEADER_SIZE + qsec;
	size_t opt = req->has_edns ? 11 : 0;
	size_t avail = req->raw_len < ans->max_size ? req->raw_len : ans->max_size;
	if (req->raw_len < head || head > avail || knot_wire_get_qdcount(wire) != 1 ||
	    knot_dname_wire_check(wire + KNOT_WIRE_HEADER_SIZE, wire + avail, NULL) !=
	    (int)(qsec - 4))
		return -1;
	size_t len = req->raw_len;
	if (len + opt > ans->max_size) {
		len = head;
		knot_wire_set_tc(wire);
		knot_wire_set_ancount(wire, 0);
		knot_wire_set_nscount(wire, 0);
		knot_wire_set_arcount(wire, 0);
		req->truncated = true;
	}
	memcpy(wire + KNOT_WIRE_HEADER_SIZE, q + KNOT_WIRE_HEADER_SIZE, qsec);
	knot_wire_set_id(wire, knot_wire_get_id(q));
	knot_wire_set_qr(wire);
	if (knot_wire_get_rd(q))
		knot_wire_set_rd(wire);
	else
		knot_wire_clear_rd(wire);
	if (knot_wire_get_cd(q))
		knot_wire_set_cd(wire);
	else
		knot_wire_clear_cd(wire);
	if (opt) {
		/* Root owner, type OPT, our payload size, ext-RCODE 0, version 0, DO, no RDATA. */
		uint8_t *o = wire + len;
		o[0] = 0;
		knot_wire_write_u16(o + 1, KNOT_RRTYPE_OPT);
		knot_wire_write_u16(o + 3, TERN_UDP_MAX_PAYLOAD);
		o[5] = 0;
		o[6] = 0;
		o[7] = req->dnssec_ok ? 0x80 : 0;
		o[8] = 0;
		knot_wire_write_u16(o + 9, 0);
		knot_wire_set_arcount(wire, knot_wire_get_arcount(wire) + 1);
	}
	req->raw_len = (uint16_t)len;
	ans->size = len + opt;
	return 0;
}

/* answer_query() result: the request waits on io (TERN_PARK). */
#define PARKED SIZE_MAX

/*
 * A raw answer is complete: finish it, or make it a SERVFAIL when unusable. 0 = drop.
 * Kept out of line: inlined, it costs the plain path ~12 instructions per query.
 */
static TERN_COLD TERN_NOINLINE
size_t answer_raw_done(struct tern_req *req, uint8_t *out, uint16_t cap)
{
	if (tern_process_finish_raw(req) == 0)
		return req->answer->size;
	req->raw_len = 0;
	if (answer_reset(req, out, cap, KNOT_RCODE_SERVFAIL) != KNOT_EOK)
		return 0;
	if (req->has_edns && answer_add_opt(req, KNOT_RCODE_SERVFAIL) != KNOT_EOK)
		return 0;
	return req->answer->size;
}

/*
 * Whether the answer the chain just made may be kept as a hot answer: every plugin
 * that ran lets the replay skip it, and the one that answered vouches for the answer
 * (TERN_HOT_PURE) or allowed it with limits (req->hot).
 */
static bool chain_allows_hot(const struct tern_req *req, size_t ran)
{
	const struct tern_server *srv = req->server;
	if (req->hot.deny || ran == 0)
		return false;
	for (size_t i = 0; i < ran; i++) {
		if (!(srv->chain[i].plugin->hot & TERN_HOT_SKIP))
			return false;
	}
	return req->hot.allow || (srv->chain[ran - 1].plugin->hot & TERN_HOT_PURE);
}

/*
 * Everything after routing: chain, truncation, OPT, answer hooks. 0 = drop.
 * *hot_ok: the answer may be kept as a hot answer (lib/engine/hot.h).
 */
static size_t answer_query(struct tern_req *req, uint8_t *out, uint16_t cap, bool *hot_ok)
{
	size_t ran = 0;
	enum tern_verdict v = run_chain(req, &ran);
	if (likely(v == TERN_DONE)) {
		if (unlikely(req->raw_len)) {
			if (answer_raw_done(req, out, cap) == 0)
				return 0;
			goto hooks;
		}
		if (req->truncated) {
			/* Did not fit: question only with TC; the client retries over TCP. */
			uint8_t rcode = (uint8_t)answer_rcode(req);
			bool aa = knot_wire_get_aa(req->answer->wire);
			if (answer_reset(req, out, cap, rcode) != KNOT_EOK)
				return 0;
			knot_wire_set_tc(req->answer->wire);
			if (aa)
				knot_wire_set_aa(req->answer->wire);
		}
	} else if (v == TERN_DROP) {
		return 0;
	} else if (v == TERN_PARK && req->io) {
		return PARKED;
	} else if (answer_reset(req, out, cap, KNOT_RCODE_SERVFAIL) != KNOT_EOK) {
		/* TERN_FAIL, a park without io, or no plugin took it: SERVFAIL, as CoreDNS. */
		return 0;
	}
	if (req->has_edns && answer_add_opt(req, answer_rcode(req)) != KNOT_EOK)
		return 0;
hooks:
	run_answer_hooks(req, ran);
	*hot_ok = v == TERN_DONE && chain_allows_hot(req, ran);
	return req->answer->size;
}

/* Pre-chain refusal or error with the parsed question (and OPT when EDNS). */
static size_t answer_early(struct tern_req *req, uint8_t *out, uint16_t cap, uint16_t rcode)
{
	if (answer_reset(req, out, cap, (uint8_t)(rcode & 0xf)) != KNOT_EOK)
		return 0;
	if (req->has_edns && answer_add_opt(req, rcode) != KNOT_EOK)
		return 0;
	return req->answer->size;
}

static uint16_t udp_limit(const struct tern_req *req)
{
	if (!req->has_edns)
		return TERN_UDP_MIN_PAYLOAD;
	uint16_t want = knot_edns_get_payload(req->query->opt_rr);
	if (want < TERN_UDP_MIN_PAYLOAD)
		return TERN_UDP_MIN_PAYLOAD;
	return want > TERN_UDP_MAX_PAYLOAD ? TERN_UDP_MAX_PAYLOAD : want;
}

static bool is_supported_qtype(uint16_t qtype, uint16_t *rcode)
{
	switch (qtype) {
	case KNOT_RRTYPE_AXFR:
	case KNOT_RRTYPE_IXFR:
		*rcode = KNOT_RCODE_REFUSED;   /* no zone transfer (yet) */
		return false;
	case KNOT_RRTYPE_OPT:
	case KNOT_RRTYPE_TSIG:
	case KNOT_RRTYPE_TKEY:
		*rcode = KNOT_RCODE_FORMERR;   /* meta types are not questions */
		return false;
	default:
		return true;
	}
}

/* Count a replayed hot answer as the chain's answer was counted. */
static TERN_NOINLINE void count_hot_hit(const struct tern_query_ctx *ctx,
                                        const struct tern_hot_key *key,
                                        const struct tern_hot_hit *hit, size_t in_len,
                                        uint64_t t0)
{
	tern_stats_replayed(ctx->stats, hit->stats, ctx->proto, family_of(ctx->src),
	                    key->flags & TERN_HOT_KEY_DO, in_len, hit->len, tern_mono_ns() - t0);
	if (hit->truncated)
		tern_stats_event(ctx->stats, TERN_STATS_TRUNCATED);
}

/* Keep an answer the chain allowed to keep (NOERROR and NXDOMAIN only). */
static TERN_NOINLINE void hot_store(const struct tern_query_ctx *ctx,
                                    const struct tern_hot_key *key, const struct tern_req *req,
                                    const uint8_t *out, size_t len, uint16_t truncated_at,
                                    int slot)
{
	uint8_t rc = knot_wire_get_rcode(out);
	if (rc != KNOT_RCODE_NOERROR && rc != KNOT_RCODE_NXDOMAIN)
		return;
	struct tern_stats_loc loc;
	tern_stats_locate(ctx->stats, slot, key->qtype, rc,
	                  req->answered ? req->plugin_id : TERN_STATS_NO_PLUGIN, &loc);
	if (tern_hot_store(ctx->hot, key, req, out, len, truncated_at, &loc) && ctx->stats)
		tern_stats_event(ctx->stats, TERN_STATS_HOT_STORE);
}

size_t tern_process(const struct tern_query_ctx *ctx, uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_cap)
{
	struct tern_stats_row *stats = ctx->stats;
	/* When the query arrived: the transport's receive time, else now. */
	uint64_t t0 = ctx->start_ns ? ctx->start_ns : stats ? tern_mono_ns() : 0;
	struct tern_hot_key hkey;
	hkey.name_len = 0;
	if (ctx->hot && ctx->view && likely(!ctx->resume && !ctx->refresh)) {
		struct tern_hot_hit hit = tern_hot_serve(ctx->hot, ctx->epoch, ctx->view->generation,
		                                         ctx->listen_index,
		                                         ctx->proto == TERN_PROTO_TCP, ctx->now_ms,
		                                         in, in_len, out, out_cap, &hkey);
		if (hit.len) {
			if (stats)
				count_hot_hit(ctx, &hkey, &hit, in_len, t0);
			return hit.len;
		}
	}
	tern_arena_reset(ctx->arena);
	if (in_len < KNOT_WIRE_HEADER_SIZE || knot_wire_get_qr(in) || in_len > UINT16_MAX) {
		/* Too short to answer, or a response: never reply (loops, reflection). */
		if (stats)
			tern_stats_event(stats, TERN_STATS_DROPPED);
		return 0;
	}
	if (out_cap > UINT16_MAX)
		out_cap = UINT16_MAX;

	struct tern_req req = {
		.proto = ctx->proto,
		.src = ctx->src,
		.qsize = (uint16_t)in_len,
		.view = ctx->view,
		.now_ms = ctx->now_ms,
		.worker_id = ctx->worker_id,
		.mm = ctx->mm,
		.io = ctx->io,
		.resume = ctx->resume,
		.refresh = ctx->refresh,
		.plugin_id = TERN_STATS_NO_PLUGIN,
	};
	int slot = -1;
	size_t len = 0;
	bool badvers = false;

	if (knot_wire_get_opcode(in) != KNOT_OPCODE_QUERY) {
		len = answer_bare(in, in_len, out, out_cap, KNOT_RCODE_NOTIMPL, 0);
		goto count;
	}
	req.query = knot_pkt_new(in, (uint16_t)in_len, ctx->mm);
	if (!req.query)
		goto count;
	/* knot_pkt_parse parses the question too: once per query. */
	if (knot_wire_get_qdcount(in) != 1 || knot_pkt_parse(req.query, 0) != KNOT_EOK) {
		len = answer_formerr(in, in_len, out, out_cap, ctx->mm);
		if (stats)
			tern_stats_event(stats, TERN_STATS_FORMERR);
		goto count;
	}
	req.qtype = knot_pkt_qtype(req.query);
	req.qclass = knot_pkt_qclass(req.query);
	req.has_edns = knot_pkt_has_edns(req.query);
	req.dnssec_ok = req.has_edns && knot_edns_do(req.query->opt_rr);
	req.max_size = ctx->proto == TERN_PROTO_UDP ? udp_limit(&req) : UINT16_MAX;
	uint16_t cap = (uint16_t)(req.max_size < out_cap ? req.max_size : out_cap);

	/* libknot keeps a lowercased copy of the question name; the wire keeps the case. */
	const knot_dname_t *qname = knot_pkt_qname(req.query);
	req.qname = qname;
	req.qname_len = req.query->qname_size;

	uint16_t rcode = 0;
	if (req.has_edns && knot_edns_get_version(req.query->opt_rr) != 0) {
		len = answer_early(&req, out, cap, RCODE_BADVERS);
		badvers = true;
		goto count;
	}
	if (!is_supported_qtype(req.qtype, &rcode) ||
	    (req.qclass != KNOT_CLASS_IN && (rcode = KNOT_RCODE_REFUSED))) {
		len = answer_early(&req, out, cap, rcode);
		goto count;
	}
	const struct tern_route *route = ctx->view ?
		tern_view_route(ctx->view, ctx->listen_index, qname, req.qname_len) : NULL;
	if (!route) {
		len = answer_early(&req, out, cap, KNOT_RCODE_REFUSED);
		goto count;
	}
	slot = route->stats_slot;
	req.server = route->server;
	req.zone = route->zone;
	if (stats && !ctx->resume)   /* a re-run's request was counted by the first run */
		tern_stats_request(stats, slot, ctx->proto, family_of(ctx->src), req.qtype,
		                   req.dnssec_ok, in_len);
	if (answer_begin(&req, out, cap) != KNOT_EOK) {
		len = 0;
		goto count;
	}
	bool hot_ok = false;
	len = answer_query(&req, out, cap, &hot_ok);
	if (unlikely(len == PARKED)) {
		/* Waiting on io: neither answered nor dropped yet. */
		if (ctx->parked)
			*ctx->parked = true;
		return 0;
	}
	if (len && req.truncated && stats)
		tern_stats_event(stats, TERN_STATS_TRUNCATED);
	if (hot_ok && hkey.name_len && len)
		hot_store(ctx, &hkey, &req, out, len, req.truncated ? cap : 0, slot);

count:
	if (stats && len) {
		uint16_t rc = badvers ? RCODE_BADVERS : knot_wire_get_rcode(out);
		if (slot < 0 && !ctx->resume)
			tern_stats_request(stats, slot, ctx->proto, family_of(ctx->src),
			                   req.qtype, req.dnssec_ok, in_len);
		tern_stats_response(stats, slot, ctx->proto, rc,
		                    req.answered ? req.plugin_id : TERN_STATS_NO_PLUGIN,
		                    len, tern_mono_ns() - t0);
	} else if (stats) {
		tern_stats_event(stats, TERN_STATS_DROPPED);
	}
	return unlikely(ctx->refresh) ? 0 : len;   /* a refresh ran for its answer hooks */
}

const char *tern_req_qname_str(const struct tern_req *req, char *buf, size_t len)
{
	if (!req->qname || !knot_dname_to_str(buf, req->qname, len))
		snprintf(buf, len, ".");
	return buf;
}
