/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's entry point: one query in, one answer (or nothing) out. Validates the
 * packet (FORMERR, NOTIMP, BADVERS, REFUSED, drops), routes it to a server block,
 * runs the block's plugin chain, applies truncation and EDNS, and counts it. Used by
 * the daemon's UDP and TCP paths and directly by tests.
 * Hot path: no malloc, no locks, no syscalls (clock reads go through the vDSO).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/core/arena.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"

/** The server's largest UDP answer (RFC 9715 / DNS flag day 2020 value). */
#define TERN_UDP_MAX_PAYLOAD 1232
/** Answers to clients without EDNS never exceed this (RFC 1035). */
#define TERN_UDP_MIN_PAYLOAD 512

struct tern_stats_row;

/** What the transport tells the engine about a query. */
struct tern_query_ctx {
	const struct tern_view *view;      /**< borrowed for this loop turn */
	unsigned listen_index;             /**< which listen address it arrived on */
	enum tern_proto proto;
	const struct sockaddr_storage *src;
	unsigned worker_id;
	uint64_t now_ms;
	struct tern_arena *arena;          /**< reset by tern_process() */
	knot_mm_t *mm;                     /**< over @c arena */
	struct tern_stats_row *stats;      /**< NULL: do not count */
};

/**
 * Answer the query @p in (@p in_len bytes; the buffer may be modified) into @p out.
 * @return the answer length, or 0 when nothing must be sent.
 */
size_t tern_process(const struct tern_query_ctx *ctx, uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_cap);
