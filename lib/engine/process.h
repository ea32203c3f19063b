/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's entry point: one query in, one answer (or nothing) out. Validates the
 * packet (FORMERR, NOTIMP, BADVERS, REFUSED, drops), routes it to a server block,
 * runs the block's plugin chain, applies truncation and EDNS, and counts it. Used by
 * the daemon's UDP and TCP paths, by the daemon's io layer to re-run parked requests
 * (lib/engine/io.h), and directly by tests.
 *
 * Counting: a client query is counted once as a request and once as a response, even
 * when it parks and is re-run (the re-run's ctx carries resume and the first run's
 * start time, so the duration covers the wait). A parked request is neither answered
 * nor dropped. A background refresh (ctx.refresh) is not a client query: its caller
 * passes no stats row, and tern_process() returns 0 (its answer hooks still run).
 * Hot path: no malloc, no locks, no syscalls (clock reads go through the vDSO).
 */
#pragma once

#include <stdbool.h>
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
struct tern_io;
struct tern_resume;

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
	/**
	 * The worker's hot answers (lib/engine/hot.h), NULL: none. @c epoch is
	 * tern_rcu_epoch_read() from before @c view (and any other root) was read.
	 */
	struct tern_hot *hot;
	uint64_t epoch;

	/* Asynchronous work (lib/engine/io.h); all zero for a plain query. */
	struct tern_io *io;                /**< the worker's services, copied into req->io */
	const struct tern_resume *resume;  /**< re-run of a parked request (borrowed) */
	bool refresh;                      /**< background refresh (stats NULL): returns 0 */
	/**
	 * When the query arrived (CLOCK_MONOTONIC ns; 0: when tern_process() starts): the
	 * receive time of its batch, or for a re-run when the first run began. The
	 * duration metrics count from it.
	 */
	uint64_t start_ns;
	bool *parked;                      /**< out, optional: set true when the chain parked */
};

/**
 * Answer the query @p in (@p in_len bytes; the buffer may be modified) into @p out.
 *
 * A plugin that returns TERN_PARK has handed the request to ctx->io: nothing is sent
 * now, *ctx->parked is set, and the io layer re-runs the query later with ctx->resume.
 *
 * Raw answers: a plugin may write a complete message without OPT into
 * req->answer->wire and set req->raw_len (lib/engine/req.h). Its question must be the
 * query's, lowercased (same length). When raw_len plus the OPT record exceeds
 * req->answer->max_size the answer is cut to header and question with TC, so a plugin
 * holding a larger message may write only its header and question and still set
 * raw_len to the full size.
 * @return the answer length, or 0 when nothing must be sent.
 */
size_t tern_process(const struct tern_query_ctx *ctx, uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_cap);

/**
 * Finish a raw answer (req->raw_len, see req.h) in place: the query's ID, RD and CD, QR,
 * the question with the client's case, truncation to the question with TC when it does
 * not fit, and the OPT record. The engine calls it before the answer hooks; a hook
 * that puts a raw answer in place late (the cache's serve-stale "verify") calls it too.
 * @return 0, or -1 when the message is unusable (then answer SERVFAIL).
 */
int tern_process_finish_raw(struct tern_req *req);
