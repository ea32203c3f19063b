// SPDX-License-Identifier: Apache-2.0
/*
 * tern-loadgen: a batched UDP DNS load generator for bench/run.py. dnsperf on one core
 * saturates near 100k queries/s and then hides the differences between fast servers; this
 * one sends and receives with sendmmsg/recvmmsg on a few connected sockets from one thread.
 * It reads a dnsperf-format query file ("name type" per line), encodes every query once at
 * start, and sends them in file order (wrapping), either open loop at a target rate (-r,
 * for latency at a fixed offered load) or closed loop with a window of queries in flight
 * (-w, for the server's maximum rate). Replies are matched by socket and DNS ID; a query
 * with no reply within the timeout is lost. With -U every query name gets a unique first
 * label (cache misses). It prints one JSON object on stdout: queries sent, answers
 * received, lost, late, rcodes, achieved QPS and latency percentiles (p50, p99, p99.9).
 * Single-threaded; everything is allocated at start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_SOCKETS 256
#define LG_MAX_BATCH 256
#define LG_MAX_QUERY 512
#define LG_RX_BUF 4096
#define LG_IDS 65536u
/* Latency histogram: 32 linear sub-buckets per power of two of nanoseconds (~3 %). */
#define LG_SUB_BITS 5
#define LG_SUB (1u << LG_SUB_BITS)
#define LG_HIST (64 * LG_SUB)

struct lg_query {
	uint32_t off;           /* into lg.wire */
	uint16_t len;
	uint16_t name_off;      /* where the question name starts (after the header) */
};

/* One in-flight slot per DNS ID and socket; sent_ns == 0 means free. */
struct lg_slot {
	uint64_t sent_ns;
};

struct lg_sock {
	int fd;
	uint32_t head;          /* next ID to use (mod 65536) */
	uint32_t tail;          /* oldest ID not yet released */
	struct lg_slot slots[LG_IDS];
};

struct lg_conf {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	const char *file;
	double seconds;
	uint64_t count;         /* 0: run for @seconds */
	double rate;            /* > 0: open loop */
	unsigned window;        /* closed loop when rate == 0 */
	unsigned nsockets;
	unsigned batch;
	uint64_t timeout_ns;
	bool edns;
	bool unique;
};

struct lg_stats {
	uint64_t sent, received, lost, late, bad, stalled, send_errors;
	uint64_t rcodes[16];
	uint64_t hist[LG_HIST];
	uint64_t first_ns, last_send_ns, last_recv_ns;
};

static struct {
	struct lg_conf conf;
	struct lg_query *queries;
	size_t nqueries;
	unsigned char *wire;
	size_t wire_len;
	struct lg_sock *socks;
	struct lg_stats st;
	uint64_t next_query;
	uint64_t outstanding;
	uint64_t nonce;
} lg;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int qtype_from_text(const char *s)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {
		{ "A", 1 },     { "NS", 2 },    { "CNAME", 5 }, { "SOA", 6 },  { "PTR", 12 },
		{ "MX", 15 },   { "TXT", 16 },  { "AAAA", 28 }, { "SRV", 33 }, { "NAPTR", 35 },
		{ "DS", 43 },   { "DNSKEY", 48 }, { "HTTPS", 65 }, { "CAA", 257 }, { "ANY", 255 },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(s, types[i].name) == 0)
			return types[i].type;
	if (strncasecmp(s, "TYPE", 4) == 0) {
		char *end;
		long v = strtol(s + 4, &end, 10);

		if (!*end && v > 0 && v < 65536)
			return (int)v;
	}
	return -1;
}

/* Encode @name (dotted text) at @out; returns the length or -1. */
static int encode_name(const char *name, unsigned char *out, size_t room)
{
	size_t pos = 0;
	const char *p = name;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n == 0 && dot) {
			if (dot[1])
				return -1;      /* empty label inside the name */
			break;
		}
		if (n > 63 || pos + 1 + n + 1 > room || pos + 1 + n + 1 > 255)
			return -1;
		out[pos++] = (unsigned char)n;
		memcpy(out + pos, p, n);
		pos += n;
		if (!dot)
			break;
		p = dot + 1;
	}
	out[pos++] = 0;
	return (int)pos;
}

static int add_query(const char *name, int qtype, size_t *cap)
{
	unsigned char q[LG_MAX_QUERY];
	size_t pos = 12;

	memset(q, 0, 12);
	q[2] = 0x01;            /* RD, as dnsperf sends */
	q[5] = 1;               /* QDCOUNT */
	int n = encode_name(name, q + pos, sizeof(q) - pos - 4 - 11);

	if (n < 0)
		return -1;
	pos += (size_t)n;
	q[pos++] = (unsigned char)(qtype >> 8);
	q[pos++] = (unsigned char)qtype;
	q[pos++] = 0;
	q[pos++] = 1;           /* IN */
	if (lg.conf.edns) {
		static const unsigned char opt[11] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };

		q[11] = 1;      /* ARCOUNT */
		memcpy(q + pos, opt, sizeof(opt));
		pos += sizeof(opt);
	}
	if (lg.wire_len + pos > *cap) {
		size_t ncap = *cap ? *cap * 2 : 1 << 20;
		unsigned char *w = realloc(lg.wire, ncap);

		if (!w)
			return -1;
		lg.wire = w;
		*cap = ncap;
	}
	memcpy(lg.wire + lg.wire_len, q, pos);
	lg.queries[lg.nqueries++] = (struct lg_query){
		.off = (uint32_t)lg.wire_len,
		.len = (uint16_t)pos,
		.name_off = 12,
	};
	lg.wire_len += pos;
	return 0;
}

static int load_queries(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t qcap = 0, wcap = 0, lineno = 0;

	if (!f) {
		fprintf(stderr, "tern-loadgen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[512], type[32];

		lineno++;
		if (line[0] == '#' || sscanf(line, "%511s %31s", name, type) != 2)
			continue;
		int qtype = qtype_from_text(type);

		if (lg.nqueries == qcap) {
			size_t ncap = qcap ? qcap * 2 : 4096;
			struct lg_query *q = realloc(lg.queries, ncap * sizeof(*q));

			if (!q)
				goto fail;
			lg.queries = q;
			qcap = ncap;
		}
		if (qtype < 0 || add_query(name, qtype, &wcap) != 0) {
			fprintf(stderr, "tern-loadgen: %s:%zu: bad query '%s %s'\n", path, lineno,
				name, type);
			goto fail;
		}
	}
	fclose(f);
	if (!lg.nqueries) {
		fprintf(stderr, "tern-loadgen: %s: no queries\n", path);
		return -1;
	}
	return 0;
fail:
	fclose(f);
	return -1;
}

static int open_sockets(void)
{
	lg.socks = calloc(lg.conf.nsockets, sizeof(*lg.socks));
	if (!lg.socks)
		return -1;
	for (unsigned i = 0; i < lg.conf.nsockets; i++) {
		struct lg_sock *s = &lg.socks[i];
		int bufsz = 4 << 20;

		s->fd = socket(lg.conf.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (s->fd < 0 ||
		    connect(s->fd, (const struct sockaddr *)&lg.conf.addr, lg.conf.addr_len)) {
			fprintf(stderr, "tern-loadgen: socket: %s\n", strerror(errno));
			return -1;
		}
		(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		(void)setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
		/* Start each socket at a different ID so captures are easy to tell apart. */
		s->head = s->tail = (uint32_t)(i * 7919u);
	}
	return 0;
}

/* Release the oldest slots of @s that were answered or that timed out (lost). */
static void sweep(struct lg_sock *s, uint64_t now)
{
	while (s->tail != s->head) {
		struct lg_slot *slot = &s->slots[s->tail & (LG_IDS - 1)];

		if (slot->sent_ns) {
			if (now - slot->sent_ns < lg.conf.timeout_ns)
				return;
			slot->sent_ns = 0;
			lg.st.lost++;
			lg.outstanding--;
		}
		s->tail++;
	}
}

/* Write query @qi with @id into @buf; with -U prefix the name with a unique label. */
static size_t fill_query(unsigned char *buf, uint64_t qi, uint16_t id)
{
	const struct lg_query *q = &lg.queries[qi % lg.nqueries];
	const unsigned char *src = lg.wire + q->off;

	if (!lg.conf.unique) {
		memcpy(buf, src, q->len);
		buf[0] = (unsigned char)(id >> 8);
		buf[1] = (unsigned char)id;
		return q->len;
	}
	char label[40];
	int n = snprintf(label, sizeof(label), "u%" PRIx64 "x%" PRIx64, lg.nonce, qi);
	size_t len = q->len;

	if (n <= 0 || n > 63 || len + 1 + (size_t)n > LG_MAX_QUERY)
		n = 0;
	memcpy(buf, src, q->name_off);
	buf[0] = (unsigned char)(id >> 8);
	buf[1] = (unsigned char)id;
	size_t pos = q->name_off;

	if (n) {
		buf[pos++] = (unsigned char)n;
		memcpy(buf + pos, label, (size_t)n);
		pos += (size_t)n;
	}
	memcpy(buf + pos, src + q->name_off, len - q->name_off);
	return pos + len - q->name_off;
}

/* Send up to @want queries on @s in one sendmmsg; returns how many went out. */
static unsigned send_batch(struct lg_sock *s, unsigned want, uint64_t now)
{
	static unsigned char bufs[LG_MAX_BATCH][LG_MAX_QUERY];
	static struct iovec iov[LG_MAX_BATCH];
	static struct mmsghdr msgs[LG_MAX_BATCH];
	unsigned room = LG_IDS - (s->head - s->tail);
	unsigned n = want < room ? want : room;

	if (n == 0) {
		lg.st.stalled++;
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		uint16_t id = (uint16_t)(s->head + i);

		iov[i] = (struct iovec){ .iov_base = bufs[i],
					 .iov_len = fill_query(bufs[i], lg.next_query + i, id) };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	int r = sendmmsg(s->fd, msgs, n, 0);

	if (r <= 0) {
		lg.st.send_errors++;
		return 0;
	}
	for (int i = 0; i < r; i++)
		s->slots[(s->head + (unsigned)i) & (LG_IDS - 1)].sent_ns = now;
	s->head += (unsigned)r;
	lg.next_query += (unsigned)r;
	lg.outstanding += (unsigned)r;
	lg.st.sent += (unsigned)r;
	lg.st.last_send_ns = now;
	return (unsigned)r;
}

static void record_latency(uint64_t ns)
{
	unsigned idx;

	if (ns < LG_SUB) {
		idx = (unsigned)ns;
	} else {
		unsigned e = 63 - (unsigned)__builtin_clzll(ns);        /* >= LG_SUB_BITS */
		unsigned sub = (unsigned)(ns >> (e - LG_SUB_BITS)) & (LG_SUB - 1);

		idx = (e - LG_SUB_BITS + 1) * LG_SUB + sub;
	}
	if (idx >= LG_HIST)
		idx = LG_HIST - 1;
	lg.st.hist[idx]++;
}

/* The middle of histogram bucket @idx in nanoseconds. */
static double bucket_mid(unsigned idx)
{
	if (idx < LG_SUB)
		return idx;
	unsigned e = idx / LG_SUB - 1 + LG_SUB_BITS;
	unsigned sub = idx % LG_SUB;
	double lo = ldexp(1.0, (int)e) + sub * ldexp(1.0, (int)(e - LG_SUB_BITS));

	return lo + ldexp(1.0, (int)(e - LG_SUB_BITS)) / 2;
}

static double percentile_us(double p)
{
	uint64_t total = 0, want, acc = 0;

	for (unsigned i = 0; i < LG_HIST; i++)
		total += lg.st.hist[i];
	if (!total)
		return 0;
	want = (uint64_t)ceil(p / 100.0 * (double)total);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < LG_HIST; i++) {
		acc += lg.st.hist[i];
		if (acc >= want)
			return bucket_mid(i) / 1000.0;
	}
	return bucket_mid(LG_HIST - 1) / 1000.0;
}

/* Read every reply waiting on @s; returns how many datagrams were read. */
static unsigned recv_all(struct lg_sock *s)
{
	static unsigned char bufs[LG_MAX_BATCH][LG_RX_BUF];
	static struct iovec iov[LG_MAX_BATCH];
	static struct mmsghdr msgs[LG_MAX_BATCH];
	unsigned total = 0;

	for (;;) {
		for (unsigned i = 0; i < lg.conf.batch; i++) {
			iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = LG_RX_BUF };
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		int n = recvmmsg(s->fd, msgs, lg.conf.batch, MSG_DONTWAIT, NULL);

		if (n <= 0)
			return total;
		uint64_t now = now_ns();

		for (int i = 0; i < n; i++) {
			const unsigned char *m = bufs[i];

			if (msgs[i].msg_len < 12 || !(m[2] & 0x80)) {
				lg.st.bad++;
				continue;
			}
			uint16_t id = (uint16_t)(m[0] << 8 | m[1]);
			struct lg_slot *slot = &s->slots[id];

			/* A slot is in use only while its query is in flight. */
			if (!slot->sent_ns) {
				lg.st.late++;
				continue;
			}
			record_latency(now - slot->sent_ns);
			slot->sent_ns = 0;
			lg.st.received++;
			lg.st.rcodes[m[3] & 0xf]++;
			lg.st.last_recv_ns = now;
			lg.outstanding--;
		}
		total += (unsigned)n;
		if ((unsigned)n < lg.conf.batch)
			return total;
	}
}

static void wait_readable(uint64_t max_wait_ns)
{
	static struct pollfd pfd[LG_MAX_SOCKETS];
	struct timespec ts = { .tv_sec = (time_t)(max_wait_ns / 1000000000u),
			       .tv_nsec = (long)(max_wait_ns % 1000000000u) };

	for (unsigned i = 0; i < lg.conf.nsockets; i++)
		pfd[i] = (struct pollfd){ .fd = lg.socks[i].fd, .events = POLLIN };
	(void)ppoll(pfd, lg.conf.nsockets, &ts, NULL);
}

static bool sending_done(uint64_t now)
{
	if (interrupted)
		return true;
	if (lg.conf.count && lg.st.sent >= lg.conf.count)
		return true;
	return lg.conf.seconds > 0 && now - lg.st.first_ns >= (uint64_t)(lg.conf.seconds * 1e9);
}

static void run(void)
{
	unsigned rr = 0;
	uint64_t now = now_ns();

	lg.st.first_ns = now;
	while (!sending_done(now)) {
		uint64_t want;

		if (lg.conf.rate > 0) {
			double due = (double)(now - lg.st.first_ns) * lg.conf.rate / 1e9;

			want = due > (double)lg.st.sent ? (uint64_t)due - lg.st.sent : 0;
		} else {
			want = lg.outstanding < lg.conf.window ? lg.conf.window - lg.outstanding : 0;
		}
		if (lg.conf.count && want > lg.conf.count - lg.st.sent)
			want = lg.conf.count - lg.st.sent;
		/* Spread the batches over the sockets, round robin. */
		for (unsigned tries = 0; want && tries < lg.conf.nsockets; tries++) {
			struct lg_sock *s = &lg.socks[rr++ % lg.conf.nsockets];
			unsigned n = want < lg.conf.batch ? (unsigned)want : lg.conf.batch;
			unsigned sent = send_batch(s, n, now);

			want -= sent;
			if (sent)
				tries = 0;
		}
		unsigned got = 0;

		for (unsigned i = 0; i < lg.conf.nsockets; i++)
			got += recv_all(&lg.socks[i]);
		now = now_ns();
		for (unsigned i = 0; i < lg.conf.nsockets; i++)
			sweep(&lg.socks[i], now);
		if (got)
			continue;
		/* Idle: wait for replies, or until the next query is due (open loop). */
		uint64_t wait = 1000000;

		if (lg.conf.rate > 0) {
			double next = ((double)lg.st.sent + 1) * 1e9 / lg.conf.rate;
			double in = next - (double)(now - lg.st.first_ns);

			wait = in <= 0 ? 0 : (uint64_t)in;
			if (wait > 1000000)
				wait = 1000000;
		}
		if (wait)
			wait_readable(wait);
		now = now_ns();
	}
	/* Drain: wait for the replies still in flight, up to the timeout. */
	uint64_t end = now + lg.conf.timeout_ns;

	while (lg.outstanding && now < end && !interrupted) {
		wait_readable(1000000);
		for (unsigned i = 0; i < lg.conf.nsockets; i++)
			recv_all(&lg.socks[i]);
		now = now_ns();
	}
	for (unsigned i = 0; i < lg.conf.nsockets; i++) {
		struct lg_sock *s = &lg.socks[i];

		for (; s->tail != s->head; s->tail++) {
			struct lg_slot *slot = &s->slots[s->tail & (LG_IDS - 1)];

			if (slot->sent_ns) {
				slot->sent_ns = 0;
				lg.st.lost++;
			}
		}
	}
	lg.outstanding = 0;
}

static void report(void)
{
	static const char *rcode_names[16] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
		"YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
	};
	const struct lg_stats *st = &lg.st;
	double send_s = (double)(st->last_send_ns - st->first_ns) / 1e9;
	double run_s = (double)((st->last_recv_ns > st->last_send_ns ? st->last_recv_ns
								       : st->last_send_ns) -
				st->first_ns) / 1e9;

	printf("{\"mode\": \"%s\", \"rate\": %.0f, \"window\": %u, \"sockets\": %u, "
	       "\"batch\": %u, \"queries_in_file\": %zu,\n",
	       lg.conf.rate > 0 ? "open" : "closed", lg.conf.rate,
	       lg.conf.rate > 0 ? 0 : lg.conf.window, lg.conf.nsockets, lg.conf.batch,
	       lg.nqueries);
	printf(" \"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"lost\": %" PRIu64
	       ", \"late\": %" PRIu64 ", \"bad\": %" PRIu64 ", \"stalled\": %" PRIu64
	       ", \"send_errors\": %" PRIu64 ",\n",
	       st->sent, st->received, st->lost, st->late, st->bad, st->stalled, st->send_errors);
	printf(" \"send_seconds\": %.6f, \"run_seconds\": %.6f, \"qps\": %.1f, "
	       "\"offered_qps\": %.1f,\n",
	       send_s, run_s, run_s > 0 ? (double)st->received / run_s : 0.0,
	       send_s > 0 ? (double)st->sent / send_s : 0.0);
	printf(" \"latency_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"p999\": %.2f, "
	       "\"max\": %.2f},\n",
	       percentile_us(50), percentile_us(90), percentile_us(99), percentile_us(99.9),
	       percentile_us(100));
	printf(" \"rcodes\": {");
	bool first = true;

	for (unsigned i = 0; i < 16; i++) {
		if (!st->rcodes[i])
			continue;
		if (rcode_names[i])
			printf("%s\"%s\": %" PRIu64, first ? "" : ", ", rcode_names[i],
			       st->rcodes[i]);
		else
			printf("%s\"RCODE%u\": %" PRIu64, first ? "" : ", ", i, st->rcodes[i]);
		first = false;
	}
	printf("}}\n");
}

static int parse_addr(const char *host, const char *port)
{
	char *end;
	long p = strtol(port, &end, 10);
	struct sockaddr_in *sin = (struct sockaddr_in *)&lg.conf.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&lg.conf.addr;

	if (*end || p <= 0 || p > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		lg.conf.addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		lg.conf.addr_len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tern-loadgen -p PORT -d FILE [-s ADDR] [-l SECONDS | -n COUNT]\n"
		"                    [-r RATE | -w WINDOW] [-c SOCKETS] [-b BATCH] [-t MS] [-e] [-U]\n"
		"  -s ADDR     server address (default 127.0.0.1)\n"
		"  -p PORT     server port (required)\n"
		"  -d FILE     dnsperf-format query file: \"name type\" per line (required)\n"
		"  -l SECONDS  send for this long (default 5 without -n)\n"
		"  -n COUNT    send COUNT queries (and stop at -l SECONDS if given)\n"
		"  -r RATE     open loop: queries per second\n"
		"  -w WINDOW   closed loop: queries in flight (default 256)\n"
		"  -c SOCKETS  UDP sockets (source ports), round robin (default 16)\n"
		"  -b BATCH    datagrams per sendmmsg/recvmmsg (default 32, max %d)\n"
		"  -t MS       a query unanswered after MS milliseconds is lost (default 1000)\n"
		"  -e          send EDNS (OPT, 1232-byte UDP size)\n"
		"  -U          unique names: prefix each query name with a fresh label\n"
		"Prints one JSON object on stdout.\n",
		LG_MAX_BATCH);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port = NULL;
	int c;

	lg.conf = (struct lg_conf){ .window = 256, .nsockets = 16, .batch = 32,
				    .timeout_ns = 1000000000u };
	while ((c = getopt(argc, argv, "s:p:d:l:n:r:w:c:b:t:eUh")) != -1) {
		switch (c) {
		case 's':
			host = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'd':
			lg.conf.file = optarg;
			break;
		case 'l':
			lg.conf.seconds = atof(optarg);
			break;
		case 'n':
			lg.conf.count = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			lg.conf.rate = atof(optarg);
			break;
		case 'w':
			lg.conf.window = (unsigned)atoi(optarg);
			break;
		case 'c':
			lg.conf.nsockets = (unsigned)atoi(optarg);
			break;
		case 'b':
			lg.conf.batch = (unsigned)atoi(optarg);
			break;
		case 't':
			lg.conf.timeout_ns = (uint64_t)(atof(optarg) * 1e6);
			break;
		case 'e':
			lg.conf.edns = true;
			break;
		case 'U':
			lg.conf.unique = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!lg.conf.count && lg.conf.seconds == 0)
		lg.conf.seconds = 5;
	if (!port || !lg.conf.file || lg.conf.nsockets < 1 ||
	    lg.conf.nsockets > LG_MAX_SOCKETS || lg.conf.batch < 1 ||
	    lg.conf.batch > LG_MAX_BATCH || lg.conf.window < 1 || lg.conf.timeout_ns == 0 ||
	    lg.conf.seconds < 0 || lg.conf.rate < 0) {
		usage(stderr);
		return 2;
	}
	if (parse_addr(host, port) != 0) {
		fprintf(stderr, "tern-loadgen: bad address %s port %s\n", host, port);
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Wake-ups on time: the open loop's pacing and latencies depend on them. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	lg.nonce = now_ns() ^ ((uint64_t)getpid() << 32);
	if (load_queries(lg.conf.file) != 0 || open_sockets() != 0)
		return 1;
	run();
	report();
	return interrupted ? 130 : 0;
}
