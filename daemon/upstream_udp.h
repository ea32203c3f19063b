/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The io layer's UDP sockets to upstreams (daemon/upstream.c is the only user): per
 * worker, a pool of connected UDP sockets per upstream address, each on a port the
 * kernel picks at random when it connects, registered once with the worker's epoll and
 * shared by many queries (the io layer tells their replies apart by ID and question).
 * A query takes a pooled socket at random; the pool grows on demand up to
 * UPSTREAM_UDP_POOL_MAX sockets, and a socket is retired (no new queries; closed when
 * its last query ends) after UPSTREAM_UDP_USES queries or UPSTREAM_UDP_AGE_MS, so the
 * source ports keep rotating. The socket table and the receive batch are allocated once
 * per worker; opening and closing a socket are the only syscalls besides send/recvmmsg.
 * Thread: the owning worker.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/worker.h"

#define UPSTREAM_UDP_POOL_MAX  64      /**< sockets per upstream address and worker */
#define UPSTREAM_UDP_POOL_MIN  4       /**< the pool opens sockets until it has this many */
#define UPSTREAM_UDP_LOAD      8       /**< queries in flight on a socket before the pool grows */
#define UPSTREAM_UDP_USES      1000    /**< queries per socket before it is retired */
#define UPSTREAM_UDP_AGE_MS    60000   /**< age at which a socket is retired */
#define UPSTREAM_UDP_SOCKS     1024    /**< open sockets per worker, pooled or retiring */
#define UPSTREAM_UDP_BATCH     16      /**< datagrams per recvmmsg */
#define UPSTREAM_UDP_NONE      UINT32_MAX

struct upstream_udp_pool;

/** One connected UDP socket (first member: the epoll item, kind EP_UP_UDP). */
struct upstream_udp_sock {
	struct ep_item it;
	uint32_t gen;                   /**< bumped at close: later events see the change */
	uint32_t first;                 /**< the io layer's list of queries in flight on it */
	uint32_t inflight;              /**< queries in flight on it */
	uint32_t uses;                  /**< queries sent on it */
	uint64_t opened_ms;
	struct upstream_udp_pool *pool; /**< NULL: retired (or one query only), not chosen */
	uint16_t pos;                   /**< its index in pool->socks */
	uint32_t next_free;
};

/** The pooled sockets to one upstream address (zeroed storage is an empty pool). */
struct upstream_udp_pool {
	unsigned n;
	uint32_t socks[UPSTREAM_UDP_POOL_MAX];   /**< indices into the socket table */
};

struct upstream_udp;

/** Allocate the socket table and receive batch. @return 0 or -errno. */
int upstream_udp_new(int epfd, struct upstream_udp **out);
/** Close every socket and free. NULL is a no-op. */
void upstream_udp_free(struct upstream_udp *u);

/**
 * A socket for one query to @p addr, chosen from @p pool with @p rnd; a new one is
 * opened (connected to @p addr, added to epoll) while the pool is below its minimum, when
 * the chosen socket is busy or expired, and never beyond UPSTREAM_UDP_POOL_MAX. With
 * @p pool NULL the socket serves this query only. The caller sends on it and then calls
 * upstream_udp_take() (or nothing, if the send failed and it was not counted).
 * @param[out] opened  true when the socket was opened for this query
 * @return the socket, or NULL with *err set (-errno, or -ENOSPC: table full).
 */
struct upstream_udp_sock *upstream_udp_pick(struct upstream_udp *u, struct upstream_udp_pool *pool,
                                            const struct sockaddr_storage *addr, uint64_t now_ms,
                                            uint64_t rnd, bool *opened, int *err);
/** A query was sent on @p s: count the use (retiring it at UPSTREAM_UDP_USES). */
void upstream_udp_take(struct upstream_udp *u, struct upstream_udp_sock *s);
/** A query on @p s ended: a retired socket closes with its last query. */
void upstream_udp_put(struct upstream_udp *u, struct upstream_udp_sock *s);
/** Take @p s out of its pool: no new queries; it closes when its last query ends. */
void upstream_udp_retire(struct upstream_udp *u, struct upstream_udp_sock *s);
/** Retire the sockets of @p pool that reached UPSTREAM_UDP_AGE_MS (the 1 s tick). */
void upstream_udp_expire(struct upstream_udp *u, struct upstream_udp_pool *pool, uint64_t now_ms);

/** The socket an EP_UP_UDP epoll item belongs to. */
struct upstream_udp_sock *upstream_udp_of(struct ep_item *it);
/** The socket with index @p i in the table (from upstream_udp_index). */
struct upstream_udp_sock *upstream_udp_at(struct upstream_udp *u, uint32_t i);
uint32_t upstream_udp_index(const struct upstream_udp *u, const struct upstream_udp_sock *s);

/**
 * Read what @p s has queued (one recvmmsg, up to UPSTREAM_UDP_BATCH datagrams).
 * @return the count (0: nothing now), or -errno of a socket error (ICMP refused, ...).
 */
int upstream_udp_recv(struct upstream_udp *u, struct upstream_udp_sock *s);
/** Datagram @p i of the last upstream_udp_recv; valid until the next one. */
const uint8_t *upstream_udp_datagram(const struct upstream_udp *u, unsigned i, size_t *len);
