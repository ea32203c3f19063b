/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/cluster/source.c: identical settings share one source, any
 * difference makes another, the settings are deep-copied, and reap stops and frees
 * exactly the sources no instance uses any more (with their last snapshot).
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "lib/cluster/build.h"
#include "lib/cluster/source.h"

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
