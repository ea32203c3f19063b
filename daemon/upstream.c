/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's io layer (see upstream.h): lib/engine/io.h implemented over the
 * worker's epoll loop. This file holds the parked requests, the table of upstream
 * queries (coalescing of identical questions, deadlines on one timerfd), per-upstream
 * health with probes, sending and receiving over the pooled UDP sockets
 * (upstream_udp.c), resuming parked requests through tern_process(), background
 * refreshes and the life cycle. Queries over TCP and DNS over TLS go through the
 * pooled, pipelined connections of upstream_tcp.c (TLS: upstream_tls.c); the
 * structures both files walk are in upstream_impl.h. Tables are preallocated at
 * worker start; only a pooled TCP connection is allocated, when it is opened. Indices
 * (uint32_t, UP_NONE for none) link parked requests and upstream queries, so nothing
 * dangles when a slot is reused.
 * Miss path only: the plain query path never enters this file.
 */
#include "daemon/upstream.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <libknot/libknot.h>

#include "daemon/tcp.h"
#include "daemon/upstream_impl.h"
#include "daemon/upstream_tls.h"
#include "daemon/upstream_udp.h"
#include "lib/core/clock.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/stats.h"
#include "lib/engine/io.h"
#include "lib/engine/process.h"

#define UP_BUCKETS     8192             /* coalescing hash (power of two) */
#define UP_TICK_MS     10               /* deadlines are rounded up to this */
#define UP_CTRL        64

enum client_kind {
	CLIENT_FREE = 0,
	CLIENT_UDP,        /* reply with sendmsg on the listen socket */
	CLIENT_TCP,        /* reply through tcp_reply() */
	CLIENT_REFRESH,    /* no client: a background refresh */
};

/* A parked request: the client's query and how to answer it. */
struct preq {
	uint32_t next;                  /* free list, or the next waiter of the same query */
	uint32_t uq;                    /* the upstream query waited on, UP_NONE if none */
	enum client_kind kind;
	enum tern_proto proto;
	bool queued;                    /* a refresh not yet run */
	unsigned listen_index;
	uint32_t tcp_slot, tcp_gen;
	socklen_t peer_len;
	uint16_t ctrl_len;
	uint16_t qlen;
	unsigned attempts;
	uint32_t tried;
	uint64_t start_ns;
	struct qkey key;                /* refreshes only (de-duplication) */
	struct sockaddr_storage peer;
	uint8_t ctrl[UP_CTRL];
	uint8_t query[UPSTREAM_QUERY_MAX];
};

/* ---- counters (a scrape reads them) -------------------------------------------- */

const char *const upstream_counter_names[UPSTREAM_COUNTER_COUNT] = {
	[UPSTREAM_SENT] = "sent",
	[UPSTREAM_COALESCED] = "coalesced",
	[UPSTREAM_REJECTED] = "rejected",
	[UPSTREAM_BAD_REPLIES] = "bad_replies",
	[UPSTREAM_TIMEOUTS] = "timeouts",
	[UPSTREAM_ERRORS] = "errors",
	[UPSTREAM_PROBES] = "probes",
	[UPSTREAM_PROBE_FAILURES] = "probe_failures",
	[UPSTREAM_TCP_REUSED] = "tcp_reused",
	[UPSTREAM_TCP_OPENED] = "tcp_opened",
	[UPSTREAM_REFRESHED] = "refreshed",
	[UPSTREAM_TLS_HANDSHAKES] = "tls_handshakes",
	[UPSTREAM_TLS_RESUMED] = "tls_resumed",
	[UPSTREAM_TLS_FAILURES] = "tls_failures",
};

void upstream_stats_read(const struct tern_io *io, uint64_t *sum)
{
	for (unsigned i = 0; i < UPSTREAM_COUNTER_COUNT; i++)
		sum[i] += atomic_load_explicit(&io->counters[i], memory_order_relaxed);
}

void upstream_conn_stats_read(const struct tern_io *io,
                              void (*fn)(const struct sockaddr_storage *addr,
                                         const uint64_t conn[2][3], void *ctx),
                              void *ctx)
{
	for (unsigned i = 0; i < UPSTREAM_HOSTS; i++) {
		const struct host *h = &io->hosts[i];
		if (!atomic_load_explicit(&h->published, memory_order_acquire))
			continue;
		uint64_t conn[2][3];
		for (unsigned k = 0; k < 2; k++) {
			for (unsigned p = 0; p < 3; p++)
				conn[k][p] = atomic_load_explicit(&h->conn[k][p], memory_order_relaxed);
		}
		fn(&h->addr, conn, ctx);
	}
}

/* ---- keys ---------------------------------------------------------------------- */

static void key_of_req(const struct tern_req *req, struct qkey *k)
{
	size_t len = knot_dname_size(req->qname);
	memcpy(k->name, req->qname, len);
	k->name_len = (uint16_t)len;
	k->qtype = req->qtype;
	k->qclass = req->qclass;
	k->flags = (req->dnssec_ok ? KEY_DO : 0) |
	           (knot_wire_get_cd(req->query->wire) ? KEY_CD : 0);
}

static bool key_equal(const struct qkey *a, const struct qkey *b)
{
	return a->name_len == b->name_len && a->qtype == b->qtype && a->qclass == b->qclass &&
	       a->flags == b->flags && memcmp(a->name, b->name, a->name_len) == 0;
}

static uint32_t fnv(uint32_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint32_t query_hash(const struct qkey *k, unsigned plugin_id,
                           const struct sockaddr_storage *addr, bool tcp)
{
	uint32_t h = fnv(2166136261u, k->name, k->name_len);
	uint32_t tail[4] = { k->qtype | (uint32_t)k->qclass << 16, k->flags, plugin_id, tcp };
	h = fnv(h, tail, sizeof(tail));
	return fnv(h, addr, upstream_addr_len(addr));
}

/* ---- timer --------------------------------------------------------------------- */

void upstream_timer_arm(struct tern_io *io, uint64_t at_ms)
{
	if (io->armed_ms != 0 && io->armed_ms <= at_ms)
		return;
	if (at_ms == 0)
		at_ms = 1;   /* in the past: fires at once (0 would disarm) */
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(at_ms / 1000),
		              .tv_nsec = (long)(at_ms % 1000) * 1000000 },
	};
	if (timerfd_settime(io->timer.fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
		tern_warn("worker %u, upstream timer failed (%s)", io->w->id, strerror(errno));
		return;
	}
	io->armed_ms = at_ms;
}

static uint64_t deadline_after(struct tern_io *io, uint32_t ms)
{
	uint64_t t = io->w->now_ms + ms;
	return (t + UP_TICK_MS - 1) / UP_TICK_MS * UP_TICK_MS;
}

/* ---- health -------------------------------------------------------------------- */

static uint32_t probe_ms(const struct host *h)
{
	return h->probe_ms ? h->probe_ms : UPSTREAM_PROBE_MS;
}

static struct host *host_get(struct tern_io *io, const struct sockaddr_storage *addr)
{
	struct host *free_slot = NULL;
	for (unsigned i = 0; i < UPSTREAM_HOSTS; i++) {
		struct host *h = &io->hosts[i];
		if (!h->used) {
			if (!free_slot)
				free_slot = h;
			continue;
		}
		if (tern_addr_equal(&h->addr, addr))
			return h;
	}
	if (!free_slot)
		return NULL;   /* more upstreams than tracked: no health for this one */
	/* Slots start zeroed (the io is calloc'd) and are never given back. */
	free_slot->used = true;
	free_slot->addr = *addr;
	free_slot->probe = UP_NONE;
	atomic_store_explicit(&free_slot->published, true, memory_order_release);
	return free_slot;
}

static void host_result(struct tern_io *io, struct host *h, bool replied)
{
	if (!h)
		return;
	if (replied) {
		h->fails = 0;
		h->down = false;
		return;
	}
	h->fails++;
	if (!h->down && h->max_fails > 0 && h->fails >= h->max_fails) {
		h->down = true;
		h->next_probe_ms = io->w->now_ms + probe_ms(h);
		upstream_timer_arm(io, h->next_probe_ms);
		char buf[80];
		tern_addr_str(&h->addr, buf, sizeof(buf));
		tern_warn("worker %u, upstream %s down after %u failures, probing", io->w->id,
		          buf, h->fails);
	}
}

bool tern_io_upstream_down(struct tern_req *req, const struct sockaddr_storage *addr,
                           unsigned max_fails)
{
	struct tern_io *io = req->io;
	if (!io)
		return false;
	struct host *h = host_get(io, addr);
	if (!h)
		return false;
	h->max_fails = max_fails;
	if (max_fails == 0)
		return false;
	if (!h->down && h->fails >= max_fails) {
		/* max_fails lowered since the failures were counted. */
		h->down = true;
		h->next_probe_ms = io->w->now_ms + probe_ms(h);
		upstream_timer_arm(io, h->next_probe_ms);
	}
	return h->down;
}

/* ---- parked requests ----------------------------------------------------------- */

static uint32_t preq_index(const struct tern_io *io, const struct preq *p)
{
	return (uint32_t)(p - io->preqs);
}

static struct preq *preq_alloc(struct tern_io *io)
{
	if (io->pfree == UP_NONE)
		return NULL;
	struct preq *p = &io->preqs[io->pfree];
	io->pfree = p->next;
	p->next = UP_NONE;
	p->uq = UP_NONE;
	p->queued = false;
	p->attempts = 0;
	p->tried = 0;
	return p;
}

static void refresh_forget(struct tern_io *io, uint32_t pi)
{
	for (unsigned i = 0; i < io->nrefresh; i++) {
		if (io->refresh[i] == pi) {
			io->refresh[i] = io->refresh[--io->nrefresh];
			return;
		}
	}
}

static void preq_free(struct tern_io *io, struct preq *p)
{
	uint32_t pi = preq_index(io, p);
	if (p->kind == CLIENT_REFRESH)
		refresh_forget(io, pi);
	p->kind = CLIENT_FREE;
	p->next = io->pfree;
	io->pfree = pi;
}

/* Capture the client of the transport's current query (worker.h: cur_ctx). */
static int preq_capture(struct tern_io *io, struct preq *p, const struct tern_req *req)
{
	struct worker *w = io->w;
	const struct tern_query_ctx *ctx = w->cur_ctx;
	if (!ctx)
		return TERN_EINVAL;
	p->listen_index = ctx->listen_index;
	p->proto = ctx->proto;
	p->peer = *ctx->src;
	if (ctx->proto == TERN_PROTO_UDP) {
		/* ctx->src is one of w->peer[]: its receive header has the packet info. */
		ptrdiff_t i = ctx->src - w->peer;
		if (i < 0 || i >= WORKER_BATCH)
			return TERN_EINVAL;
		const struct msghdr *rx = &w->rx[i].msg_hdr;
		p->kind = CLIENT_UDP;
		p->peer_len = rx->msg_namelen;
		p->ctrl_len = 0;
		if (w->udp[ctx->listen_index].pktinfo && rx->msg_controllen <= UP_CTRL) {
			memcpy(p->ctrl, rx->msg_control, rx->msg_controllen);
			p->ctrl_len = (uint16_t)rx->msg_controllen;
		}
	} else {
		if (!w->cur_conn)
			return TERN_EINVAL;
		p->kind = CLIENT_TCP;
		p->peer_len = upstream_addr_len(&p->peer);
		tcp_park(w, w->cur_conn, &p->tcp_slot, &p->tcp_gen);
	}
	memcpy(p->query, req->query->wire, req->query->size);
	p->qlen = (uint16_t)req->query->size;
	p->start_ns = ctx->start_ns ? ctx->start_ns : tern_mono_ns();
	return 0;
}

/* ---- upstream queries ---------------------------------------------------------- */

static void active_unlink(struct tern_io *io, struct uquery *uq)
{
	if (uq->aprev != UP_NONE)
		io->uqs[uq->aprev].anext = uq->anext;
	else
		io->active = uq->anext;
	if (uq->anext != UP_NONE)
		io->uqs[uq->anext].aprev = uq->aprev;
	uq->aprev = uq->anext = UP_NONE;
}

static void hash_unlink(struct tern_io *io, struct uquery *uq)
{
	if (uq->hash == UP_NONE)
		return;
	uint32_t ui = (uint32_t)(uq - io->uqs);
	uint32_t *pp = &io->buckets[uq->hash & (UP_BUCKETS - 1)];
	while (*pp != UP_NONE && *pp != ui)
		pp = &io->uqs[*pp].hnext;
	if (*pp == ui)
		*pp = uq->hnext;
	uq->hash = UP_NONE;
	uq->hnext = UP_NONE;
}

/* Take @p uq off its UDP socket (which closes with its last query if retired). */
static void sock_unlink(struct tern_io *io, struct uquery *uq)
{
	if (uq->sock == UP_NONE)
		return;
	struct upstream_udp_sock *s = upstream_udp_at(io->udp, uq->sock);
	if (uq->sprev != UP_NONE)
		io->uqs[uq->sprev].snext = uq->snext;
	else
		s->first = uq->snext;
	if (uq->snext != UP_NONE)
		io->uqs[uq->snext].sprev = uq->sprev;
	uq->sprev = uq->snext = UP_NONE;
	uq->sock = UP_NONE;
	upstream_udp_put(io->udp, s);
}

/* Take @p uq out of every index and free its slot. */
static void uq_release(struct tern_io *io, struct uquery *uq)
{
	hash_unlink(io, uq);
	active_unlink(io, uq);
	if (uq->conn)
		upstream_tcp_unlink(io, uq->conn, uq);
	uq->conn = NULL;
	sock_unlink(io, uq);
	if (uq->probe && uq->host && uq->host->probe == (uint32_t)(uq - io->uqs))
		uq->host->probe = UP_NONE;
	uq->used = false;
	uq->hnext = io->ufree;
	io->ufree = (uint32_t)(uq - io->uqs);
}

static struct uquery *uq_alloc(struct tern_io *io)
{
	if (io->ufree == UP_NONE)
		return NULL;
	uint32_t ui = io->ufree;
	struct uquery *uq = &io->uqs[ui];
	io->ufree = uq->hnext;
	*uq = (struct uquery) {
		.used = true,
		.hash = UP_NONE,
		.hnext = UP_NONE,
		.aprev = UP_NONE,
		.anext = io->active,
		.waiters = UP_NONE,
		.cnext = UP_NONE,
		.sock = UP_NONE,
		.sprev = UP_NONE,
		.snext = UP_NONE,
	};
	if (io->active != UP_NONE)
		io->uqs[io->active].aprev = ui;
	io->active = ui;
	return uq;
}

static struct uquery *uq_find(struct tern_io *io, uint32_t hash, const struct qkey *k,
                              unsigned plugin_id, const struct sockaddr_storage *addr,
                              bool tcp, const struct upstream_tls_profile *tls)
{
	for (uint32_t i = io->buckets[hash & (UP_BUCKETS - 1)]; i != UP_NONE;
	     i = io->uqs[i].hnext) {
		struct uquery *uq = &io->uqs[i];
		if (uq->hash == hash && !uq->failed && uq->plugin_id == plugin_id &&
		    uq->tcp == tcp && uq->tls == tls && tern_addr_equal(&uq->addr, addr) &&
		    key_equal(&uq->key, k))
			return uq;
	}
	return NULL;
}

/* ---- sending (UDP here; TCP and TLS: upstream_tcp.c) --------------------------- */

/*
 * The socket @p s reported an error (ICMP port unreachable, ...) on a path that must not
 * resume requests: the error belongs to the queries in flight on it, which fail at the
 * next timer event. The socket takes no new queries and closes with its last one.
 */
static void sock_fail_later(struct tern_io *io, struct upstream_udp_sock *s)
{
	upstream_udp_retire(io->udp, s);
	for (uint32_t i = s->first; i != UP_NONE; i = io->uqs[i].snext) {
		io->uqs[i].failed = true;
		io->uqs[i].deadline_ms = 0;
	}
	upstream_timer_arm(io, 1);
}

/*
 * Send on a pooled connected socket to the upstream (a socket of its own when the
 * upstream has no health slot). A send can report an error queued by an earlier
 * datagram on a shared socket: that fails the socket's queries, and this one goes out
 * on another socket.
 */
static int send_udp(struct tern_io *io, struct uquery *uq, const uint8_t *msg, size_t len)
{
	struct upstream_udp_pool *pool = uq->host ? &uq->host->udp : NULL;
	int ret = TERN_ENOSPC;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool opened = false;
		struct upstream_udp_sock *s = upstream_udp_pick(io->udp, pool, &uq->addr,
		                                                io->w->now_ms,
		                                                upstream_rng_next(io),
		                                                &opened, &ret);
		if (!s)
			return ret;
		if (send(s->it.fd, msg, len, MSG_DONTWAIT) == (ssize_t)len) {
			uint32_t ui = (uint32_t)(uq - io->uqs);
			uq->sock = upstream_udp_index(io->udp, s);
			uq->sprev = UP_NONE;
			uq->snext = s->first;
			if (s->first != UP_NONE)
				io->uqs[s->first].sprev = ui;
			s->first = ui;
			upstream_udp_take(io->udp, s);
			io->conn_reused = !opened;
			return 0;
		}
		ret = -errno;
		if (ret == -EAGAIN || ret == -EWOULDBLOCK || ret == -ENOBUFS || ret == -EINTR) {
			if (!pool)
				upstream_udp_retire(io->udp, s);   /* closes it: it has no query */
			return ret;
		}
		sock_fail_later(io, s);
	}
	return ret;
}

/*
 * Start a query for @p k to @p addr with the message @p msg (ID rewritten). Never
 * resumes anything. @return the query, or NULL with *err set.
 */
static struct uquery *uq_start(struct tern_io *io, const struct qkey *k, unsigned plugin_id,
                               const struct sockaddr_storage *addr, bool tcp,
                               struct upstream_tls_profile *tls, uint32_t timeout_ms,
                               uint8_t *msg, size_t len, int *err)
{
	struct uquery *uq = uq_alloc(io);
	if (!uq) {
		*err = TERN_ENOSPC;
		return NULL;
	}
	tcp = tcp || tls;
	uq->tcp = tcp;
	uq->plugin_id = plugin_id;
	uq->key = *k;
	uq->addr = *addr;
	uq->host = host_get(io, addr);
	uq->id = (uint16_t)upstream_rng_next(io);
	uq->deadline_ms = deadline_after(io, timeout_ms ? timeout_ms : 2000);
	uq->sent_ns = tern_mono_ns();
	knot_wire_set_id(msg, uq->id);
	int ret = tcp ? upstream_tcp_send(io, uq, msg, len, tls) : send_udp(io, uq, msg, len);
	if (ret != 0) {
		uq_release(io, uq);
		*err = ret;
		return NULL;
	}
	if (uq->host) {
		unsigned proto = tls ? 2 : tcp ? 1 : 0;
		_Atomic uint64_t *ctr = &uq->host->conn[io->conn_reused ? 0 : 1][proto];
		atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + 1,
		                      memory_order_relaxed);
		/* Probes use the transport (and TLS profile) last used. */
		uq->host->tcp = tcp;
		if (uq->host->tls != uq->tls) {
			upstream_tls_hold(uq->tls);
			upstream_tls_drop(io->tls, uq->host->tls);
			uq->host->tls = uq->tls;
		}
	}
	uq->hash = query_hash(k, plugin_id, addr, tcp);
	uint32_t *bucket = &io->buckets[uq->hash & (UP_BUCKETS - 1)];
	uq->hnext = *bucket;
	*bucket = (uint32_t)(uq - io->uqs);
	upstream_count(io, UPSTREAM_SENT);
	upstream_timer_arm(io, uq->deadline_ms);
	return uq;
}

int tern_io_forward(struct tern_req *req, unsigned plugin_id, const struct tern_upstream_req *u)
{
	struct tern_io *io = req->io;
	if (!io || !req->query || !req->qname)
		return TERN_EINVAL;
	struct preq *p = io->cur;
	bool fresh = p == NULL;
	if (!fresh && (io->cur_parked || p->uq != UP_NONE))
		return TERN_EEXIST;   /* one attempt at a time per request */
	if (fresh) {
		if (req->query->size > UPSTREAM_QUERY_MAX || !(p = preq_alloc(io))) {
			upstream_count(io, UPSTREAM_REJECTED);
			return TERN_ENOSPC;
		}
	}
	struct host *h = host_get(io, &u->addr);
	if (h) {
		h->probe_ms = u->probe_ms;
		h->expire_ms = u->expire_ms;
	}
	struct qkey k;
	key_of_req(req, &k);
	struct upstream_tls_profile *tls = NULL;
	if (u->tls && !(tls = upstream_tls_profile(io->tls, u->tls))) {
		upstream_count(io, UPSTREAM_REJECTED);
		if (fresh)
			preq_free(io, p);
		return TERN_ENOSPC;
	}
	bool tcp = u->tcp || tls;
	uint32_t hash = query_hash(&k, plugin_id, &u->addr, tcp);
	struct uquery *uq = uq_find(io, hash, &k, plugin_id, &u->addr, tcp, tls);
	if (uq) {
		upstream_count(io, UPSTREAM_COALESCED);
	} else {
		/* Send the client's query as it came, under a new ID. */
		uint8_t msg[UPSTREAM_QUERY_MAX];
		size_t len = req->query->size;
		if (len > sizeof(msg)) {
			upstream_count(io, UPSTREAM_REJECTED);
			if (fresh)
				preq_free(io, p);
			return TERN_ENOSPC;
		}
		memcpy(msg, req->query->wire, len);
		int err = 0;
		uq = uq_start(io, &k, plugin_id, &u->addr, tcp, tls, u->timeout_ms, msg, len, &err);
		if (!uq) {
			if (err == TERN_ENOSPC)
				upstream_count(io, UPSTREAM_REJECTED);
			if (fresh)
				preq_free(io, p);
			return err;
		}
	}
	if (fresh) {
		int ret = preq_capture(io, p, req);
		if (ret != 0) {
			preq_free(io, p);
			return ret;   /* the query stays in flight and completes unused */
		}
	}
	p->tried = u->tried;
	p->attempts++;
	p->uq = (uint32_t)(uq - io->uqs);
	p->next = uq->waiters;
	uq->waiters = preq_index(io, p);
	if (!fresh)
		io->cur_parked = true;
	return 0;
}

/* ---- resuming ------------------------------------------------------------------ */

static void deliver(struct tern_io *io, struct preq *p, size_t len)
{
	struct worker *w = io->w;
	if (p->kind == CLIENT_TCP) {
		if (tcp_reply(w, p->tcp_slot, p->tcp_gen, io->out, len) != 0 && len)
			tern_stats_event(w->stats, TERN_STATS_DROPPED);
		return;
	}
	if (p->kind != CLIENT_UDP || len == 0)
		return;
	int fd = p->listen_index < TERN_VIEW_MAX_LISTENS ? w->udp[p->listen_index].fd : -1;
	if (fd < 0) {
		tern_stats_event(w->stats, TERN_STATS_DROPPED);   /* the listener is gone */
		return;
	}
	uint8_t ctrl[UP_CTRL];
	memcpy(ctrl, p->ctrl, p->ctrl_len);
	struct iovec iov = { .iov_base = io->out + 2, .iov_len = len };
	struct msghdr msg = {
		.msg_name = &p->peer,
		.msg_namelen = p->peer_len,
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = p->ctrl_len ? ctrl : NULL,
		.msg_controllen = p->ctrl_len,
	};
	if (p->ctrl_len)
		msg.msg_controllen = worker_reply_control(&msg);
	if (!msg.msg_controllen)
		msg.msg_control = NULL;
	if (sendmsg(fd, &msg, MSG_DONTWAIT) < 0)
		tern_stats_event(w->stats, TERN_STATS_DROPPED);
}

/* Remove @p p from the waiters of its query (a plugin answered despite parking). */
static void waiter_unlink(struct tern_io *io, struct preq *p)
{
	if (p->uq == UP_NONE)
		return;
	uint32_t pi = preq_index(io, p);
	uint32_t *pp = &io->uqs[p->uq].waiters;
	while (*pp != UP_NONE && *pp != pi)
		pp = &io->preqs[*pp].next;
	if (*pp == pi)
		*pp = p->next;
	p->uq = UP_NONE;
	p->next = UP_NONE;
}

/* Run @p p's query through the chain again (resume or refresh) and answer its client. */
static void preq_run(struct tern_io *io, struct preq *p, const struct tern_resume *r)
{
	struct worker *w = io->w;
	bool parked = false;
	struct tern_query_ctx ctx = {
		.view = w->view,
		.listen_index = p->listen_index,
		.proto = p->proto,
		.src = &p->peer,
		.worker_id = w->id,
		.now_ms = w->now_ms,
		.arena = &w->arena,
		.mm = &w->mm,
		.stats = p->kind == CLIENT_REFRESH ? NULL : w->stats,
		.io = io,
		.resume = r,
		.refresh = p->kind == CLIENT_REFRESH,
		.start_ns = p->start_ns,
		.parked = &parked,
	};
	memcpy(io->qbuf, p->query, p->qlen);
	io->cur = p;
	io->cur_parked = false;
	size_t len = tern_process(&ctx, io->qbuf, p->qlen, io->out + 2, UP_MSG_MAX);
	bool waiting = parked && io->cur_parked;
	io->cur = NULL;
	io->cur_parked = false;
	if (waiting)
		return;
	waiter_unlink(io, p);
	if (parked && p->kind != CLIENT_REFRESH)
		tern_stats_event(w->stats, TERN_STATS_DROPPED);   /* parked, but sent nothing */
	deliver(io, p, len);
	preq_free(io, p);
}

void upstream_query_finish(struct tern_io *io, struct uquery *uq, enum tern_resume_status st,
                           const uint8_t *wire, uint16_t len)
{
	host_result(io, uq->host, st == TERN_RESUME_ANSWER);
	if (st == TERN_RESUME_TIMEOUT)
		upstream_count(io, UPSTREAM_TIMEOUTS);
	else if (st == TERN_RESUME_ERROR)
		upstream_count(io, UPSTREAM_ERRORS);
	if (uq->probe && st != TERN_RESUME_ANSWER)
		upstream_count(io, UPSTREAM_PROBE_FAILURES);
	struct tern_resume r = {
		.plugin_id = uq->plugin_id,
		.status = st,
		.wire = st == TERN_RESUME_ANSWER ? wire : NULL,
		.len = st == TERN_RESUME_ANSWER ? len : 0,
		.upstream = uq->addr,
		.over_tcp = uq->tcp,
		.rtt_us = (tern_mono_ns() - uq->sent_ns) / 1000,
	};
	uint32_t list = uq->waiters;
	uq->waiters = UP_NONE;
	uq_release(io, uq);
	while (list != UP_NONE) {
		struct preq *p = &io->preqs[list];
		list = p->next;
		p->next = UP_NONE;
		p->uq = UP_NONE;
		r.tried = p->tried;
		r.attempts = p->attempts;
		preq_run(io, p, &r);
	}
}

/* ---- replies (UDP here; TCP and TLS: upstream_tcp.c) --------------------------- */

bool upstream_reply_matches(const struct uquery *uq, const uint8_t *m, size_t len)
{
	if (len < KNOT_WIRE_HEADER_SIZE + 5 || !knot_wire_get_qr(m) ||
	    knot_wire_get_id(m) != uq->id || knot_wire_get_qdcount(m) != 1 ||
	    knot_wire_get_opcode(m) != KNOT_OPCODE_QUERY)
		return false;
	const uint8_t *name = m + KNOT_WIRE_HEADER_SIZE;
	int nlen = knot_dname_wire_check(name, m + len, NULL);
	if (nlen <= 0 || (size_t)nlen != uq->key.name_len ||
	    KNOT_WIRE_HEADER_SIZE + (size_t)nlen + 4 > len)
		return false;
	if (!knot_dname_is_case_equal(name, uq->key.name))
		return false;
	return knot_wire_read_u16(name + nlen) == uq->key.qtype &&
	       knot_wire_read_u16(name + nlen + 2) == uq->key.qclass;
}

/* The query on @p s that the datagram @p m answers: its ID, then its question. */
static struct uquery *sock_match(struct tern_io *io, const struct upstream_udp_sock *s,
                                 const uint8_t *m, size_t len)
{
	if (len < KNOT_WIRE_HEADER_SIZE)
		return NULL;
	uint16_t id = knot_wire_get_id(m);
	for (uint32_t i = s->first; i != UP_NONE; i = io->uqs[i].snext) {
		struct uquery *uq = &io->uqs[i];
		if (uq->id == id && upstream_reply_matches(uq, m, len))
			return uq;
	}
	return NULL;
}

/* Fail every query on @p s now (a socket error: ICMP refused, ...); @p s closes. */
static void sock_fail(struct tern_io *io, struct upstream_udp_sock *s)
{
	uint32_t gen = s->gen;
	upstream_udp_retire(io->udp, s);   /* re-runs send their retries elsewhere */
	while (s->gen == gen && s->first != UP_NONE)
		upstream_query_finish(io, &io->uqs[s->first], TERN_RESUME_ERROR, NULL, 0);
}

/*
 * Drain @p s: a recvmmsg batch at a time, each datagram matched to a query in flight on
 * the socket. Re-runs may retire and close @p s (its generation changes): then stop.
 */
static void udp_event(struct tern_io *io, struct upstream_udp_sock *s)
{
	uint32_t gen = s->gen;
	for (int round = 0; round < 8; round++) {
		int n = upstream_udp_recv(io->udp, s);
		if (n < 0) {
			sock_fail(io, s);
			return;
		}
		for (int i = 0; i < n; i++) {
			size_t len;
			const uint8_t *m = upstream_udp_datagram(io->udp, (unsigned)i, &len);
			struct uquery *uq = s->gen == gen ? sock_match(io, s, m, len) : NULL;
			if (!uq) {
				upstream_count(io, UPSTREAM_BAD_REPLIES);
				continue;
			}
			upstream_query_finish(io, uq, TERN_RESUME_ANSWER, m, (uint16_t)len);
		}
		if (n < UPSTREAM_UDP_BATCH || s->gen != gen)
			return;
	}
}

/* ---- timer: deadlines, deferred failures, probes ------------------------------- */

static void probe_send(struct tern_io *io, struct host *h)
{
	static const uint8_t probe_query[] = {
		0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,   /* header: no RD, one question */
		0, 0, 2, 0, 1,                         /* . NS IN */
	};
	struct qkey k = { .name = { 0 }, .name_len = 1, .qtype = KNOT_RRTYPE_NS,
	                  .qclass = KNOT_CLASS_IN };
	uint8_t msg[sizeof(probe_query)];
	memcpy(msg, probe_query, sizeof(msg));
	int err = 0;
	struct uquery *uq = uq_start(io, &k, UINT32_MAX, &h->addr, h->tcp, h->tls,
	                             UPSTREAM_PROBE_MS, msg, sizeof(msg), &err);
	if (!uq) {
		upstream_count(io, UPSTREAM_PROBE_FAILURES);
		return;
	}
	hash_unlink(io, uq);   /* probes are never joined */
	uq->probe = true;
	h->probe = (uint32_t)(uq - io->uqs);
	upstream_count(io, UPSTREAM_PROBES);
}

static void timer_event(struct tern_io *io)
{
	uint64_t ticks;
	if (read(io->timer.fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		tern_warn("worker %u, upstream timer read failed (%s)", io->w->id, strerror(errno));
	io->armed_ms = 0;
	uint64_t now = io->w->now_ms;

	/* Collect first: finishing re-runs requests, which may start new queries. */
	unsigned n = 0;
	for (uint32_t i = io->active; i != UP_NONE; i = io->uqs[i].anext) {
		if (io->uqs[i].deadline_ms <= now)
			io->scratch[n++] = i;
	}
	for (unsigned j = 0; j < n; j++)
		hash_unlink(io, &io->uqs[io->scratch[j]]);   /* nothing joins them now */
	for (unsigned j = 0; j < n; j++) {
		struct uquery *uq = &io->uqs[io->scratch[j]];
		if (!uq->used || uq->deadline_ms > now)
			continue;   /* finished already, or the slot was reused meanwhile */
		enum tern_resume_status st = uq->failed ? TERN_RESUME_ERROR : TERN_RESUME_TIMEOUT;
		upstream_query_finish(io, uq, st, NULL, 0);
	}
	/* Connections that failed inside tern_io_forward are closed now. */
	for (struct upconn *c = io->conns, *next; c; c = next) {
		next = c->next;
		if (c->dead) {
			c->dead = false;   /* upstream_tcp_kill sets it again and closes */
			upstream_tcp_kill(io, c);
		}
	}
	uint64_t next = UINT64_MAX;
	for (unsigned i = 0; i < UPSTREAM_HOSTS; i++) {
		struct host *h = &io->hosts[i];
		if (!h->used || !h->down)
			continue;
		if (h->next_probe_ms <= now && h->probe == UP_NONE) {
			h->next_probe_ms = now + probe_ms(h);
			probe_send(io, h);
		}
		if (h->next_probe_ms < next)
			next = h->next_probe_ms;
	}
	for (uint32_t i = io->active; i != UP_NONE; i = io->uqs[i].anext) {
		if (io->uqs[i].deadline_ms < next)
			next = io->uqs[i].deadline_ms;
	}
	if (next != UINT64_MAX)
		upstream_timer_arm(io, next <= now ? now + 1 : next);
}

void upstream_event(struct tern_io *io, struct ep_item *it, uint32_t events)
{
	switch (it->kind) {
	case EP_UP_UDP: {
		struct upstream_udp_sock *s = upstream_udp_of(it);
		if (s->it.fd >= 0)
			udp_event(io, s);
		break;
	}
	case EP_UP_TCP:
		upstream_tcp_event(io, (struct upconn *)it, events);
		break;
	case EP_UP_TIMER:
		timer_event(io);
		break;
	default:
		break;
	}
}

void upstream_tick(struct tern_io *io)
{
	uint64_t now = io->w->now_ms;
	for (unsigned i = 0; i < UPSTREAM_HOSTS; i++) {
		if (io->hosts[i].used)
			upstream_udp_expire(io->udp, &io->hosts[i].udp, now);
	}
	for (struct upconn *c = io->conns, *next; c; c = next) {
		next = c->next;
		if (c->dead || c->inflight != 0)
			continue;
		const struct host *h = host_get(io, &c->addr);
		uint64_t idle = h && h->expire_ms ? h->expire_ms : UPSTREAM_TCP_IDLE_MS;
		if (now - c->idle_since_ms >= idle)
			upstream_tcp_kill(io, c);
	}
}

/* ---- refresh ------------------------------------------------------------------- */

int tern_io_refresh(struct tern_req *req)
{
	struct tern_io *io = req->io;
	if (!io || !req->query || !req->qname)
		return TERN_EINVAL;
	struct qkey k;
	key_of_req(req, &k);
	for (unsigned i = 0; i < io->nrefresh; i++) {
		if (key_equal(&io->preqs[io->refresh[i]].key, &k))
			return 0;   /* already pending */
	}
	if (io->nrefresh >= UPSTREAM_REFRESHES || req->query->size > UPSTREAM_QUERY_MAX)
		return TERN_ENOSPC;
	unsigned li;
	if (io->cur)
		li = io->cur->listen_index;
	else if (io->w->cur_ctx)
		li = io->w->cur_ctx->listen_index;
	else
		return TERN_EINVAL;
	struct preq *p = preq_alloc(io);
	if (!p)
		return TERN_ENOSPC;
	p->kind = CLIENT_REFRESH;
	/* TCP: no truncation, so the answer hooks (a cache store) see the whole answer. */
	p->proto = TERN_PROTO_TCP;
	p->listen_index = li;
	p->queued = true;
	p->key = k;
	memset(&p->peer, 0, sizeof(p->peer));
	p->peer_len = 0;
	p->ctrl_len = 0;
	memcpy(p->query, req->query->wire, req->query->size);
	p->qlen = (uint16_t)req->query->size;
	p->start_ns = 0;
	io->refresh[io->nrefresh++] = preq_index(io, p);
	io->w->io_turn_work = true;
	return 0;
}

void upstream_turn_end(struct tern_io *io)
{
	io->w->io_turn_work = false;
	uint32_t run[UPSTREAM_REFRESHES];
	unsigned n = 0;
	for (unsigned i = 0; i < io->nrefresh; i++) {
		struct preq *p = &io->preqs[io->refresh[i]];
		if (p->queued) {
			p->queued = false;
			run[n++] = io->refresh[i];
		}
	}
	for (unsigned i = 0; i < n; i++) {
		upstream_count(io, UPSTREAM_REFRESHED);
		preq_run(io, &io->preqs[run[i]], NULL);
	}
	upstream_tcp_reap(io);
}

/* ---- life cycle ---------------------------------------------------------------- */

int upstream_new(struct worker *w, struct tern_io **out)
{
	struct tern_io *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->w = w;
	io->timer = (struct ep_item) { .kind = EP_UP_TIMER, .fd = -1 };
	io->preqs = calloc(UPSTREAM_PARKED, sizeof(io->preqs[0]));
	io->uqs = calloc(UPSTREAM_INFLIGHT, sizeof(io->uqs[0]));
	io->buckets = malloc(UP_BUCKETS * sizeof(io->buckets[0]));
	io->scratch = malloc(UPSTREAM_INFLIGHT * sizeof(io->scratch[0]));
	int ret = -ENOMEM;
	if (!io->preqs || !io->uqs || !io->buckets || !io->scratch)
		goto fail;
	for (uint32_t i = 0; i < UPSTREAM_PARKED; i++)
		io->preqs[i].next = i + 1 < UPSTREAM_PARKED ? i + 1 : UP_NONE;
	io->pfree = 0;
	for (uint32_t i = 0; i < UPSTREAM_INFLIGHT; i++) {
		io->uqs[i].sock = UP_NONE;
		io->uqs[i].hnext = i + 1 < UPSTREAM_INFLIGHT ? i + 1 : UP_NONE;
	}
	io->ufree = 0;
	io->active = UP_NONE;
	ret = upstream_tls_new(&io->tls);
	if (ret != 0)
		goto fail;
	ret = upstream_udp_new(w->epfd, &io->udp);
	if (ret != 0)
		goto fail;
	ret = -ENOMEM;
	for (uint32_t i = 0; i < UP_BUCKETS; i++)
		io->buckets[i] = UP_NONE;
	if (getrandom(&io->rng, sizeof(io->rng), 0) != sizeof(io->rng)) {
		ret = -errno;
		goto fail;
	}
	io->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (io->timer.fd < 0) {
		ret = -errno;
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &io->timer };
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, io->timer.fd, &ev) != 0) {
		ret = -errno;
		goto fail;
	}
	*out = io;
	return 0;
fail:
	upstream_free(io);
	return ret;
}

void upstream_free(struct tern_io *io)
{
	if (!io)
		return;
	upstream_udp_free(io->udp);
	upstream_tcp_close_all(io);
	for (unsigned i = 0; i < UPSTREAM_HOSTS; i++)
		upstream_tls_drop(io->tls, io->hosts[i].tls);
	upstream_tls_free(io->tls);
	upstream_tcp_reap(io);
	if (io->timer.fd >= 0)
		close(io->timer.fd);
	free(io->preqs);
	free(io->uqs);
	free(io->buckets);
	free(io->scratch);
	free(io);
}
