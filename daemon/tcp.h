/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS over TCP (RFC 7766) inside a worker's loop: accept, read length-framed messages,
 * answer each as soon as it is complete (pipelining), write with back-pressure, close
 * idle or too-slow connections, and cap connections per worker and per client so a
 * slowloris client cannot starve others.
 *
 * A query that parks (forward, lib/engine/io.h) is answered later through
 * tcp_reply(), by connection slot and generation: a connection closed meanwhile just
 * loses the answer. A connection with parked queries is neither idle-expired nor
 * closed after the client's half-close until they are answered.
 * Thread: the owning worker.
 */
#pragma once

#include <stdint.h>

#include "daemon/worker.h"

struct tcp_state *tcp_state_new(const struct worker_tcp_limits *lim);
void tcp_state_free(struct tcp_state *ts);

/** The listener @p it is readable: accept what is pending. */
void tcp_accept(struct worker *w, struct ep_item *it);
/** A connection (its ep_item) has @p events. */
void tcp_conn_event(struct worker *w, struct ep_item *it, uint32_t events);
/** Close connections past their deadline. */
void tcp_sweep(struct worker *w);

/**
 * The query of connection @p c (the worker's current TCP query) parks: keep the
 * connection for its answer. @p slot and @p gen name it for tcp_reply().
 */
void tcp_park(struct worker *w, struct tcp_conn *c, uint32_t *slot, uint32_t *gen);
/**
 * Send the answer to a parked query: @p msg holds 2 free bytes for the length
 * prefix, then @p len bytes of answer. @p len 0 drops the query (no answer).
 * @return 0, or -ENOENT when the connection is gone, -EIO when it failed.
 */
int tcp_reply(struct worker *w, uint32_t slot, uint32_t gen, uint8_t *msg, size_t len);
