/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS over TCP inside a worker (see tcp.h). Connection memory is allocated at accept
 * (not per query); answers are written straight from the worker's scratch buffer and
 * only what the kernel does not take at once is kept in a per-connection queue.
 */
#include "daemon/tcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include "lib/core/log.h"
#include "lib/core/stats.h"
#include "lib/engine/process.h"

#define TCP_MSG_MAX     65535
#define TCP_OUT_MAX     (1 << 20)   /* a client that does not read is dropped past this */

struct tcp_conn {
	struct ep_item it;              /* first: epoll data points here */
	struct tcp_conn *prev, *next;
	struct sockaddr_storage peer;
	uint64_t deadline_ms;           /* moved only by complete messages (slowloris) */
	bool closing;                   /* peer closed its side: close once flushed */
	bool failed;                    /* shut down by a reply or sweep: close at next event */
	uint32_t slot, gen;             /* identity for parked queries (tcp_reply) */
	unsigned parked;                /* queries waiting on upstream io */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	uint32_t rx_len;
	uint8_t rx[2 + TCP_MSG_MAX];
};

struct tcp_state {
	struct worker_tcp_limits lim;
	struct tcp_conn *head;
	unsigned nconns;
	/* Connection slots (max_conns) and their generations, for tcp_reply(). */
	struct tcp_conn **slots;
	uint32_t *gens;
	uint32_t *free_slots;
	unsigned nfree;
};

struct tcp_state *tcp_state_new(const struct worker_tcp_limits *lim)
{
	struct tcp_state *ts = calloc(1, sizeof(*ts));
	if (!ts)
		return NULL;
	ts->lim = *lim;
	unsigned n = lim->max_conns ? lim->max_conns : 1;
	ts->slots = calloc(n, sizeof(ts->slots[0]));
	ts->gens = calloc(n, sizeof(ts->gens[0]));
	ts->free_slots = calloc(n, sizeof(ts->free_slots[0]));
	if (!ts->slots || !ts->gens || !ts->free_slots) {
		tcp_state_free(ts);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++)
		ts->free_slots[i] = n - 1 - i;
	ts->nfree = n;
	return ts;
}

static void conn_close(struct worker *w, struct tcp_conn *c)
{
	struct tcp_state *ts = w->tcp_state;
	close(c->it.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ts->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ts->nconns--;
	ts->slots[c->slot] = NULL;
	ts->gens[c->slot]++;
	ts->free_slots[ts->nfree++] = c->slot;
	tern_stats_tcp_open(w->stats, -1);
	free(c->out);
	free(c);
}

void tcp_state_free(struct tcp_state *ts)
{
	if (!ts)
		return;
	while (ts->head) {
		struct tcp_conn *c = ts->head;
		ts->head = c->next;
		close(c->it.fd);
		free(c->out);
		free(c);
	}
	free(ts->slots);
	free(ts->gens);
	free(ts->free_slots);
	free(ts);
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static bool over_client_cap(const struct tcp_state *ts, const struct sockaddr_storage *peer)
{
	unsigned n = 0;
	for (const struct tcp_conn *c = ts->head; c; c = c->next) {
		if (same_host(&c->peer, peer) && ++n >= ts->lim.max_per_client)
			return true;
	}
	return false;
}

void tcp_accept(struct worker *w, struct ep_item *it)
{
	struct tcp_state *ts = w->tcp_state;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(it->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;   /* EAGAIN, or an aborted connection: nothing to do */
		if (ts->nconns >= ts->lim.max_conns || ts->nfree == 0 ||
		    over_client_cap(ts, &peer)) {
			close(fd);
			tern_stats_event(w->stats, TERN_STATS_TCP_REFUSED);
			continue;
		}
		struct tcp_conn *c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			tern_stats_event(w->stats, TERN_STATS_TCP_REFUSED);
			continue;
		}
		memset(c, 0, offsetof(struct tcp_conn, rx));
		c->it = (struct ep_item) { .kind = EP_TCP_CONN, .fd = fd,
		                           .listen_index = it->listen_index };
		c->peer = peer;
		c->deadline_ms = w->now_ms + ts->lim.idle_ms;
		int on = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->it };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->slot = ts->free_slots[--ts->nfree];
		c->gen = ts->gens[c->slot];
		ts->slots[c->slot] = c;
		c->next = ts->head;
		if (ts->head)
			ts->head->prev = c;
		ts->head = c;
		ts->nconns++;
		tern_stats_event(w->stats, TERN_STATS_TCP_ACCEPTED);
		tern_stats_tcp_open(w->stats, +1);
	}
}

static int want_output(struct worker *w, struct tcp_conn *c, bool on)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
		.data.ptr = &c->it,
	};
	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->it.fd, &ev);
}

/* Send now what the kernel takes; queue the rest. @return 0 or -1 to close. */
static int conn_send(struct worker *w, struct tcp_conn *c, const uint8_t *data, size_t len)
{
	if (c->out_len == c->out_off) {
		ssize_t n = send(c->it.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
		c->out_len = c->out_off = 0;
	}
	if (c->out_len + len > TCP_OUT_MAX)
		return -1;
	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		uint8_t *out = realloc(c->out, cap);
		if (!out)
			return -1;
		c->out = out;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	bool was_idle = c->out_len == c->out_off;
	c->out_len += len;
	return was_idle ? want_output(w, c, true) : 0;
}

static int conn_flush(struct worker *w, struct tcp_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->it.fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		c->out_off += (size_t)n;
	}
	c->out_len = c->out_off = 0;
	return want_output(w, c, false);
}

/* Answer every complete message in the receive buffer. @return 0 or -1 to close. */
static int conn_process(struct worker *w, struct tcp_conn *c)
{
	struct tern_query_ctx ctx = {
		.view = w->view,
		.listen_index = c->it.listen_index,
		.proto = TERN_PROTO_TCP,
		.src = &c->peer,
		.worker_id = w->id,
		.now_ms = w->now_ms,
		.arena = &w->arena,
		.mm = &w->mm,
		.stats = w->stats,
		.io = w->io,
		.hot = w->hot,
		.epoch = w->epoch,
	};
	w->cur_ctx = &ctx;
	w->cur_conn = c;
	uint32_t off = 0;
	while (c->rx_len - off >= 2) {
		uint32_t mlen = ((uint32_t)c->rx[off] << 8) | c->rx[off + 1];
		if (mlen == 0)
			return -1;
		if (c->rx_len - off < 2 + mlen)
			break;
		size_t len = tern_process(&ctx, c->rx + off + 2, mlen, w->tcp_out + 2, TCP_MSG_MAX);
		off += 2 + mlen;
		c->deadline_ms = w->now_ms + w->tcp_state->lim.idle_ms;
		if (len == 0)
			continue;
		w->tcp_out[0] = (uint8_t)(len >> 8);
		w->tcp_out[1] = (uint8_t)len;
		if (conn_send(w, c, w->tcp_out, len + 2) != 0)
			return -1;
	}
	if (off > 0) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
	return 0;
}

void tcp_conn_event(struct worker *w, struct ep_item *it, uint32_t events)
{
	struct tcp_conn *c = (struct tcp_conn *)it;
	if (c->failed || (events & EPOLLERR))
		goto close;
	if ((events & EPOLLOUT) && conn_flush(w, c) != 0)
		goto close;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		for (;;) {
			ssize_t n = recv(c->it.fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, 0);
			if (n > 0) {
				c->rx_len += (uint32_t)n;
				if (conn_process(w, c) != 0)
					goto close;
				continue;
			}
			if (n == 0) {
				c->closing = true;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			goto close;
		}
	}
	if (c->closing) {
		bool flushed = c->out_off == c->out_len;
		if (flushed && c->parked == 0)
			goto close;
		/* Half-closed with answers queued or parked: wait for writability only. */
		struct epoll_event ev = { .events = flushed ? 0 : EPOLLOUT, .data.ptr = &c->it };
		if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->it.fd, &ev) != 0)
			goto close;
	}
	return;
close:
	conn_close(w, c);
}

/*
 * Close from outside the connection's own event (the sweep, a parked answer): an
 * event for it may still be pending in this turn's batch, so shut it down and let
 * that event (EPOLLHUP is always reported) free it.
 */
static void conn_fail(struct tcp_conn *c)
{
	c->failed = true;
	shutdown(c->it.fd, SHUT_RDWR);
}

void tcp_sweep(struct worker *w)
{
	for (struct tcp_conn *c = w->tcp_state->head; c; c = c->next) {
		if (!c->failed && c->parked == 0 && w->now_ms > c->deadline_ms) {
			tern_stats_event(w->stats, TERN_STATS_TCP_TIMEOUT);
			conn_fail(c);
		}
	}
}

void tcp_park(struct worker *w, struct tcp_conn *c, uint32_t *slot, uint32_t *gen)
{
	(void)w;
	c->parked++;
	*slot = c->slot;
	*gen = c->gen;
}

int tcp_reply(struct worker *w, uint32_t slot, uint32_t gen, uint8_t *msg, size_t len)
{
	struct tcp_state *ts = w->tcp_state;
	if (slot >= ts->lim.max_conns || ts->gens[slot] != gen || !ts->slots[slot])
		return -ENOENT;
	struct tcp_conn *c = ts->slots[slot];
	if (c->parked > 0)
		c->parked--;
	if (c->failed)
		return -EIO;
	c->deadline_ms = w->now_ms + ts->lim.idle_ms;
	if (len > 0) {
		msg[0] = (uint8_t)(len >> 8);
		msg[1] = (uint8_t)len;
		if (conn_send(w, c, msg, len + 2) != 0) {
			conn_fail(c);
			return -EIO;
		}
	}
	if (c->closing && c->parked == 0 && c->out_off == c->out_len)
		conn_fail(c);   /* the client half-closed and has every answer now */
	return 0;
}
