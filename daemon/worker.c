/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker thread loop and its UDP path (see worker.h).
 * Hot path: no malloc, no locks, no blocking (only recvmmsg/sendmmsg/epoll_wait).
 */
#include "daemon/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "daemon/listener.h"
#include "daemon/tcp.h"
#include "daemon/upstream.h"
#include "lib/core/clock.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"
#include "lib/engine/hot.h"
#include "lib/engine/process.h"

/*
 * The socket calls of the loop, made directly: glibc's wrappers are cancellation
 * points (two extra calls per syscall), and workers are never cancelled.
 */
static inline int sys_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	return (int)syscall(SYS_recvmmsg, fd, v, n, flags, NULL);
}

static inline int sys_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	return (int)syscall(SYS_sendmmsg, fd, v, n, flags);
}

static inline int sys_epoll_wait(int epfd, struct epoll_event *ev, int n, int timeout_ms)
{
	return (int)syscall(SYS_epoll_pwait, epfd, ev, n, timeout_ms, NULL, (size_t)8);
}

static int ep_add(struct worker *w, struct ep_item *it, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = it };
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, it->fd, &ev) == 0 ? 0 : -errno;
}

size_t worker_reply_control(struct msghdr *rx)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(rx); c; c = CMSG_NXTHDR(rx, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
			pi->ipi_spec_dst = pi->ipi_addr;
			pi->ipi_ifindex = 0;
			return rx->msg_controllen;
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
			return rx->msg_controllen;
	}
	return 0;
}

/*
 * Ready the receive headers. They are filled once at start; recvmmsg only rewrites the
 * lengths of the entries it used, so only those (or all, when the socket kind changes
 * between plain and packet-info) are reset before the next call.
 */
static void udp_prepare_rx(struct worker *w, bool pktinfo)
{
	unsigned n = pktinfo == w->rx_pktinfo ? w->rx_used : WORKER_BATCH;
	size_t ctrl = pktinfo ? sizeof(w->ctrl[0]) : 0;
	for (unsigned i = 0; i < n; i++) {
		w->rx[i].msg_hdr.msg_namelen = sizeof(w->peer[i]);
		w->rx[i].msg_hdr.msg_controllen = ctrl;
	}
	w->rx_pktinfo = pktinfo;
	w->rx_used = 0;
}

static void udp_init_rx(struct worker *w)
{
	for (unsigned i = 0; i < WORKER_BATCH; i++) {
		w->rx_iov[i] = (struct iovec) { .iov_base = w->rx_buf[i], .iov_len = WORKER_UDP_RX };
		w->rx[i].msg_hdr = (struct msghdr) {
			.msg_name = &w->peer[i],
			.msg_namelen = sizeof(w->peer[i]),
			.msg_iov = &w->rx_iov[i],
			.msg_iovlen = 1,
			.msg_control = w->ctrl[i],
			.msg_controllen = 0,
		};
	}
	w->rx_pktinfo = false;
	w->rx_used = 0;
}

/* One recvmmsg batch: answer every datagram and send the answers in one sendmmsg. */
static int udp_batch(struct worker *w, const struct ep_item *it)
{
	udp_prepare_rx(w, it->pktinfo);
	int n = sys_recvmmsg(it->fd, w->rx, WORKER_BATCH, MSG_DONTWAIT);
	if (n <= 0)
		return 0;
	w->rx_used = (unsigned)n;
	uint64_t received_ns = tern_mono_ns();
	struct tern_query_ctx ctx = {
		.view = w->view,
		.listen_index = it->listen_index,
		.proto = TERN_PROTO_UDP,
		.worker_id = w->id,
		.now_ms = w->now_ms,
		.arena = &w->arena,
		.mm = &w->mm,
		.stats = w->stats,
		.io = w->io,
		.hot = w->hot,
		.epoch = w->epoch,
		.start_ns = received_ns,
	};
	w->cur_ctx = &ctx;
	unsigned out = 0;
	for (int i = 0; i < n; i++) {
		struct msghdr *rx = &w->rx[i].msg_hdr;
		if (rx->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
			tern_stats_event(w->stats, TERN_STATS_DROPPED);
			continue;
		}
		ctx.src = &w->peer[i];
		size_t len = tern_process(&ctx, w->rx_buf[i], w->rx[i].msg_len,
		                          w->tx_buf[i], WORKER_UDP_RX);
		if (len == 0)
			continue;
		w->tx_iov[out] = (struct iovec) { .iov_base = w->tx_buf[i], .iov_len = len };
		w->tx[out].msg_hdr = (struct msghdr) {
			.msg_name = &w->peer[i],
			.msg_namelen = rx->msg_namelen,
			.msg_iov = &w->tx_iov[out],
			.msg_iovlen = 1,
			.msg_control = it->pktinfo ? rx->msg_control : NULL,
			.msg_controllen = it->pktinfo ? worker_reply_control(rx) : 0,
		};
		out++;
	}
	w->cur_ctx = NULL;   /* valid only inside tern_process() */
	unsigned sent = 0;
	while (sent < out) {
		int r = sys_sendmmsg(it->fd, w->tx + sent, out - sent, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			/* Socket buffer full or the peer is gone: drop the rest, counted. */
			for (; sent < out; sent++)
				tern_stats_event(w->stats, TERN_STATS_DROPPED);
			break;
		}
		sent += (unsigned)r;
	}
	return n;
}

/*
 * Polled sockets. A UDP socket in the epoll set has epoll's entry on its wait queue, and
 * the kernel then takes the queue's lock to offer a wakeup every time one of the
 * answers it sent is freed: about 5% of a busy worker's CPU. So a socket whose batch
 * came back full (a backlog) leaves the epoll set and is read once every turn instead,
 * while epoll_wait only polls (timeout 0) for the worker's other files; as soon as
 * UDP_IDLE_TURNS reads in a row find it empty (the backlog is gone) it goes back to
 * epoll and the worker sleeps again, so a worker never spins on an idle socket. Two
 * epoll_ctl calls per backlog, against one wakeup offer per answer sent.
 */
#define UDP_IDLE_TURNS 2

static void udp_set_polled(struct worker *w, struct ep_item *it, bool polled)
{
	if (polled == it->polled)
		return;
	if (polled) {
		if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, it->fd, NULL) != 0)
			return;
		w->npolled++;
		tern_stats_event(w->stats, TERN_STATS_UDP_POLLED);
	} else {
		if (ep_add(w, it, EPOLLIN) != 0)
			return;   /* stays polled: it is still read every turn */
		w->npolled--;
	}
	it->polled = polled;
	it->idle_turns = 0;
}

/* Read @p it: a few batches, then let the worker's other files have a turn. */
static void udp_ready(struct worker *w, struct ep_item *it)
{
	int n = 0;
	for (int round = 0; round < 8; round++) {
		n = udp_batch(w, it);
		if (n < WORKER_BATCH)
			break;
	}
	if (n == WORKER_BATCH)
		udp_set_polled(w, it, true);
}

/* Once a turn: read the polled sockets; return the idle ones to epoll. */
static void udp_poll(struct worker *w)
{
	for (unsigned li = 0; li < TERN_VIEW_MAX_LISTENS && w->npolled; li++) {
		struct ep_item *it = &w->udp[li];
		if (it->fd < 0 || !it->polled)
			continue;
		int n = udp_batch(w, it);
		if (n > 0) {
			it->idle_turns = 0;
			if (n == WORKER_BATCH)
				udp_ready(w, it);
		} else if (++it->idle_turns >= UDP_IDLE_TURNS) {
			udp_set_polled(w, it, false);
		}
	}
}

static int reconcile(struct worker *w, const struct tern_view *view);

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event events[64];
	tern_rcu_register();
	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		tern_rcu_offline();
		int n = sys_epoll_wait(w->epfd, events, (int)TERN_ARRAY_LEN(events),
		                       w->npolled ? 0 : 1000);
		tern_rcu_online();
		/* The epoch first: hot answers built this turn must not outlive what it saw. */
		w->epoch = tern_rcu_epoch_read();
		w->view = TERN_RCU_DEREF(tern_view_root);
		w->now_ms = tern_mono_ms();
		if (w->view && w->view->generation != w->sockets_generation)
			reconcile(w, w->view);
		for (int i = 0; i < n && w->view; i++) {
			struct ep_item *it = events[i].data.ptr;
			switch (it->kind) {
			case EP_UDP:
				udp_ready(w, it);
				break;
			case EP_TCP_LISTEN:
				tcp_accept(w, it);
				break;
			case EP_TCP_CONN:
				tcp_conn_event(w, it, events[i].events);
				break;
			case EP_TIMER: {
				uint64_t ticks;
				if (read(it->fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					tern_warn("worker %u, timer read failed (%s)", w->id, strerror(errno));
				tcp_sweep(w);
				upstream_tick(w->io);
				break;
			}
			case EP_UP_UDP:
			case EP_UP_TCP:
			case EP_UP_TIMER:
				upstream_event(w->io, it, events[i].events);
				break;
			case EP_STOP:
				break;
			}
		}
		if (w->npolled && w->view)
			udp_poll(w);
		if (w->io_turn_work && w->view)
			upstream_turn_end(w->io);
		w->cur_ctx = NULL;
		w->view = NULL;
		tern_rcu_quiescent();
	}
	tern_rcu_unregister();
	return NULL;
}

static void close_listen(struct worker *w, unsigned li)
{
	if (w->udp[li].polled)
		w->npolled--;
	w->udp[li].polled = false;
	if (w->udp[li].fd >= 0)
		close(w->udp[li].fd);
	if (w->tcp[li].fd >= 0)
		close(w->tcp[li].fd);
	w->udp[li].fd = w->tcp[li].fd = -1;
}

static int open_listen(struct worker *w, unsigned li, const struct sockaddr_storage *ss)
{
	char addr[80];
	tern_addr_str(ss, addr, sizeof(addr));
	bool pktinfo = false;
	int fd = listener_udp_open(ss, &pktinfo);
	if (fd < 0) {
		tern_err("listen %s udp, bind failed (%s)", addr, strerror(-fd));
		return fd;
	}
	w->udp[li] = (struct ep_item) { .kind = EP_UDP, .fd = fd, .listen_index = li,
	                                .pktinfo = pktinfo };
	fd = listener_tcp_open(ss);
	if (fd < 0) {
		tern_err("listen %s tcp, bind failed (%s)", addr, strerror(-fd));
		close_listen(w, li);
		return fd;
	}
	w->tcp[li] = (struct ep_item) { .kind = EP_TCP_LISTEN, .fd = fd, .listen_index = li };
	int ret = ep_add(w, &w->udp[li], EPOLLIN);
	if (ret == 0)
		ret = ep_add(w, &w->tcp[li], EPOLLIN);
	if (ret != 0)
		close_listen(w, li);
	return ret;
}

/*
 * Make the sockets match @p view: open newly active addresses, close dropped ones.
 * Sockets of unchanged addresses are kept, so no query to them is lost. Runs on the
 * main thread at start and on the worker when it first sees a reloaded view (the
 * loader checked beforehand that new addresses can be bound).
 */
static int reconcile(struct worker *w, const struct tern_view *view)
{
	int result = 0;
	for (unsigned li = 0; li < TERN_VIEW_MAX_LISTENS; li++) {
		bool want = li < view->nlistens && view->listens[li].active;
		bool have = w->udp[li].fd >= 0;
		if (want && !have) {
			int ret = open_listen(w, li, &view->listens[li].addr);
			if (ret != 0)
				result = ret;
		} else if (!want && have) {
			close_listen(w, li);
		}
	}
	w->sockets_generation = view->generation;
	return result;
}

static void worker_free(struct worker *w)
{
	for (unsigned li = 0; li < TERN_VIEW_MAX_LISTENS; li++)
		close_listen(w, li);
	if (w->stop_item.fd >= 0)
		close(w->stop_item.fd);
	if (w->timer_item.fd >= 0)
		close(w->timer_item.fd);
	upstream_free(w->io);
	if (w->epfd >= 0)
		close(w->epfd);
	tcp_state_free(w->tcp_state);
	tern_stats_row_free(w->stats);
	tern_hot_free(w->hot);
	free(w->arena_buf);
	free(w->rx_buf);
	free(w->tx_buf);
	free(w->tcp_out);
	free(w);
}

int worker_new(unsigned id, const struct tern_view *view, const struct worker_tcp_limits *lim,
               unsigned hot_entries, struct worker **out)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->id = id;
	w->stop_item = (struct ep_item) { .kind = EP_STOP, .fd = -1 };
	w->timer_item = (struct ep_item) { .kind = EP_TIMER, .fd = -1 };
	for (unsigned li = 0; li < TERN_VIEW_MAX_LISTENS; li++)
		w->udp[li].fd = w->tcp[li].fd = -1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->stats = tern_stats_row_new(id);
	w->tcp_state = tcp_state_new(lim);
	w->arena_buf = malloc(WORKER_ARENA);
	w->rx_buf = calloc(WORKER_BATCH, WORKER_UDP_RX);
	w->tx_buf = calloc(WORKER_BATCH, WORKER_UDP_RX);
	w->tcp_out = malloc(2 + 65535);
	int ret = -ENOMEM;
	if (hot_entries)
		w->hot = tern_hot_new(hot_entries);
	if (w->epfd < 0 || !w->stats || !w->tcp_state || !w->arena_buf || !w->rx_buf ||
	    !w->tx_buf || !w->tcp_out || (hot_entries && !w->hot))
		goto fail;
	tern_arena_init(&w->arena, w->arena_buf, WORKER_ARENA, &w->mm);
	udp_init_rx(w);
	if ((ret = upstream_new(w, &w->io)) != 0)
		goto fail;

	w->stop_item.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->timer_item.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec tick = { .it_interval = { .tv_sec = 1 }, .it_value = { .tv_sec = 1 } };
	if (w->stop_item.fd < 0 || w->timer_item.fd < 0 ||
	    timerfd_settime(w->timer_item.fd, 0, &tick, NULL) != 0) {
		ret = -errno;
		goto fail;
	}
	if ((ret = ep_add(w, &w->stop_item, EPOLLIN)) != 0 ||
	    (ret = ep_add(w, &w->timer_item, EPOLLIN)) != 0 ||
	    (ret = reconcile(w, view)) != 0)
		goto fail;
	*out = w;
	return 0;
fail:
	worker_free(w);
	return ret;
}

int worker_start(struct worker *w)
{
	int ret = pthread_create(&w->thread, NULL, worker_main, w);
	w->started = ret == 0;
	return -ret;
}

void worker_stop(struct worker *w)
{
	if (!w)
		return;
	if (w->started) {
		__atomic_store_n(&w->stop, true, __ATOMIC_RELEASE);
		uint64_t one = 1;
		if (write(w->stop_item.fd, &one, sizeof(one)) < 0)
			tern_warn("worker %u, stop signal failed (%s)", w->id, strerror(errno));
		pthread_join(w->thread, NULL);
	}
	worker_free(w);
}
