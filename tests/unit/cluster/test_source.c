/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/cluster/source.c: identical settings share one source, any
 * difference makes another, the settings are deep-copied, and reap stops and frees
 * exactly the sources no instance uses any more (with their last snapshot). Then the
 * metrics: rendered names, labels and values (checked with promtool when installed),
 * the DNS programming durations the builder observes, and a scrape racing reap and
 * publish without deadlock.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "lib/cluster/build.h"
#include "lib/cluster/source.h"
#include "lib/core/rcu.h"

static unsigned stopped;
static struct tern_cluster_source *stopped_last;

static void t_stop(struct tern_cluster_source *src)
{
	stopped++;
	stopped_last = src;
}

static void t_count(struct tern_cluster_source *src, void *ctx)
{
	(void)src;
	(*(unsigned *)ctx)++;
}

static unsigned t_registered(void)
{
	unsigned n = 0;
	tern_cluster_sources_foreach(t_count, &n);
	return n;
}

Test(source, identical_settings_share)
{
	char *ns1[] = { "a", "b" }, *ns2[] = { "b", "a" };
	struct tern_cluster_source_conf c1 = { .endpoint = "https://127.0.0.1:6443",
		.namespaces = ns1, .nnamespaces = 2, .watch_endpoints = true,
		.startup_timeout_ms = 5000 };
	struct tern_cluster_source_conf c2 = c1;
	c2.namespaces = ns2;             /* a set: order does not matter */
	struct tern_cluster_source *s1 = tern_cluster_source_get(&c1);
	struct tern_cluster_source *s2 = tern_cluster_source_get(&c2);
	cr_assert_not_null(s1);
	cr_assert_eq(s1, s2);
	cr_assert_eq(s1->refs, 2);
	cr_assert_eq(t_registered(), 1);
	tern_cluster_source_put(s1);
	tern_cluster_source_put(s2);
	stopped = 0;
	tern_cluster_sources_reap(t_stop);
	cr_assert_eq(stopped, 1);
	cr_assert_eq(t_registered(), 0);
}

Test(source, any_difference_separates)
{
	struct tern_cluster_source_conf base = { .watch_endpoints = true };
	struct tern_cluster_source_conf v[] = {
		base,
		{ .watch_endpoints = false },
		{ .watch_endpoints = true, .watch_pods = true },
		{ .watch_endpoints = true, .endpoint_pod_names = true },
		{ .watch_endpoints = true, .labels = "" },       /* "" is not NULL */
		{ .watch_endpoints = true, .labels = "app=x" },
		{ .watch_endpoints = true, .namespace_labels = "app=x" },
		{ .watch_endpoints = true, .kubeconfig = "/k", .context = "c1" },
		{ .watch_endpoints = true, .kubeconfig = "/k", .context = "c2" },
		{ .watch_endpoints = true, .tls_cert = "a", .tls_key = "b" },
		{ .watch_endpoints = true, .tls_cert = "ab" },
		{ .watch_endpoints = true, .startup_timeout_ms = 1 },
	};
	size_t n = sizeof(v) / sizeof(v[0]);
	struct tern_cluster_source *s[sizeof(v) / sizeof(v[0])];
	for (size_t i = 0; i < n; i++) {
		s[i] = tern_cluster_source_get(&v[i]);
		cr_assert_not_null(s[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(s[i], s[j], "conf %zu equals conf %zu", i, j);
	}
	cr_assert_eq(t_registered(), n);
	for (size_t i = 0; i < n; i++)
		tern_cluster_source_put(s[i]);
	tern_cluster_sources_reap(NULL);
	cr_assert_eq(t_registered(), 0);
}

Test(source, settings_are_copied)
{
	char endpoint[] = "https://127.0.0.1:6443";
	char nsname[] = "team";
	char *ns[] = { nsname };
	struct tern_cluster_source_conf c = { .endpoint = endpoint, .namespaces = ns,
		.nnamespaces = 1, .labels = "app=dns" };
	struct tern_cluster_source *s = tern_cluster_source_get(&c);
	cr_assert_not_null(s);
	endpoint[0] = 'X';
	nsname[0] = 'X';
	cr_assert_str_eq(s->conf.endpoint, "https://127.0.0.1:6443");
	cr_assert_str_eq(s->conf.namespaces[0], "team");
	cr_assert_str_eq(s->conf.labels, "app=dns");
	cr_assert_null(s->conf.kubeconfig);
	cr_assert_neq(s->conf.labels, c.labels);
	tern_cluster_source_put(s);
	tern_cluster_sources_reap(NULL);
}

Test(source, reap_only_unused_and_frees_snapshot)
{
	struct tern_cluster_source_conf a = { .endpoint = "https://a" };
	struct tern_cluster_source_conf b = { .endpoint = "https://b" };
	struct tern_cluster_source *sa = tern_cluster_source_get(&a);
	struct tern_cluster_source *sb = tern_cluster_source_get(&b);
	cr_assert_null(tern_cluster_source_snapshot(sa), "nothing published yet");

	/* publish a snapshot into a, as its watcher would */
	struct tern_cluster_builder *bld = tern_cluster_builder_new(&sa->conf);
	struct tern_k8s_service svc = { .ns = "default", .name = "x",
		.kind = TERN_SVC_CLUSTER_IP, .ncluster_ips = 1 };
	svc.cluster_ips[0].family = AF_INET;
	inet_pton(AF_INET, "10.0.0.1", svc.cluster_ips[0].addr);
	cr_assert_eq(tern_cluster_builder_service(bld, &svc), 0);
	cr_assert_eq(tern_cluster_builder_publish(bld, sa), 0);
	cr_assert_not_null(tern_cluster_source_snapshot(sa));
	tern_cluster_builder_free(bld);  /* the watcher ends before its source */

	tern_cluster_source_put(sa);
	stopped = 0;
	tern_cluster_sources_reap(t_stop);
	cr_assert_eq(stopped, 1);
	cr_assert_eq(stopped_last, sa);
	cr_assert_eq(t_registered(), 1);
	cr_assert_eq(sb->refs, 1);

	/* a source asked for again before reap is kept alive */
	tern_cluster_source_put(sb);
	cr_assert_eq(tern_cluster_source_get(&b), sb);
	tern_cluster_sources_reap(t_stop);
	cr_assert_eq(stopped, 1);
	tern_cluster_source_put(sb);
	tern_cluster_sources_reap(t_stop);
	cr_assert_eq(stopped, 2);
	cr_assert_eq(t_registered(), 0);
}

/* ---- metrics ------------------------------------------------------------------------ */

#define PROMTOOL "/usr/bin/promtool"

/* The scrape as the HTTP thread does it: registered, online around the render. */
static char *t_render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	cr_assert_not_null(out);
	tern_rcu_register();
	tern_rcu_online();
	tern_cluster_sources_render(out);
	tern_rcu_offline();
	tern_rcu_unregister();
	cr_assert_eq(fclose(out), 0);
	return buf;
}

/* The value of the sample whose name and labels are exactly @p series; -1: absent. */
static double t_value(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

/* promtool check metrics (format and lint) on @p text, when promtool is installed. */
static void t_promtool(const char *text)
{
	if (access(PROMTOOL, X_OK) != 0)
		return;
	char path[] = "/tmp/tern-test-metrics-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s > %s.out 2>&1", path, path);
	int rc = system(cmd);
	char out[4096] = "";
	snprintf(cmd, sizeof(cmd), "%s.out", path);
	FILE *o = fopen(cmd, "r");
	if (o) {
		size_t k = fread(out, 1, sizeof(out) - 1, o);
		out[k] = '\0';
		fclose(o);
	}
	unlink(cmd);
	unlink(path);
	cr_assert_eq(rc, 0, "promtool check metrics failed:\n%s\n--- input:\n%s", out, text);
}

static struct tern_ip t_ip4(const char *s)
{
	struct tern_ip ip = { .family = AF_INET };
	cr_assert_eq(inet_pton(AF_INET, s, ip.addr), 1);
	return ip;
}

static void t_service(struct tern_cluster_builder *b, const char *name, const char *cip)
{
	struct tern_k8s_service svc = { .ns = "default", .name = name,
		.kind = cip ? TERN_SVC_CLUSTER_IP : TERN_SVC_HEADLESS };
	if (cip) {
		svc.cluster_ips[0] = t_ip4(cip);
		svc.ncluster_ips = 1;
	}
	cr_assert_eq(tern_cluster_builder_service(b, &svc), 0);
}

/* A slice of one ready endpoint at @p ip for Service @p svc. */
static void t_slice(struct tern_cluster_builder *b, const char *name, const char *svc,
                    const char *ip, double trigger)
{
	struct tern_ip addr = t_ip4(ip);
	struct tern_k8s_endpoint ep = { .addrs = &addr, .naddrs = 1, .ready = true };
	struct tern_k8s_slice s = { .ns = "default", .name = name, .service = svc,
		.endpoints = &ep, .nendpoints = 1, .trigger_time = trigger };
	cr_assert_eq(tern_cluster_builder_slice(b, &s), 0);
}

static double t_unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(source, render_nothing_without_sources)
{
	char *text = t_render();
	cr_assert_str_eq(text, "");
	free(text);
}

Test(source, render_published_source)
{
	struct tern_cluster_source_conf c = { .endpoint = "https://127.0.0.1:6443",
		.watch_endpoints = true };
	struct tern_cluster_source *src = tern_cluster_source_get(&c);
	struct tern_cluster_builder *b = tern_cluster_builder_new(&src->conf);
	cr_assert_eq(tern_cluster_builder_namespace(b, "default"), 0);
	t_service(b, "web", "10.0.0.1");
	t_service(b, "db", NULL);
	t_slice(b, "db-1", "db", "10.1.0.1", 0);
	tern_cluster_builder_set_synced(b);
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	/* what the watcher counts */
	struct tern_cluster_source_stats *st = &src->stats;
	st->api_requests[2] = 7;
	st->api_requests[4] = 2;
	st->api_requests[0] = 1;
	st->relists_gone = 3;
	st->relists_error = 4;
	st->watch_restarts = 5;
	st->decode_errors = 6;

	char *text = t_render();
#define S "source=\"https://127.0.0.1:6443\""
	cr_assert_eq(t_value(text, "tern_kubernetes_synced{" S "}"), 1, "%s", text);
	cr_assert_eq(t_value(text, "tern_kubernetes_snapshots_total{" S "}"), 1);
	cr_assert_eq(t_value(text, "tern_kubernetes_snapshot_build_seconds_count{" S "}"), 1);
	cr_assert_eq(t_value(text, "tern_kubernetes_snapshot_build_seconds_bucket{" S
	                     ",le=\"+Inf\"}"), 1);
	cr_assert_eq(t_value(text, "tern_kubernetes_snapshot_build_seconds_bucket{" S
	                     ",le=\"0.0001\"}") >= 0, true);
	cr_assert_eq(t_value(text, "tern_kubernetes_snapshot_build_seconds_bucket{" S
	                     ",le=\"3.2768\"}"), 1, "a unit-test build takes < 3 s");
	cr_assert_gt(t_value(text, "tern_kubernetes_snapshot_build_seconds_sum{" S "}"), 0);
	double age = t_value(text, "tern_kubernetes_snapshot_age_seconds{" S "}");
	cr_assert(age >= 0 && age < 60, "age %f", age);
	cr_assert_eq(t_value(text, "tern_kubernetes_objects{" S ",kind=\"services\"}"), 2);
	cr_assert_eq(t_value(text, "tern_kubernetes_objects{" S ",kind=\"namespaces\"}"), 1);
	cr_assert_eq(t_value(text, "tern_kubernetes_objects{" S ",kind=\"pods\"}"), 0);
	cr_assert_geq(t_value(text, "tern_kubernetes_objects{" S ",kind=\"endpoints\"}"), 1);
	cr_assert_eq(t_value(text, "tern_kubernetes_api_requests_total{" S ",code=\"2xx\"}"), 7);
	cr_assert_eq(t_value(text, "tern_kubernetes_api_requests_total{" S ",code=\"4xx\"}"), 2);
	cr_assert_eq(t_value(text, "tern_kubernetes_api_requests_total{" S ",code=\"error\"}"),
	             1);
	cr_assert_eq(t_value(text, "tern_kubernetes_api_requests_total{" S ",code=\"1xx\"}"), 0);
	cr_assert_eq(t_value(text, "tern_kubernetes_relists_total{" S ",reason=\"gone\"}"), 3);
	cr_assert_eq(t_value(text, "tern_kubernetes_relists_total{" S ",reason=\"error\"}"), 4);
	cr_assert_eq(t_value(text, "tern_kubernetes_watch_restarts_total{" S "}"), 5);
	cr_assert_eq(t_value(text, "tern_kubernetes_decode_errors_total{" S "}"), 6);
#undef S
	/* CoreDNS's histogram is there (empty) as soon as a source exists */
	cr_assert_eq(t_value(text, "coredns_kubernetes_dns_programming_duration_seconds_count"
	                           "{service_kind=\"headless_with_selector\"}"), 0);
	cr_assert_not_null(strstr(text, "# TYPE coredns_kubernetes_dns_programming_duration_"
	                                "seconds histogram\n"));
	cr_assert_not_null(strstr(text, "# TYPE tern_kubernetes_snapshot_build_seconds "
	                                "histogram\n"));
	t_promtool(text);
	free(text);

	tern_cluster_builder_free(b);
	tern_cluster_source_put(src);
	tern_cluster_sources_reap(NULL);
}

Test(source, render_labels_each_source_apart)
{
	struct tern_cluster_source_conf in_cluster = { .watch_endpoints = true };
	struct tern_cluster_source_conf kc = { .kubeconfig = "/etc/k\"conf", .context = "prod",
		.endpoint = "https://ignored" };
	struct tern_cluster_source_conf e1 = { .endpoint = "https://10.0.0.1" };
	struct tern_cluster_source_conf e2 = { .endpoint = "https://10.0.0.1", .labels = "a=b" };
	struct tern_cluster_source *s[] = {
		tern_cluster_source_get(&in_cluster), tern_cluster_source_get(&kc),
		tern_cluster_source_get(&e1), tern_cluster_source_get(&e2),
	};
	char *text = t_render();
	/* nothing published: synced 0, no age or objects */
	cr_assert_eq(t_value(text, "tern_kubernetes_synced{source=\"in-cluster\"}"), 0, "%s",
	             text);
	cr_assert_eq(t_value(text, "tern_kubernetes_synced{source=\"kubeconfig:/etc/k\\\"conf"
	                           "?context=prod\"}"), 0);
	cr_assert_null(strstr(text, "tern_kubernetes_snapshot_age_seconds"));
	cr_assert_null(strstr(text, "tern_kubernetes_objects"));
	/* one endpoint, two selectors: two series, each with its settings' hash */
	cr_assert_eq(t_value(text, "tern_kubernetes_synced{source=\"https://10.0.0.1\"}"), -1);
	unsigned same = 0;
	char prev[64] = "";
	for (const char *p = strstr(text, "tern_kubernetes_synced{source=\"https://10.0.0.1#");
	     p; p = strstr(p + 1, "tern_kubernetes_synced{source=\"https://10.0.0.1#")) {
		cr_assert_str_neq(prev, p);
		snprintf(prev, sizeof(prev), "%.50s", p);
		same++;
	}
	cr_assert_eq(same, 2);
	t_promtool(text);
	free(text);
	for (unsigned i = 0; i < 4; i++)
		tern_cluster_source_put(s[i]);
	tern_cluster_sources_reap(NULL);
	text = t_render();
	cr_assert_str_eq(text, "", "reaped sources are not rendered");
	free(text);
}

static double t_prog_count(void)
{
	char *text = t_render();
	double v = t_value(text, "coredns_kubernetes_dns_programming_duration_seconds_count"
	                         "{service_kind=\"headless_with_selector\"}");
	free(text);
	return v;
}

Test(source, programming_duration_of_headless_changes_after_sync)
{
	struct tern_cluster_source_conf c = { .endpoint = "https://k", .watch_endpoints = true };
	struct tern_cluster_source *src = tern_cluster_source_get(&c);
	struct tern_cluster_builder *b = tern_cluster_builder_new(&src->conf);
	t_service(b, "db", NULL);
	t_service(b, "web", "10.0.0.1");
	double t0 = t_unix_now() - 1.5;

	/* the initial list is not programming */
	t_slice(b, "db-1", "db", "10.1.0.1", t0);
	tern_cluster_builder_set_synced(b);
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	cr_assert_eq(t_prog_count(), 0);

	/* a headless change counts when the snapshot with it is published */
	t_slice(b, "db-1", "db", "10.1.0.2", t0 + 0.1);
	cr_assert_eq(t_prog_count(), 0, "not visible yet");
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	cr_assert_eq(t_prog_count(), 1);
	char *text = t_render();
#define H "coredns_kubernetes_dns_programming_duration_seconds"
#define K "service_kind=\"headless_with_selector\""
	cr_assert_eq(t_value(text, H "_bucket{" K ",le=\"0.001\"}"), 0, "%s", text);
	cr_assert_eq(t_value(text, H "_bucket{" K ",le=\"1.024\"}"), 0);
	cr_assert_eq(t_value(text, H "_bucket{" K ",le=\"2.048\"}"), 1);
	cr_assert_eq(t_value(text, H "_bucket{" K ",le=\"524.288\"}"), 1);
	cr_assert_eq(t_value(text, H "_bucket{" K ",le=\"+Inf\"}"), 1);
	double sum = t_value(text, H "_sum{" K "}");
	cr_assert(sum >= 1.3 && sum < 60, "sum %f", sum);
#undef H
#undef K
	t_promtool(text);
	free(text);

	/* replays of a seen trigger time (relists), ClusterIP services, slices without the
	 * annotation and slices of unknown Services are not counted */
	t_slice(b, "db-1", "db", "10.1.0.2", t0 + 0.1);
	t_slice(b, "web-1", "web", "10.2.0.1", t0 + 0.2);
	t_slice(b, "db-2", "db", "10.1.0.3", 0);
	t_slice(b, "x-1", "nosuch", "10.3.0.1", t0 + 0.3);
	cr_assert_eq(tern_cluster_builder_publish(b, src), 0);
	cr_assert_eq(t_prog_count(), 1);

	/* a new trigger time that changes no record is visible at once */
	t_slice(b, "db-1", "db", "10.1.0.2", t0 + 0.4);
	cr_assert_eq(t_prog_count(), 2);

	tern_cluster_builder_free(b);
	tern_cluster_source_put(src);
	tern_cluster_sources_reap(NULL);
}

/*
 * A scrape (online reader taking the registry mutex) racing reap, whose stop callback
 * joins a "watcher" that publishes (and so waits for that reader's grace period). If
 * reap held the mutex around stop() this would deadlock: the test has a timeout.
 */
static atomic_bool t_scraping, t_watcher_stop;
static struct tern_cluster_builder *t_wb;

static void *t_scraper(void *arg)
{
	(void)arg;
	tern_rcu_register();
	tern_rcu_offline();
	while (atomic_load(&t_scraping)) {
		char *buf = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);
		tern_rcu_online();
		tern_cluster_sources_render(out);
		tern_rcu_offline();
		fclose(out);
		free(buf);
	}
	tern_rcu_unregister();
	return NULL;
}

static void *t_watcher(void *arg)
{
	struct tern_cluster_source *src = arg;
	unsigned i = 0;
	while (!atomic_load(&t_watcher_stop) || i < 3) {
		char name[32];
		snprintf(name, sizeof(name), "svc-%u", i++ % 50);
		t_service(t_wb, name, "10.0.0.9");
		cr_assert_eq(tern_cluster_builder_publish(t_wb, src), 0);
	}
	return NULL;
}

static pthread_t t_watcher_thread;

static void t_stop_join(struct tern_cluster_source *src)
{
	(void)src;
	atomic_store(&t_watcher_stop, true);
	pthread_join(t_watcher_thread, NULL);
}

Test(source, scrape_races_reap_and_publish, .timeout = 30)
{
	pthread_t scraper;
	atomic_store(&t_scraping, true);
	cr_assert_eq(pthread_create(&scraper, NULL, t_scraper, NULL), 0);
	struct tern_cluster_source_conf c = { .endpoint = "https://race" };
	for (unsigned round = 0; round < 50; round++) {
		struct tern_cluster_source *src = tern_cluster_source_get(&c);
		t_wb = tern_cluster_builder_new(&src->conf);
		atomic_store(&t_watcher_stop, false);
		cr_assert_eq(pthread_create(&t_watcher_thread, NULL, t_watcher, src), 0);
		usleep(1000);
		tern_cluster_source_put(src);
		tern_cluster_sources_reap(t_stop_join);
		tern_cluster_builder_free(t_wb);
	}
	atomic_store(&t_scraping, false);
	pthread_join(scraper, NULL);
	cr_assert_eq(t_registered(), 0);
}
