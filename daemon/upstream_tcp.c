/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The io layer's pooled TCP connections to upstreams (RFC 7766 pipelining), with TLS
 * on them for DNS-over-TLS upstreams (RFC 7858): per worker, one connection per
 * upstream address and TLS profile (the profile is part of the pool key), opened on
 * the first query that needs it, kept while queries use it, and closed by the worker's
 * tick after the upstream's idle time (forward's expire). Queries are framed into the
 * connection's send queue with an ID unique on it, written as the socket (and, for
 * TLS, the handshake: upstream_tls.c) allows, and replies are matched to the queries
 * in flight on it by ID and question, in any order. A connection that fails inside
 * tern_io_forward() is only marked (its queries fail at the next timer event); one that
 * fails from its own epoll event is closed at once and its queries resumed with an
 * error. A closed connection stays allocated, marked dead, until the end of the turn
 * (upstream_tcp_reap): an event of the same epoll batch may still name it. upstream.c
 * owns the query table, the timer and resuming (daemon/upstream_impl.h is the seam).
 * Miss path only. Thread: the owning worker.
 */
#include "daemon/upstream_impl.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <libknot/libknot.h>

#include "daemon/upstream_tls.h"
#include "lib/core/errcode.h"
#include "lib/core/parse.h"

/* ---- the pool: open, reuse, write ---------------------------------------------- */

void upstream_tcp_unlink(struct tern_io *io, struct upconn *c, struct uquery *uq)
{
	uint32_t ui = (uint32_t)(uq - io->uqs);
	uint32_t *pp = &c->first;
	while (*pp != UP_NONE && *pp != ui)
		pp = &io->uqs[*pp].cnext;
	if (*pp == ui) {
		*pp = uq->cnext;
		c->inflight--;
		if (c->inflight == 0)
			c->idle_since_ms = io->w->now_ms;
	}
	uq->cnext = UP_NONE;
}

static int conn_watch(struct tern_io *io, struct upconn *c)
{
	bool out;
	if (!c->connected)
		out = true;
	else if (c->profile && !c->tls_ready)
		out = c->tls && upstream_tls_wants_write(c->tls);   /* the handshake's next step */
	else
		out = c->out_off < c->out_len;
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0),
		.data.ptr = &c->it,
	};
	return epoll_ctl(io->w->epfd, EPOLL_CTL_MOD, c->it.fd, &ev) == 0 ? 0 : -errno;
}

static struct upconn *conn_open(struct tern_io *io, const struct sockaddr_storage *addr,
                                struct upstream_tls_profile *profile)
{
	struct upconn *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	memset(c, 0, offsetof(struct upconn, out));
	c->first = UP_NONE;
	c->addr = *addr;
	c->idle_since_ms = io->w->now_ms;
	c->it = (struct ep_item) { .kind = EP_UP_TCP, .fd = -1 };
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	c->it.fd = fd;
	int on = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (const struct sockaddr *)addr, upstream_addr_len(addr)) == 0)
		c->connected = true;
	else if (errno != EINPROGRESS)
		goto fail;
	if (profile) {
		/* A TLS start failure (bad credentials) fails this connection's queries. */
		if (upstream_tls_link_new(io->tls, profile, fd, addr, &c->tls) == 0)
			profile = upstream_tls_link_profile(c->tls);
		else
			c->tls_broken = true;
		c->profile = profile;
		upstream_tls_hold(profile);
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLOUT, .data.ptr = &c->it };
	if (epoll_ctl(io->w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		goto fail;
	c->next = io->conns;
	io->conns = c;
	upstream_count(io, UPSTREAM_TCP_OPENED);
	return c;
fail:
	upstream_tls_link_free(io->tls, c->tls);
	upstream_tls_drop(io->tls, c->profile);
	if (c->it.fd >= 0)
		close(c->it.fd);
	free(c);
	return NULL;
}

static struct upconn *conn_get(struct tern_io *io, const struct sockaddr_storage *addr,
                               struct upstream_tls_profile *profile)
{
	for (struct upconn *c = io->conns; c; c = c->next) {
		if (!c->dead && c->profile == profile && tern_addr_equal(&c->addr, addr)) {
			upstream_count(io, UPSTREAM_TCP_REUSED);
			io->conn_reused = true;
			return c;
		}
	}
	io->conn_reused = false;
	return conn_open(io, addr, profile);
}

/* The TLS side of conn_flush: records of what is queued, once the handshake is done. */
static int conn_flush_tls(struct tern_io *io, struct upconn *c)
{
	while (c->tls_ready && c->out_off < c->out_len) {
		size_t len = c->tls_pending ? c->tls_pending : c->out_len - c->out_off;
		ssize_t n = upstream_tls_send(c->tls, c->out + c->out_off, len);
		if (n == -EAGAIN) {
			c->tls_pending = len;
			break;
		}
		if (n < 0)
			return -1;
		c->tls_pending = 0;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return conn_watch(io, c) == 0 ? 0 : -1;
}

/* Write what the kernel takes. @return 0, or -1 when the connection failed. */
static int conn_flush(struct tern_io *io, struct upconn *c)
{
	if (c->profile)
		return conn_flush_tls(io, c);   /* never plain text to a TLS upstream */
	while (c->connected && c->out_off < c->out_len) {
		ssize_t n = send(c->it.fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return conn_watch(io, c) == 0 ? 0 : -1;
}

/*
 * Mark @p c failed from a path that must not resume requests (inside
 * tern_io_forward): its queries fail at the next timer event, and it is closed then.
 */
static void conn_fail_later(struct tern_io *io, struct upconn *c)
{
	c->dead = true;
	for (uint32_t i = c->first; i != UP_NONE; i = io->uqs[i].cnext) {
		io->uqs[i].failed = true;
		io->uqs[i].deadline_ms = 0;
	}
	upstream_timer_arm(io, 1);
}

/* ---- sending ------------------------------------------------------------------- */

static bool conn_has_id(const struct tern_io *io, const struct upconn *c, uint16_t id)
{
	for (uint32_t i = c->first; i != UP_NONE; i = io->uqs[i].cnext) {
		if (io->uqs[i].id == id)
			return true;
	}
	return false;
}

int upstream_tcp_send(struct tern_io *io, struct uquery *uq, uint8_t *msg, size_t len,
                      struct upstream_tls_profile *tls)
{
	struct upconn *c = conn_get(io, &uq->addr, tls);
	if (!c)
		return TERN_ENOMEM;
	if (c->out_len + 2 + len > UP_TCP_OUT)
		return TERN_ENOSPC;
	/* IDs are unique per connection: replies come in any order. */
	for (int tries = 0; tries < 16 && conn_has_id(io, c, uq->id); tries++)
		uq->id = (uint16_t)upstream_rng_next(io);
	if (conn_has_id(io, c, uq->id))
		return TERN_EEXIST;
	knot_wire_set_id(msg, uq->id);
	c->out[c->out_len] = (uint8_t)(len >> 8);
	c->out[c->out_len + 1] = (uint8_t)len;
	memcpy(c->out + c->out_len + 2, msg, len);
	c->out_len += 2 + len;
	uq->conn = c;
	uq->tls = c->profile;
	uq->cnext = c->first;
	c->first = (uint32_t)(uq - io->uqs);
	c->inflight++;
	if (c->tls_broken) {
		if (!c->dead)
			upstream_count(io, UPSTREAM_TLS_FAILURES);
		conn_fail_later(io, c);
	} else if (conn_flush(io, c) != 0) {
		conn_fail_later(io, c);   /* this query included: it fails from the timer */
	}
	return 0;
}

/* ---- epoll events: replies, handshake, failures -------------------------------- */

void upstream_tcp_kill(struct tern_io *io, struct upconn *c)
{
	for (struct upconn **pp = &io->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->dead = true;
	upstream_tls_link_free(io->tls, c->tls);   /* before close: close_notify */
	c->tls = NULL;
	upstream_tls_drop(io->tls, c->profile);
	c->profile = NULL;
	if (c->it.fd >= 0)
		close(c->it.fd);
	c->it.fd = -1;
	c->next = io->dead;
	io->dead = c;
	io->w->io_turn_work = true;
	/* Re-runs may open a new connection; this one is out of the pool already. */
	while (c->first != UP_NONE) {
		struct uquery *uq = &io->uqs[c->first];
		upstream_query_finish(io, uq, TERN_RESUME_ERROR, NULL, 0);
	}
}

static void tcp_messages(struct tern_io *io, struct upconn *c)
{
	uint32_t off = 0;
	while (!c->dead && c->rx_len - off >= 2) {
		uint32_t mlen = ((uint32_t)c->rx[off] << 8) | c->rx[off + 1];
		if (c->rx_len - off < 2 + mlen)
			break;
		const uint8_t *m = c->rx + off + 2;
		off += 2 + mlen;
		struct uquery *uq = NULL;
		if (mlen >= KNOT_WIRE_HEADER_SIZE) {
			uint16_t id = knot_wire_get_id(m);
			for (uint32_t i = c->first; i != UP_NONE; i = io->uqs[i].cnext) {
				if (io->uqs[i].id == id) {
					uq = &io->uqs[i];
					break;
				}
			}
		}
		if (!uq || !upstream_reply_matches(uq, m, mlen)) {
			upstream_count(io, UPSTREAM_BAD_REPLIES);
			continue;
		}
		memcpy(io->reply, m, mlen);
		upstream_query_finish(io, uq, TERN_RESUME_ANSWER, io->reply, (uint16_t)mlen);
	}
	if (off > 0 && !c->dead) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
}

/* Read into @p c's buffer. @return bytes, 0 at EOF, or -errno (-EAGAIN: nothing now). */
static ssize_t conn_recv(struct upconn *c)
{
	void *buf = c->rx + c->rx_len;
	size_t room = sizeof(c->rx) - c->rx_len;
	if (c->tls)
		return upstream_tls_recv(c->tls, buf, room);
	ssize_t n = recv(c->it.fd, buf, room, MSG_DONTWAIT);
	if (n >= 0)
		return n;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/*
 * Advance @p c's TLS handshake. @return true when it is done (queued queries can go),
 * false while it waits for the socket or when it failed (the connection is killed).
 */
static bool tls_handshake(struct tern_io *io, struct upconn *c)
{
	int ret = upstream_tls_handshake(c->tls, io->w->id);
	if (ret == -EAGAIN) {
		if (conn_watch(io, c) != 0)
			upstream_tcp_kill(io, c);
		return false;
	}
	if (ret != 0) {
		upstream_count(io, UPSTREAM_TLS_FAILURES);
		upstream_tcp_kill(io, c);   /* its queries fail: forward tries the next upstream */
		return false;
	}
	c->tls_ready = true;
	upstream_count(io, UPSTREAM_TLS_HANDSHAKES);
	if (upstream_tls_resumed(c->tls))
		upstream_count(io, UPSTREAM_TLS_RESUMED);
	if (conn_flush(io, c) != 0) {
		upstream_tcp_kill(io, c);
		return false;
	}
	return true;
}

void upstream_tcp_event(struct tern_io *io, struct upconn *c, uint32_t events)
{
	if (c->dead)
		return;
	if (!c->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t elen = sizeof(err);
		if (getsockopt(c->it.fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
			upstream_tcp_kill(io, c);
			return;
		}
		c->connected = true;
	}
	if (c->profile && !c->tls_ready) {
		if (!c->connected || !c->tls)
			return;   /* connecting, or TLS could not start (fails from the timer) */
		if (!tls_handshake(io, c))
			return;   /* waiting for the socket, or failed */
		events |= EPOLLIN;   /* the server may have sent more in the last flight */
	}
	if ((events & EPOLLOUT) && conn_flush(io, c) != 0) {
		upstream_tcp_kill(io, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = conn_recv(c);
			if (n > 0) {
				c->rx_len += (uint32_t)n;
				tcp_messages(io, c);
				if (c->dead)
					return;
				continue;
			}
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN)
				break;
			upstream_tcp_kill(io, c);   /* closed by the upstream, or reset */
			return;
		}
	}
	if (c->dead)
		return;
	if (c->inflight == 0 && c->out_len == 0 && c->rx_len == 0)
		c->idle_since_ms = io->w->now_ms;
}

/* ---- freeing ------------------------------------------------------------------- */

void upstream_tcp_reap(struct tern_io *io)
{
	while (io->dead) {
		struct upconn *c = io->dead;
		io->dead = c->next;
		free(c);
	}
}

void upstream_tcp_close_all(struct tern_io *io)
{
	while (io->conns) {
		struct upconn *c = io->conns;
		io->conns = c->next;
		upstream_tls_link_free(io->tls, c->tls);
		upstream_tls_drop(io->tls, c->profile);
		if (c->it.fd >= 0)
			close(c->it.fd);
		free(c);
	}
}
