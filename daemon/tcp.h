/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS over TCP (RFC 7766) inside a worker's loop: accept, read length-framed messages,
 * answer each as soon as it is complete (pipelining), write with back-pressure, close
 * idle or too-slow connections, and cap connections per worker and per client so a
 * slowloris client cannot starve others.
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
