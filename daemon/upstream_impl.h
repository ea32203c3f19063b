/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the io layer's two halves share: upstream.c (parked requests, the table of
 * upstream queries with coalescing and deadlines, health and probes, UDP, resuming,
 * refreshes, life cycle) and upstream_tcp.c (the pooled, pipelined TCP and TLS
 * connections). The structures are here so both can walk them; every link between
 * them is an index into io->uqs (UP_NONE for none). Not a public API: only
 * daemon/upstream.c and daemon/upstream_tcp.c include it; the rest of the daemon uses
 * daemon/upstream.h.
 * Thread: the owning worker (the counters and host->conn are also read by a scrape).
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <libknot/libknot.h>

#include "daemon/upstream.h"
#include "daemon/upstream_tls.h"
#include "daemon/upstream_udp.h"
#include "daemon/worker.h"
#include "lib/engine/io.h"

#define UP_NONE        UINT32_MAX
#define UP_MSG_MAX     65535
#define UP_TCP_OUT     (64 * 1024)      /* queued queries per pooled connection */

/* Key of a question for coalescing and refresh de-duplication. */
struct qkey {
	uint8_t name[KNOT_DNAME_MAXLEN];   /* lowercase wire form */
	uint16_t name_len;
	uint16_t qtype, qclass;
	uint8_t flags;                     /* KEY_DO | KEY_CD */
};
#define KEY_DO 1
#define KEY_CD 2

/* Health of one upstream address, for this worker. */
struct host {
	struct sockaddr_storage addr;
	bool used, down, tcp;
	struct upstream_tls_profile *tls;   /* held: probes go over TLS with it */
	unsigned fails, max_fails;
	uint32_t probe_ms;              /* probe interval while down (forward's health_check) */
	uint32_t expire_ms;             /* idle pooled connections close (forward's expire) */
	uint64_t next_probe_ms;
	uint32_t probe;                 /* the probe in flight, UP_NONE if none */
	struct upstream_udp_pool udp;   /* pooled UDP sockets to addr */
	/* Connection cache outcome of each query sent, by transport (udp, tcp, tcp-tls):
	 * [0] hits, [1] misses. Written by the worker, read by a scrape (relaxed). */
	_Atomic uint64_t conn[2][3];
	_Atomic bool published;         /* addr is set (release): a scrape may read it */
};

struct preq;     /* a parked request: upstream.c's own */
struct upconn;

/* One query sent upstream, with every request waiting for its reply. */
struct uquery {
	bool used, tcp, probe, failed;
	uint16_t id;
	unsigned plugin_id;
	uint32_t hash;
	uint32_t hnext;                 /* coalescing chain, or the free list */
	uint32_t aprev, anext;          /* the active list (deadline scans) */
	uint32_t waiters;               /* first waiting preq */
	struct upconn *conn;            /* over TCP */
	struct upstream_tls_profile *tls;   /* over TLS: its connection's profile */
	uint32_t cnext;                 /* next query on the same connection */
	uint32_t sock;                  /* over UDP: its socket (upstream_udp.h), else UP_NONE */
	uint32_t sprev, snext;          /* the queries in flight on that socket */
	struct host *host;
	uint64_t deadline_ms;
	uint64_t sent_ns;
	struct qkey key;
	struct sockaddr_storage addr;
};

/* A pooled TCP connection to one upstream (RFC 7766 pipelining). */
struct upconn {
	struct ep_item it;              /* first */
	struct upconn *next;            /* the pool, or the list freed at turn end */
	struct sockaddr_storage addr;
	bool connected, dead;
	struct upstream_tls_profile *profile;  /* held; NULL: plain TCP (part of the pool key) */
	struct upstream_tls_link *tls;  /* NULL: plain TCP, or TLS could not start */
	bool tls_ready;                 /* handshake done */
	bool tls_broken;                /* TLS could not start: fails at the next timer event */
	size_t tls_pending;             /* length of a TLS send to repeat (GnuTLS's rule) */
	uint32_t first;                 /* queries in flight on it */
	unsigned inflight;
	uint64_t idle_since_ms;
	size_t out_len, out_off;
	uint32_t rx_len;
	uint8_t out[UP_TCP_OUT];
	uint8_t rx[2 + UP_MSG_MAX];
};

struct tern_io {
	struct worker *w;
	struct ep_item timer;
	uint64_t armed_ms;              /* when the timer fires, 0 = disarmed */
	uint64_t rng;

	struct preq *preqs;
	uint32_t pfree;
	struct uquery *uqs;
	uint32_t ufree;
	uint32_t active;                /* first active query */
	uint32_t *buckets;
	uint32_t *scratch;              /* UPSTREAM_INFLIGHT entries */
	struct host hosts[UPSTREAM_HOSTS];
	bool conn_reused;               /* the last send found a pooled connection or socket */
	struct upconn *conns;
	struct upconn *dead;
	struct upstream_tls *tls;
	struct upstream_udp *udp;
	uint32_t refresh[UPSTREAM_REFRESHES];
	unsigned nrefresh;

	/* The request being re-run (resume or refresh), and whether it parked again. */
	struct preq *cur;
	bool cur_parked;

	_Atomic uint64_t counters[UPSTREAM_COUNTER_COUNT];

	uint8_t qbuf[UPSTREAM_QUERY_MAX];   /* the query handed to tern_process */
	uint8_t reply[UP_MSG_MAX];          /* the upstream reply of a resume */
	uint8_t out[2 + UP_MSG_MAX];        /* the answer of a resume (2: TCP length) */
};

static inline void upstream_count(struct tern_io *io, enum upstream_counter c)
{
	uint64_t v = atomic_load_explicit(&io->counters[c], memory_order_relaxed);
	atomic_store_explicit(&io->counters[c], v + 1, memory_order_relaxed);
}

/* splitmix64: fast, and seeded from getrandom, so IDs are not guessable by a peer. */
static inline uint64_t upstream_rng_next(struct tern_io *io)
{
	uint64_t z = (io->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline socklen_t upstream_addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* ---- upstream.c ---------------------------------------------------------------- */

/** Make the io timer fire at @p at_ms (monotonic ms) or earlier; 0 or past: at once. */
void upstream_timer_arm(struct tern_io *io, uint64_t at_ms);
/** A reply to @p uq: QR, its ID, one question equal to ours (name case-insensitive). */
bool upstream_reply_matches(const struct uquery *uq, const uint8_t *m, size_t len);
/**
 * The query @p uq ended: update health, take it out of every index, then re-run each
 * waiter with the same result. @p wire (ANSWER) must not live in @p uq's connection.
 */
void upstream_query_finish(struct tern_io *io, struct uquery *uq, enum tern_resume_status st,
                           const uint8_t *wire, uint16_t len);

/* ---- upstream_tcp.c ------------------------------------------------------------ */

/**
 * Queue @p msg (@p len bytes; its ID is rewritten to one unique on the connection) for
 * @p uq on the pooled connection to uq->addr with TLS profile @p tls (NULL: plain TCP),
 * opening one if there is none. Sets io->conn_reused. A failed write never resumes
 * anything: the connection's queries, this one included, fail at the next timer event.
 * @return 0, TERN_ENOMEM (no connection), TERN_ENOSPC (its queue is full) or
 * TERN_EEXIST (no free ID on it).
 */
int upstream_tcp_send(struct tern_io *io, struct uquery *uq, uint8_t *msg, size_t len,
                      struct upstream_tls_profile *tls);
/** Take @p uq off the queries in flight on @p c (which turns idle with its last one). */
void upstream_tcp_unlink(struct tern_io *io, struct upconn *c, struct uquery *uq);
/** Fail every query on @p c now and close it (freed by upstream_tcp_reap). */
void upstream_tcp_kill(struct tern_io *io, struct upconn *c);
/** An epoll event on @p c: connect, TLS handshake, write the queue, read replies. */
void upstream_tcp_event(struct tern_io *io, struct upconn *c, uint32_t events);
/** Free the connections closed since the last call (end of a turn, and upstream_free). */
void upstream_tcp_reap(struct tern_io *io);
/** Close every pooled connection without resuming anything (upstream_free). */
void upstream_tcp_close_all(struct tern_io *io);
