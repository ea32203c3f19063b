/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pooled connected UDP sockets to upstreams (see upstream_udp.h). The table of
 * UPSTREAM_UDP_SOCKS sockets and the receive batch are allocated at worker start; a
 * socket slot is reused after its socket closes, with its generation bumped. Sockets
 * are connected, so the kernel drops datagrams from any other address or port before
 * the io layer sees them, and reports ICMP errors for the upstream on the socket.
 */
#include "daemon/upstream_udp.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#define UDP_MSG_MAX 65535

struct upstream_udp {
	int epfd;
	uint32_t free;                  /* free slots (next_free), UPSTREAM_UDP_NONE: none */
	struct upstream_udp_sock socks[UPSTREAM_UDP_SOCKS];
	struct mmsghdr rx[UPSTREAM_UDP_BATCH];
	struct iovec iov[UPSTREAM_UDP_BATCH];
	/* UPSTREAM_UDP_BATCH buffers of UDP_MSG_MAX: only the pages replies reach get touched. */
	uint8_t *buf;
};

int upstream_udp_new(int epfd, struct upstream_udp **out)
{
	struct upstream_udp *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->buf = malloc((size_t)UPSTREAM_UDP_BATCH * UDP_MSG_MAX);
	if (!u->buf) {
		free(u);
		return -ENOMEM;
	}
	u->epfd = epfd;
	for (uint32_t i = 0; i < UPSTREAM_UDP_SOCKS; i++) {
		u->socks[i].it = (struct ep_item) { .kind = EP_UP_UDP, .fd = -1 };
		u->socks[i].first = UPSTREAM_UDP_NONE;
		u->socks[i].next_free = i + 1 < UPSTREAM_UDP_SOCKS ? i + 1 : UPSTREAM_UDP_NONE;
	}
	u->free = 0;
	for (unsigned i = 0; i < UPSTREAM_UDP_BATCH; i++) {
		u->iov[i] = (struct iovec) { .iov_base = u->buf + (size_t)i * UDP_MSG_MAX,
		                             .iov_len = UDP_MSG_MAX };
		u->rx[i].msg_hdr = (struct msghdr) { .msg_iov = &u->iov[i], .msg_iovlen = 1 };
	}
	*out = u;
	return 0;
}

void upstream_udp_free(struct upstream_udp *u)
{
	if (!u)
		return;
	for (uint32_t i = 0; i < UPSTREAM_UDP_SOCKS; i++) {
		if (u->socks[i].it.fd >= 0)
			close(u->socks[i].it.fd);
	}
	free(u->buf);
	free(u);
}

struct upstream_udp_sock *upstream_udp_of(struct ep_item *it)
{
	return (struct upstream_udp_sock *)((char *)it - offsetof(struct upstream_udp_sock, it));
}

struct upstream_udp_sock *upstream_udp_at(struct upstream_udp *u, uint32_t i)
{
	return &u->socks[i];
}

uint32_t upstream_udp_index(const struct upstream_udp *u, const struct upstream_udp_sock *s)
{
	return (uint32_t)(s - u->socks);
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void sock_close(struct upstream_udp *u, struct upstream_udp_sock *s)
{
	/* The only reference to the file: closing it also takes it out of epoll. */
	close(s->it.fd);
	s->it.fd = -1;
	s->gen++;
	s->first = UPSTREAM_UDP_NONE;
	s->inflight = 0;
	s->pool = NULL;
	s->next_free = u->free;
	u->free = upstream_udp_index(u, s);
}

/* Open a socket to @p addr; the kernel binds it to a random ephemeral port at connect. */
static struct upstream_udp_sock *sock_open(struct upstream_udp *u,
                                           const struct sockaddr_storage *addr,
                                           uint64_t now_ms, int *err)
{
	if (u->free == UPSTREAM_UDP_NONE) {
		*err = -ENOSPC;
		return NULL;
	}
	int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	struct upstream_udp_sock *s = &u->socks[u->free];
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->it };
	if (connect(fd, (const struct sockaddr *)addr, sa_len(addr)) != 0 ||
	    epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		*err = -errno;
		close(fd);
		return NULL;
	}
	u->free = s->next_free;
	s->next_free = UPSTREAM_UDP_NONE;
	s->it.fd = fd;
	s->first = UPSTREAM_UDP_NONE;
	s->inflight = 0;
	s->uses = 0;
	s->opened_ms = now_ms;
	s->pool = NULL;
	return s;
}

static void pool_add(struct upstream_udp *u, struct upstream_udp_pool *pool,
                     struct upstream_udp_sock *s)
{
	s->pool = pool;
	s->pos = (uint16_t)pool->n;
	pool->socks[pool->n++] = upstream_udp_index(u, s);
}

void upstream_udp_retire(struct upstream_udp *u, struct upstream_udp_sock *s)
{
	struct upstream_udp_pool *pool = s->pool;
	if (pool) {
		uint32_t last = pool->socks[--pool->n];
		pool->socks[s->pos] = last;
		u->socks[last].pos = s->pos;
		s->pool = NULL;
	}
	if (s->inflight == 0 && s->it.fd >= 0)
		sock_close(u, s);
}

static bool expired(const struct upstream_udp_sock *s, uint64_t now_ms)
{
	return s->uses >= UPSTREAM_UDP_USES || now_ms - s->opened_ms >= UPSTREAM_UDP_AGE_MS;
}

struct upstream_udp_sock *upstream_udp_pick(struct upstream_udp *u, struct upstream_udp_pool *pool,
                                            const struct sockaddr_storage *addr, uint64_t now_ms,
                                            uint64_t rnd, bool *opened, int *err)
{
	*opened = false;
	*err = 0;
	if (!pool) {
		*opened = true;
		return sock_open(u, addr, now_ms, err);
	}
	struct upstream_udp_sock *s = NULL;
	if (pool->n > 0) {
		s = &u->socks[pool->socks[rnd % pool->n]];
		if (expired(s, now_ms)) {
			upstream_udp_retire(u, s);
			s = NULL;
		}
	}
	if (pool->n < UPSTREAM_UDP_POOL_MAX &&
	    (!s || pool->n < UPSTREAM_UDP_POOL_MIN || s->inflight >= UPSTREAM_UDP_LOAD)) {
		struct upstream_udp_sock *fresh = sock_open(u, addr, now_ms, err);
		if (fresh) {
			pool_add(u, pool, fresh);
			*opened = true;
			return fresh;
		}
		/* Out of sockets or descriptors: share one of those open. */
	}
	if (!s && pool->n > 0)
		s = &u->socks[pool->socks[(rnd >> 32) % pool->n]];
	if (!s && *err == 0)
		*err = -ENOSPC;
	return s;
}

void upstream_udp_take(struct upstream_udp *u, struct upstream_udp_sock *s)
{
	s->inflight++;
	if (++s->uses >= UPSTREAM_UDP_USES || !s->pool)
		upstream_udp_retire(u, s);   /* stays open for the queries in flight */
}

void upstream_udp_put(struct upstream_udp *u, struct upstream_udp_sock *s)
{
	if (s->inflight > 0)
		s->inflight--;
	if (s->inflight == 0 && !s->pool && s->it.fd >= 0)
		sock_close(u, s);
}

void upstream_udp_expire(struct upstream_udp *u, struct upstream_udp_pool *pool, uint64_t now_ms)
{
	for (unsigned i = 0; i < pool->n;) {
		struct upstream_udp_sock *s = &u->socks[pool->socks[i]];
		if (now_ms - s->opened_ms >= UPSTREAM_UDP_AGE_MS)
			upstream_udp_retire(u, s);   /* the last one moved to i */
		else
			i++;
	}
}

int upstream_udp_recv(struct upstream_udp *u, struct upstream_udp_sock *s)
{
	for (;;) {
		for (unsigned i = 0; i < UPSTREAM_UDP_BATCH; i++) {
			u->rx[i].msg_hdr.msg_flags = 0;
			u->rx[i].msg_len = 0;
		}
		int n = recvmmsg(s->it.fd, u->rx, UPSTREAM_UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

const uint8_t *upstream_udp_datagram(const struct upstream_udp *u, unsigned i, size_t *len)
{
	*len = u->rx[i].msg_len;
	return u->iov[i].iov_base;
}
