/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of lib/core/stats.c: per-worker rows sum into one exposition, histograms
 * are cumulative, slots are interned once, freed rows keep their totals, and the text
 * passes `promtool check metrics`. Criterion runs every test in its own process, so
 * each starts with empty global statistics.
 */
#include "lib/core/stats.h"
#include "tests/support/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "lib/engine/view.h"

#define PROMTOOL "/usr/bin/promtool"
#define SRV      "dns://127.0.0.1:53"
#define ZONE     "example.org."
#define LBL      "server=\"" SRV "\",zone=\"" ZONE "\",view=\"\""

Test(stats, counts_from_two_rows_sum)
{
	struct tern_stats_row *a = tern_stats_row_new(0);
	struct tern_stats_row *b = tern_stats_row_new(1);
	cr_assert(a && b);
	int slot = tern_stats_slot(SRV, ZONE);
	cr_assert_geq(slot, 0);

	for (int i = 0; i < 3; i++)
		tern_stats_request(a, slot, TERN_PROTO_UDP, 1, KNOT_RRTYPE_A, true, 40);
	for (int i = 0; i < 4; i++)
		tern_stats_request(b, slot, TERN_PROTO_UDP, 1, KNOT_RRTYPE_A, false, 40);
	tern_stats_request(b, slot, TERN_PROTO_TCP, 2, KNOT_RRTYPE_SRV, false, 60);
	tern_stats_request(b, slot, TERN_PROTO_UDP, 1, 65280, false, 60); /* private type */
	tern_stats_response(a, slot, TERN_PROTO_UDP, KNOT_RCODE_NOERROR, 0, 100, 1000);
	tern_stats_response(b, slot, TERN_PROTO_UDP, KNOT_RCODE_NOERROR, 0, 100, 1000);
	tern_stats_response(b, slot, TERN_PROTO_UDP, KNOT_RCODE_NXDOMAIN, 0, 100, 1000);

	char *text = t_metrics_render();
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_requests_total{" LBL
	                      ",proto=\"udp\",family=\"1\",type=\"A\"}"), 7, "%s", text);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_requests_total{" LBL
	                      ",proto=\"tcp\",family=\"2\",type=\"SRV\"}"), 1);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_requests_total{" LBL
	                      ",proto=\"udp\",family=\"1\",type=\"other\"}"), 1);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_do_requests_total{" LBL "}"), 3);

	char series[512];
	snprintf(series, sizeof(series),
	         "coredns_dns_responses_total{" LBL ",rcode=\"NOERROR\",plugin=\"%s\"}",
	         tern_plugins[0]->name);
	cr_expect_eq(t_metrics_sample(text, series), 2, "%s", series);
	snprintf(series, sizeof(series),
	         "coredns_dns_responses_total{" LBL ",rcode=\"NXDOMAIN\",plugin=\"%s\"}",
	         tern_plugins[0]->name);
	cr_expect_eq(t_metrics_sample(text, series), 1);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_request_size_bytes_count{" LBL
	                      ",proto=\"udp\"}"), 8);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_request_size_bytes_sum{" LBL
	                      ",proto=\"udp\"}"), 7 * 40 + 60);
	cr_expect_eq(t_metrics_sample(text, "tern_worker_queries_total{worker=\"0\"}"), 3);
	cr_expect_eq(t_metrics_sample(text, "tern_worker_queries_total{worker=\"1\"}"), 6);
	free(text);
	tern_stats_row_free(a);
	tern_stats_row_free(b);
}

Test(stats, histogram_buckets_are_cumulative)
{
	struct tern_stats_row *row = tern_stats_row_new(0);
	int slot = tern_stats_slot(SRV, ZONE);
	/* 0.1 ms, 0.25 ms (on the bound), 0.3 ms, 1 ms, 10 s (over the last bound). */
	const uint64_t ns[] = { 100000, 250000, 300000, 1000000, 10000000000ull };
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		tern_stats_response(row, slot, TERN_PROTO_UDP, 0, TERN_STATS_NO_PLUGIN, 512, ns[i]);

	char *text = t_metrics_render();
	static const struct {
		const char *le;
		double count;
	} want[] = {
		{ "0.00025", 2 }, { "0.0005", 3 }, { "0.001", 4 }, { "0.002", 4 },
		{ "1.024", 4 }, { "8.192", 4 }, { "+Inf", 5 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char series[256];
		snprintf(series, sizeof(series),
		         "coredns_dns_request_duration_seconds_bucket{" LBL ",le=\"%s\"}",
		         want[i].le);
		cr_expect_eq(t_metrics_sample(text, series), want[i].count, "le=%s", want[i].le);
	}
	cr_expect_eq(t_metrics_count_lines(text, "coredns_dns_request_duration_seconds_bucket{"), 17);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_request_duration_seconds_count{" LBL "}"), 5);
	double sum = t_metrics_sample(text, "coredns_dns_request_duration_seconds_sum{" LBL "}");
	cr_expect(sum > 10.00164 && sum < 10.00166, "sum %f", sum);

	/* Response sizes: 512 is over the 511 bound and under 1023. */
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_response_size_bytes_bucket{" LBL
	                      ",proto=\"udp\",le=\"511\"}"), 0);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_response_size_bytes_bucket{" LBL
	                      ",proto=\"udp\",le=\"1023\"}"), 5);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_response_size_bytes_bucket{" LBL
	                      ",proto=\"udp\",le=\"+Inf\"}"), 5);

	/* Every bucket series is non-decreasing in le order. */
	double prev = -1;
	for (const char *p = strstr(text, "coredns_dns_request_duration_seconds_bucket{"); p;
	     p = strstr(p + 1, "coredns_dns_request_duration_seconds_bucket{")) {
		double v = strtod(strchr(p, '}') + 2, NULL);
		cr_expect_geq(v, prev);
		prev = v;
	}
	free(text);
	tern_stats_row_free(row);
}

Test(stats, only_nonzero_series_render)
{
	struct tern_stats_row *row = tern_stats_row_new(0);
	int used = tern_stats_slot(SRV, ZONE);
	int unused = tern_stats_slot(SRV, "unused.example.");
	cr_assert_neq(used, unused);
	tern_stats_request(row, used, TERN_PROTO_UDP, 1, KNOT_RRTYPE_A, false, 40);

	char *text = t_metrics_render();
	cr_expect_null(strstr(text, "unused.example."), "%s", text);
	cr_expect_eq(t_metrics_count_lines(text, "coredns_dns_requests_total{"), 1);
	cr_expect_eq(t_metrics_count_lines(text, "# TYPE coredns_dns_requests_total counter"), 1);
	/* No DO bit and no response yet: those families are absent altogether. */
	cr_expect_null(strstr(text, "coredns_dns_do_requests_total"));
	cr_expect_null(strstr(text, "coredns_dns_responses_total"));
	cr_expect_null(strstr(text, "coredns_dns_request_duration_seconds"));
	/* Process-wide counters are always present. */
	cr_expect_eq(t_metrics_sample(text, "coredns_panics_total"), 0);
	cr_expect_eq(t_metrics_sample(text, "coredns_reload_failed_total"), 0);
	cr_expect_eq(t_metrics_sample(text, "coredns_build_info{version=\"" TERN_VERSION
	                      "\",revision=\"\",goversion=\"none\"}"), 1, "%s", text);
	free(text);
	tern_stats_row_free(row);
}

Test(stats, slot_interning_is_stable)
{
	int a = tern_stats_slot(SRV, ZONE);
	int b = tern_stats_slot("dns://[::1]:53", ZONE);
	int c = tern_stats_slot(SRV, "cluster.local.");
	cr_assert(a >= 0 && b >= 0 && c >= 0);
	cr_expect(a != b && a != c && b != c);
	cr_expect_eq(tern_stats_slot(SRV, ZONE), a);
	cr_expect_eq(tern_stats_slot("dns://[::1]:53", ZONE), b);
	/* The built-in "dropped" labels and invalid input map to slot -1. */
	cr_expect_eq(tern_stats_slot("", "dropped"), -1);
	cr_expect_eq(tern_stats_slot(NULL, ZONE), -1);

	int first_new = -1;
	for (int i = 0;; i++) {
		char zone[32];
		snprintf(zone, sizeof(zone), "z%d.example.", i);
		int s = tern_stats_slot(SRV, zone);
		if (s < 0) {
			cr_expect_eq(i + 3, TERN_STATS_MAX_SLOTS, "table full after %d", i + 3);
			break;
		}
		if (first_new < 0)
			first_new = s;
		cr_assert_lt(i, TERN_STATS_MAX_SLOTS);
	}
	cr_expect_eq(tern_stats_slot(SRV, "z0.example."), first_new);
	cr_expect_eq(tern_stats_slot(SRV, ZONE), a, "a full table still finds old slots");
}

Test(stats, freed_rows_keep_totals)
{
	int slot = tern_stats_slot(SRV, ZONE);
	struct tern_stats_row *a = tern_stats_row_new(0);
	for (int i = 0; i < 5; i++) {
		tern_stats_request(a, slot, TERN_PROTO_UDP, 1, KNOT_RRTYPE_AAAA, false, 40);
		tern_stats_response(a, slot, TERN_PROTO_UDP, KNOT_RCODE_SERVFAIL,
		                    TERN_STATS_NO_PLUGIN, 40, 5000);
	}
	tern_stats_event(a, TERN_STATS_TRUNCATED);
	tern_stats_tcp_open(a, 1);
	tern_stats_row_free(a);

	char *text = t_metrics_render();
	const char *req = "coredns_dns_requests_total{" LBL
	                  ",proto=\"udp\",family=\"1\",type=\"AAAA\"}";
	const char *resp = "coredns_dns_responses_total{" LBL ",rcode=\"SERVFAIL\",plugin=\"\"}";
	cr_expect_eq(t_metrics_sample(text, req), 5);
	cr_expect_eq(t_metrics_sample(text, resp), 5);
	cr_expect_eq(t_metrics_sample(text, "tern_truncated_total{worker=\"0\"}"), 1);
	/* A freed worker has no open connections. */
	cr_expect_eq(t_metrics_sample(text, "tern_tcp_connections{worker=\"0\"}"), -1);
	free(text);

	/* The same worker id starting again (a reload) continues the counters, twice. */
	for (int round = 0; round < 2; round++) {
		struct tern_stats_row *b = tern_stats_row_new(0);
		tern_stats_request(b, slot, TERN_PROTO_UDP, 1, KNOT_RRTYPE_AAAA, false, 40);
		tern_stats_response(b, slot, TERN_PROTO_UDP, KNOT_RCODE_SERVFAIL,
		                    TERN_STATS_NO_PLUGIN, 40, 5000);
		text = t_metrics_render();
		cr_expect_eq(t_metrics_sample(text, req), 6 + round);
		cr_expect_eq(t_metrics_sample(text, resp), 6 + round);
		cr_expect_eq(t_metrics_sample(text, "tern_worker_queries_total{worker=\"0\"}"), 6 + round);
		cr_expect_eq(t_metrics_sample(text, "tern_tcp_connections{worker=\"0\"}"), 0);
		free(text);
		tern_stats_row_free(b);
	}
	text = t_metrics_render();
	cr_expect_eq(t_metrics_sample(text, req), 7);
	cr_expect_eq(t_metrics_count_lines(text, "tern_worker_queries_total{"), 1);
	free(text);
}

Test(stats, response_labels_name_rcode_and_plugin)
{
	struct tern_stats_row *row = tern_stats_row_new(3);
	int slot = tern_stats_slot(SRV, ZONE);
	unsigned last = (unsigned)tern_plugins_count - 1;
	tern_stats_response(row, slot, TERN_PROTO_TCP, KNOT_RCODE_REFUSED,
	                    TERN_STATS_NO_PLUGIN, 40, 1);
	tern_stats_response(row, slot, TERN_PROTO_TCP, 16, last, 40, 1);
	tern_stats_response(row, slot, TERN_PROTO_TCP, 13, last, 40, 1);
	tern_stats_response(row, -1, TERN_PROTO_UDP, KNOT_RCODE_REFUSED,
	                    TERN_STATS_NO_PLUGIN, 40, 1);

	char *text = t_metrics_render();
	char series[512];
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_responses_total{" LBL
	                      ",rcode=\"REFUSED\",plugin=\"\"}"), 1, "%s", text);
	snprintf(series, sizeof(series),
	         "coredns_dns_responses_total{" LBL ",rcode=\"BADSIG\",plugin=\"%s\"}",
	         tern_plugins[last]->name);
	cr_expect_eq(t_metrics_sample(text, series), 1, "%s", series);
	snprintf(series, sizeof(series),
	         "coredns_dns_responses_total{" LBL ",rcode=\"13\",plugin=\"%s\"}",
	         tern_plugins[last]->name);
	cr_expect_eq(t_metrics_sample(text, series), 1, "%s", series);
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_responses_total{server=\"\",zone=\"dropped\","
	                      "view=\"\",rcode=\"REFUSED\",plugin=\"\"}"), 1);
	free(text);
	tern_stats_row_free(row);
}

Test(stats, worker_events_and_tcp_gauge)
{
	struct tern_stats_row *row = tern_stats_row_new(2);
	tern_stats_event(row, TERN_STATS_DROPPED);
	tern_stats_event(row, TERN_STATS_DROPPED);
	tern_stats_event(row, TERN_STATS_FORMERR);
	tern_stats_event(row, TERN_STATS_TCP_ACCEPTED);
	tern_stats_event(row, TERN_STATS_TCP_ACCEPTED);
	tern_stats_event(row, TERN_STATS_TCP_REFUSED);
	tern_stats_event(row, TERN_STATS_TCP_TIMEOUT);
	tern_stats_tcp_open(row, 1);
	tern_stats_tcp_open(row, 1);
	tern_stats_tcp_open(row, -1);
	tern_stats_reload_failed();

	char *text = t_metrics_render();
	cr_expect_eq(t_metrics_sample(text, "tern_dropped_total{worker=\"2\",reason=\"invalid\"}"), 2);
	cr_expect_eq(t_metrics_sample(text, "tern_formerr_total{worker=\"2\"}"), 1);
	cr_expect_eq(t_metrics_sample(text,
	             "tern_tcp_connections_total{worker=\"2\",result=\"accepted\"}"), 2);
	cr_expect_eq(t_metrics_sample(text,
	             "tern_tcp_connections_total{worker=\"2\",result=\"refused\"}"), 1);
	cr_expect_eq(t_metrics_sample(text,
	             "tern_tcp_connections_total{worker=\"2\",result=\"timeout\"}"), 1);
	cr_expect_eq(t_metrics_sample(text, "tern_tcp_connections{worker=\"2\"}"), 1);
	cr_expect_eq(t_metrics_sample(text, "coredns_reload_failed_total"), 1);
	free(text);
	tern_stats_row_free(row);
}

/* Run promtool on @p text; returns its exit status and puts its output in @p msg. */
static int t_promtool(const char *text, char *msg, size_t len)
{
	char path[] = "/tmp/tern-test-stats-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	size_t n = strlen(text);
	cr_assert_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t got = fread(msg, 1, len - 1, p);
	msg[got] = '\0';
	int status = pclose(p);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(stats, render_passes_promtool)
{
	cr_assert_eq(access(PROMTOOL, X_OK), 0,
	             PROMTOOL " is missing: install the Debian package 'prometheus' (the set-up "
	             "script does) to check the exposition format");
	struct tern_stats_row *a = tern_stats_row_new(0);
	struct tern_stats_row *b = tern_stats_row_new(1);
	int s1 = tern_stats_slot(SRV, ZONE);
	int s2 = tern_stats_slot("dns://[::1]:5353", "we\"ird\\zone\n.");
	const uint16_t types[] = { KNOT_RRTYPE_A, KNOT_RRTYPE_AAAA, KNOT_RRTYPE_PTR, 64, 65, 999 };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		tern_stats_request(a, s1, TERN_PROTO_UDP, 1, types[i], i % 2, 30 + i * 100);
		tern_stats_request(b, s2, TERN_PROTO_TCP, 2, types[i], true, 70000);
		tern_stats_request(b, -1, TERN_PROTO_UDP, 2, types[i], false, 10);
		tern_stats_response(a, s1, TERN_PROTO_UDP, (uint16_t)i, (unsigned)(i % 2),
		                    100 * i, 1000ull << (2 * i));
		tern_stats_response(b, s2, TERN_PROTO_TCP, (uint16_t)(20 + i), 200, 65535, 7);
	}
	tern_stats_event(a, TERN_STATS_TRUNCATED);
	tern_stats_event(b, TERN_STATS_TCP_TIMEOUT);
	tern_stats_tcp_open(b, 1);
	tern_stats_reload_failed();
	tern_stats_row_free(a);

	char *text = t_metrics_render();
	char msg[4096];
	int rc = t_promtool(text, msg, sizeof(msg));
	cr_expect_eq(rc, 0, "promtool check metrics failed (%d):\n%s\n--- input:\n%s", rc, msg,
	             text);
	cr_expect_eq(msg[0], '\0', "promtool complained:\n%s", msg);
	/* Escapes: quote, backslash and newline inside a label value. */
	cr_expect_not_null(strstr(text, "zone=\"we\\\"ird\\\\zone\\n.\""), "%s", text);
	free(text);
	tern_stats_row_free(b);
}

struct t_writer {
	int slot;
	unsigned id;
	unsigned n;
};

static void *t_write(void *arg)
{
	const struct t_writer *w = arg;
	struct tern_stats_row *row = tern_stats_row_new(w->id);
	for (unsigned i = 0; i < w->n; i++) {
		tern_stats_request(row, w->slot, TERN_PROTO_UDP, 1, KNOT_RRTYPE_A, false, 40);
		tern_stats_response(row, w->slot, TERN_PROTO_UDP, 0, 0, 80, 1000);
	}
	tern_stats_row_free(row);
	return NULL;
}

Test(stats, concurrent_writers_sum_exactly)
{
	struct t_writer w[2] = {
		{ .slot = tern_stats_slot(SRV, ZONE), .id = 0, .n = 200000 },
		{ .slot = tern_stats_slot(SRV, ZONE), .id = 1, .n = 300000 },
	};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, t_write, &w[i]), 0);
	/* Scrape while they write: totals only grow. */
	double prev = 0;
	for (int i = 0; i < 20; i++) {
		char *text = t_metrics_render();
		double v = t_metrics_sample(text, "coredns_dns_requests_total{" LBL
		                    ",proto=\"udp\",family=\"1\",type=\"A\"}");
		if (v < 0)
			v = 0; /* no row has counted yet */
		cr_expect_geq(v, prev);
		if (v > prev)
			prev = v;
		free(text);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	char *text = t_metrics_render();
	cr_expect_eq(t_metrics_sample(text, "coredns_dns_requests_total{" LBL
	                      ",proto=\"udp\",family=\"1\",type=\"A\"}"), 500000);
	char series[512];
	snprintf(series, sizeof(series),
	         "coredns_dns_responses_total{" LBL ",rcode=\"NOERROR\",plugin=\"%s\"}",
	         tern_plugins[0]->name);
	cr_expect_eq(t_metrics_sample(text, series), 500000);
	free(text);
}
