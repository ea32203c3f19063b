/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads. Each worker owns an epoll loop, its own SO_REUSEPORT UDP socket and
 * TCP listener per listen address, preallocated batch buffers (recvmmsg/sendmmsg), a
 * per-packet arena and a statistics row. It is a QSBR reader: offline while blocked
 * in epoll_wait, online while it handles a turn, quiescent at the end of each turn.
 * Its io layer (daemon/upstream.c) sends forwarded queries and resumes parked
 * requests from the same loop.
 * Thread: the struct is created and destroyed by main; the loop runs on the worker.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/core/arena.h"
#include "lib/engine/view.h"

#define WORKER_BATCH        64      /**< datagrams per recvmmsg/sendmmsg */
#define WORKER_UDP_RX       4096    /**< largest UDP query accepted */
#define WORKER_ARENA        (256 * 1024)

/** What an epoll event refers to (first member of every registered object). */
enum ep_kind {
	EP_UDP, EP_TCP_LISTEN, EP_TCP_CONN, EP_STOP, EP_TIMER,
	EP_UP_UDP,     /**< a pooled upstream UDP socket (upstream_udp.c) */
	EP_UP_TCP,     /**< a pooled upstream TCP connection (upstream_tcp.c) */
	EP_UP_TIMER,   /**< upstream deadlines and health probes (upstream.c) */
};

struct ep_item {
	enum ep_kind kind;
	int fd;
	unsigned listen_index;
	bool pktinfo;           /**< UDP on a wildcard address: reply from the query's address */
	/*
	 * UDP under load: out of epoll and read every turn (worker.c, "polled sockets"),
	 * with the count of turns that found it empty.
	 */
	bool polled;
	unsigned idle_turns;
};

struct tcp_state;
struct tcp_conn;
struct tern_stats_row;
struct tern_io;
struct tern_query_ctx;

struct worker {
	unsigned id;
	pthread_t thread;
	bool started;           /**< the thread runs: worker_stop joins it */
	int epfd;
	bool stop;              /**< set by main (atomic store), read by the loop */
	struct ep_item stop_item;
	struct ep_item timer_item;
	/* Sockets by listen index (fd -1: not open); reconciled with each new view. */
	struct ep_item udp[TERN_VIEW_MAX_LISTENS];
	struct ep_item tcp[TERN_VIEW_MAX_LISTENS];
	uint64_t sockets_generation;  /**< the view generation the sockets match */

	unsigned npolled;       /**< UDP sockets in polled mode */

	/* Per turn (valid between online and quiescent). */
	const struct tern_view *view;
	uint64_t now_ms;
	uint64_t epoch;         /**< publish epoch read before view (lib/engine/hot.h) */
	struct tern_hot *hot;   /**< this worker's hot answers; NULL: disabled */

	struct tern_stats_row *stats;
	struct tcp_state *tcp_state;
	struct tern_io *io;     /**< upstream queries and parked requests (upstream.c) */
	bool io_turn_work;      /**< io has work for the end of this turn (upstream_turn_end) */
	/*
	 * The transport's current query context, for tern_io_forward()/refresh() to find
	 * the client: set once per UDP batch (the client is ctx->src, an entry of peer[])
	 * and once per TCP read (cur_conn). Valid only inside tern_process().
	 */
	const struct tern_query_ctx *cur_ctx;
	struct tcp_conn *cur_conn;
	struct tern_arena arena;
	knot_mm_t mm;
	uint8_t *arena_buf;

	/* UDP batch buffers, preallocated. */
	struct mmsghdr rx[WORKER_BATCH], tx[WORKER_BATCH];
	struct iovec rx_iov[WORKER_BATCH], tx_iov[WORKER_BATCH];
	struct sockaddr_storage peer[WORKER_BATCH];
	uint8_t ctrl[WORKER_BATCH][64];
	unsigned rx_used;       /**< entries the last recvmmsg filled */
	bool rx_pktinfo;        /**< the headers are set up for a packet-info socket */
	uint8_t (*rx_buf)[WORKER_UDP_RX];
	uint8_t (*tx_buf)[WORKER_UDP_RX];
	uint8_t *tcp_out;       /**< 2 + 65535 bytes: one framed TCP answer */
};

/** TCP limits (RFC 7766 section 6.2: idle timeouts, connection caps). */
struct worker_tcp_limits {
	unsigned max_conns;        /**< per worker */
	unsigned max_per_client;   /**< per worker and client address */
	unsigned idle_ms;          /**< between complete messages */
};

/**
 * Create a worker: epoll, its sockets on every active listen address of @p view.
 * Later views are followed by the worker itself: at the first turn that sees a new
 * view it opens sockets for newly active addresses and closes the others.
 * @p hot_entries: size of the worker's hot answers (lib/engine/hot.h), 0: none.
 * @return 0 or a negative errno (bind failures are logged with the address).
 */
int worker_new(unsigned id, const struct tern_view *view, const struct worker_tcp_limits *lim,
               unsigned hot_entries, struct worker **out);
int worker_start(struct worker *w);
/** Ask to stop, join (if started), close and free. NULL is a no-op. */
void worker_stop(struct worker *w);

/**
 * Turn the packet info received with a query on a wildcard socket (@p msg's control)
 * into the source of the reply. @return the control length to send, 0 for none.
 */
size_t worker_reply_control(struct msghdr *msg);
