/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plugin unit tests: a request built by hand, as the engine would hand it to a plugin's
 * query hook (query parsed, answer started with the question copied, an arena), and the
 * answer parsed back as a client would.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <libknot/libknot.h>

#include "lib/core/arena.h"
#include "lib/engine/req.h"

struct t_query {
	uint8_t arena_buf[256 * 1024];
	uint8_t qwire[KNOT_WIRE_MAX_PKTSIZE];
	uint8_t awire[KNOT_WIRE_MAX_PKTSIZE];
	struct tern_arena arena;
	knot_mm_t mm;
	knot_dname_storage_t lower;
	struct sockaddr_storage src;   /**< 127.0.0.1:55225 */
	struct tern_req req;
	knot_pkt_t *parsed;            /**< the answer parsed back (t_query_parse_answer) */
};

/** What a test query looks like beyond its name and type. */
struct t_query_opts {
	uint16_t id;                   /**< 0: 0x3713 */
	uint16_t max_size;             /**< what the client takes; 0: 65535 (over TCP) */
	uint16_t edns_size;            /**< 0: no OPT */
	bool dnssec_ok;
	bool udp;                      /**< UDP even when max_size > 512 */
};

/** A query for @p name / @p qtype (id, RD set); UDP when max_size ≤ 512 or o->udp. */
struct t_query *t_query_new_opts(const char *name, uint16_t qtype, const struct t_query_opts *o);

static inline struct t_query *t_query_new(const char *name, uint16_t qtype, uint16_t max_size)
{
	return t_query_new_opts(name, qtype, &(struct t_query_opts) { .max_size = max_size });
}

/** Parse what the plugin wrote, as a client would (asserts it parses). */
const knot_pkt_t *t_query_parse_answer(struct t_query *t);

void t_query_free(struct t_query *t);

/** How t_wire_query() builds a query message. */
struct t_wire_opts {
	uint16_t id;
	bool rd, cd;
	uint16_t edns;                 /**< EDNS payload size; 0: no OPT */
	uint8_t edns_version;
	bool dnssec_ok;
};

/**
 * Write a query message for @p name / @p qtype (class IN) into @p buf, which has room for
 * 512 bytes (zeroed first), as a client would send it to the engine. @return its length.
 */
size_t t_wire_query(uint8_t *buf, const char *name, uint16_t qtype, const struct t_wire_opts *o);
