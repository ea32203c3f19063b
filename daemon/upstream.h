/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's io layer: the daemon's implementation of lib/engine/io.h. One per
 * worker, created by worker_new() and driven from the worker's epoll loop, so it needs
 * no locks. It keeps the parked requests (a preallocated table: the query copy, how
 * to reach the client, start time), the upstream queries in flight (on pooled connected
 * UDP sockets with rotating ports: daemon/upstream_udp.h, or a pooled pipelined TCP
 * connection per upstream: daemon/upstream_tcp.c, with TLS on it for DNS-over-TLS
 * upstreams: daemon/upstream_tls.h), their deadlines
 * (one timerfd), coalescing of identical questions, per-upstream health with ". IN NS"
 * probes, and the queue of background refreshes. When a reply (or timeout, or error)
 * arrives it re-runs every waiting request through tern_process() with ctx.resume and
 * sends the answer to the stored client.
 * Thread: the owning worker (upstream_stats_read: any).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "daemon/worker.h"

#define UPSTREAM_PARKED      4096    /**< parked requests per worker */
#define UPSTREAM_INFLIGHT    4096    /**< upstream queries in flight per worker */
#define UPSTREAM_QUERY_MAX   512     /**< largest client query that can park */
#define UPSTREAM_HOSTS       64      /**< upstream addresses tracked per worker */
#define UPSTREAM_REFRESHES   256     /**< background refreshes pending per worker */
#define UPSTREAM_TCP_IDLE_MS 10000   /**< pooled TCP/TLS connections close when idle this long */
#define UPSTREAM_PROBE_MS    500     /**< health probe interval of a down upstream */

/** Per-worker counters (relaxed atomics; summed by upstream_stats_read). */
enum upstream_counter {
	UPSTREAM_SENT = 0,         /**< queries sent upstream */
	UPSTREAM_COALESCED,        /**< requests that joined a query already in flight */
	UPSTREAM_REJECTED,         /**< tern_io_forward refused: table full, query too big */
	UPSTREAM_BAD_REPLIES,      /**< replies dropped: wrong ID or question, garbage */
	UPSTREAM_TIMEOUTS,         /**< attempts that timed out */
	UPSTREAM_ERRORS,           /**< attempts that failed (refused, reset, unreachable) */
	UPSTREAM_PROBES,           /**< health probes sent */
	UPSTREAM_PROBE_FAILURES,   /**< health probes without reply */
	UPSTREAM_TCP_REUSED,       /**< TCP queries sent on a pooled connection */
	UPSTREAM_TCP_OPENED,       /**< pooled TCP connections opened */
	UPSTREAM_REFRESHED,        /**< background refreshes run */
	UPSTREAM_TLS_HANDSHAKES,   /**< TLS handshakes completed (DNS over TLS) */
	UPSTREAM_TLS_RESUMED,      /**< of those, resumed sessions */
	UPSTREAM_TLS_FAILURES,     /**< TLS connections that failed: handshake, certificate */
	UPSTREAM_COUNTER_COUNT,
};

/** Create @p w's io layer (registers its timer on w->epfd). @return 0 or -errno. */
int upstream_new(struct worker *w, struct tern_io **out);
/** Close every socket and free every parked request. NULL is a no-op. */
void upstream_free(struct tern_io *io);

/** An epoll event for one of the io layer's items (EP_UP_*). */
void upstream_event(struct tern_io *io, struct ep_item *it, uint32_t events);
/** The worker's 1 s tick: expire idle pooled TCP connections. */
void upstream_tick(struct tern_io *io);
/**
 * End of a worker turn (online, with a view), when w->io_turn_work is set: run the
 * queued refreshes, free connections closed during the turn.
 */
void upstream_turn_end(struct tern_io *io);

/** Add @p io's counters into @p sum (UPSTREAM_COUNTER_COUNT entries). Thread: any. */
void upstream_stats_read(const struct tern_io *io, uint64_t *sum);
/**
 * Call @p fn for every upstream address this worker has used, with its connection
 * cache counts by transport (udp, tcp, tcp-tls): conn[0] hits, conn[1] misses.
 * Thread: any (relaxed reads of the worker's counters).
 */
void upstream_conn_stats_read(const struct tern_io *io,
                              void (*fn)(const struct sockaddr_storage *addr,
                                         const uint64_t conn[2][3], void *ctx),
                              void *ctx);
/** The counters' names, for metrics ("tern_upstream_<name>_total"). */
extern const char *const upstream_counter_names[UPSTREAM_COUNTER_COUNT];
