// SPDX-License-Identifier: Apache-2.0
/*
 * tern-reflector: the ceiling no DNS server can beat. It binds a UDP socket (one per
 * thread, SO_REUSEPORT), receives datagrams in recvmmsg batches, sets the QR bit of each
 * (byte 2 of the DNS header) and sends them back to their sources in one sendmmsg: the
 * kernel's and the socket layer's cost of a UDP query and its reply, with no DNS work.
 * bench/run.py measures its CPU time per query and QPS with the same generator and the
 * same pinning as every DNS server, and prints each server's figures as ratios to these.
 * Runs until SIGTERM or SIGINT. Usage: tern-reflector [-a ADDR] -p PORT [-t THREADS]
 * [-b BATCH].
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REFLECTOR_MAX_BATCH 256
#define REFLECTOR_BUF 4096
#define REFLECTOR_MAX_THREADS 64

struct reflector_conf {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned threads;
	unsigned batch;
};

struct reflector_thread {
	pthread_t tid;
	int fd;
	unsigned batch;
};

/* One thread's batch: allocated once when the thread starts. */
struct reflector_bufs {
	unsigned char bufs[REFLECTOR_MAX_BATCH][REFLECTOR_BUF];
	struct sockaddr_storage from[REFLECTOR_MAX_BATCH];
	struct iovec iov[REFLECTOR_MAX_BATCH];
	struct mmsghdr msgs[REFLECTOR_MAX_BATCH];
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int open_socket(const struct reflector_conf *conf)
{
	int on = 1;
	int bufsz = 4 << 20;
	int fd = socket(conf->addr.ss_family, SOCK_DGRAM, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
	    bind(fd, (const struct sockaddr *)&conf->addr, conf->addr_len) != 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	/* Larger buffers are best effort: the default is enough for the ceiling. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	/* A receive timeout lets the loop see the stop flag without a signal per thread. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void *reflect(void *arg)
{
	struct reflector_thread *t = arg;
	struct reflector_bufs *b = calloc(1, sizeof(*b));

	if (!b) {
		fprintf(stderr, "tern-reflector: out of memory\n");
		exit(1);
	}
	unsigned char (*bufs)[REFLECTOR_BUF] = b->bufs;
	struct sockaddr_storage *from = b->from;
	struct iovec *iov = b->iov;
	struct mmsghdr *msgs = b->msgs;

	while (!stop_flag) {
		for (unsigned i = 0; i < t->batch; i++) {
			iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = REFLECTOR_BUF };
			msgs[i] = (struct mmsghdr){
				.msg_hdr = {
					.msg_name = &from[i],
					.msg_namelen = sizeof(from[i]),
					.msg_iov = &iov[i],
					.msg_iovlen = 1,
				},
			};
		}
		int n = recvmmsg(t->fd, msgs, t->batch, MSG_WAITFORONE, NULL);

		if (n <= 0)
			continue;       /* timeout (stop flag check) or EINTR */
		int out = 0;

		for (int i = 0; i < n; i++) {
			size_t len = msgs[i].msg_len;

			if (len < 12)
				continue;       /* not a DNS header: nothing to reflect */
			bufs[i][2] |= 0x80;     /* QR: this is a response */
			iov[i].iov_len = len;
			if (out != i)
				msgs[out].msg_hdr = msgs[i].msg_hdr;
			out++;
		}
		int sent = 0;

		while (sent < out) {
			int r = sendmmsg(t->fd, msgs + sent, out - sent, 0);

			if (r <= 0)
				break;  /* a full send buffer drops the rest, as a server would */
			sent += r;
		}
	}
	free(b);
	return NULL;
}

static int parse_addr(const char *host, const char *port, struct reflector_conf *conf)
{
	char *end;
	long p = strtol(port, &end, 10);

	if (*end || p <= 0 || p > 65535)
		return -EINVAL;
	struct sockaddr_in *sin = (struct sockaddr_in *)&conf->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&conf->addr;

	memset(&conf->addr, 0, sizeof(conf->addr));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		conf->addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		conf->addr_len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: tern-reflector [-a ADDR] -p PORT [-t THREADS] [-b BATCH]\n"
		   "  UDP echo with the DNS QR bit set; runs until SIGTERM/SIGINT.\n"
		   "  -a ADDR     address to bind (default 127.0.0.1)\n"
		   "  -p PORT     port to bind (required)\n"
		   "  -t THREADS  threads, one SO_REUSEPORT socket each (default 1)\n"
		   "  -b BATCH    datagrams per recvmmsg/sendmmsg (default 64, max %d)\n",
		REFLECTOR_MAX_BATCH);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	const char *port = NULL;
	struct reflector_conf conf = { .threads = 1, .batch = 64 };
	struct reflector_thread threads[REFLECTOR_MAX_THREADS];
	int c;

	while ((c = getopt(argc, argv, "a:p:t:b:h")) != -1) {
		switch (c) {
		case 'a':
			host = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 't':
			conf.threads = (unsigned)atoi(optarg);
			break;
		case 'b':
			conf.batch = (unsigned)atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!port || conf.threads < 1 || conf.threads > REFLECTOR_MAX_THREADS ||
	    conf.batch < 1 || conf.batch > REFLECTOR_MAX_BATCH) {
		usage(stderr);
		return 2;
	}
	if (parse_addr(host, port, &conf) != 0) {
		fprintf(stderr, "tern-reflector: bad address %s port %s\n", host, port);
		return 2;
	}

	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (unsigned i = 0; i < conf.threads; i++) {
		threads[i] = (struct reflector_thread){ .fd = open_socket(&conf),
							.batch = conf.batch };
		if (threads[i].fd < 0) {
			fprintf(stderr, "tern-reflector: socket on %s:%s (%s)\n", host, port,
				strerror(-threads[i].fd));
			return 1;
		}
	}
	for (unsigned i = 0; i < conf.threads; i++) {
		int err = pthread_create(&threads[i].tid, NULL, reflect, &threads[i]);

		if (err) {
			fprintf(stderr, "tern-reflector: thread (%s)\n", strerror(err));
			return 1;
		}
	}
	fprintf(stderr, "tern-reflector: listening on %s:%s, %u thread(s)\n", host, port,
		conf.threads);
	for (unsigned i = 0; i < conf.threads; i++) {
		pthread_join(threads[i].tid, NULL);
		close(threads[i].fd);
	}
	return 0;
}
