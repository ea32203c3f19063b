/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for kube/decode.c: real-shaped API responses (tests/data/kube/, shaped like
 * `kubectl get -o json` and `?watch=1` output) are fed to the streaming decoder whole,
 * one byte at a time and in random splits, and every delivered item is written as one
 * line of a transcript that the tests compare with what the fixture says. Garbage,
 * wrong shapes and truncation must be reported as errors without a crash (the ASan
 * build runs this too), and memory must not grow with the size of a list.
 */
#include <criterion/criterion.h>

#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "kube/decode.h"
#include "lib/core/errcode.h"

/* ---- transcript of delivered items ------------------------------------------------ */

struct t_log {
	char *buf;
	size_t len, cap;
	unsigned items;
	unsigned stop_after;   /* 0: never stop */
};

static void t_printf(struct t_log *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (l->len + (size_t)n + 1 > l->cap) {
		l->cap = (l->len + (size_t)n + 1) * 2;
		l->buf = realloc(l->buf, l->cap);
		cr_assert_not_null(l->buf);
	}
	va_start(ap, fmt);
	vsnprintf(l->buf + l->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	l->len += (size_t)n;
}

static void t_ip(struct t_log *l, const struct tern_ip *ip)
{
	char s[INET6_ADDRSTRLEN];
	cr_assert_not_null(inet_ntop(ip->family, ip->addr, s, sizeof(s)));
	t_printf(l, "%s", s);
}

static void t_ports(struct t_log *l, const struct tern_k8s_port *p, unsigned n)
{
	t_printf(l, " ports=");
	for (unsigned i = 0; i < n; i++)
		t_printf(l, "%s%s/%s/%u", i ? "," : "", p[i].name, p[i].protocol, p[i].port);
}

static int t_collect(void *ctx, const struct kube_item *it)
{
	static const char *const ev[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };
	struct t_log *l = ctx;
	t_printf(l, "%s rv=%s", ev[it->event], it->resource_version);
	if (!it->valid) {
		cr_assert_not_null(it->invalid_reason);
		t_printf(l, " INVALID\n");
		goto out;
	}
	if (it->event == KUBE_EVENT_ERROR) {
		t_printf(l, " code=%ld reason=%s message=%s\n", it->status_code, it->reason,
		         it->message);
		goto out;
	}
	if (it->event == KUBE_EVENT_BOOKMARK) {
		t_printf(l, "\n");
		goto out;
	}
	switch (it->kind) {
	case TERN_K8S_SERVICE: {
		const struct tern_k8s_service *s = &it->service;
		static const char *const kinds[] = { "clusterip", "headless", "externalname" };
		t_printf(l, " svc %s/%s %s ips=", s->ns, s->name, kinds[s->kind]);
		for (unsigned i = 0; i < s->ncluster_ips; i++) {
			t_printf(l, i ? "," : "");
			t_ip(l, &s->cluster_ips[i]);
		}
		if (s->external_name)
			t_printf(l, " ext=%s", s->external_name);
		t_ports(l, s->ports, s->nports);
		break;
	}
	case TERN_K8S_SLICE: {
		const struct tern_k8s_slice *s = &it->slice;
		t_printf(l, " slice %s/%s svc=%s trigger=%.3f eps=", s->ns, s->name, s->service,
		         s->trigger_time);
		for (unsigned i = 0; i < s->nendpoints; i++) {
			const struct tern_k8s_endpoint *e = &s->endpoints[i];
			t_printf(l, "%s[", i ? "," : "");
			for (unsigned j = 0; j < e->naddrs; j++) {
				t_printf(l, j ? " " : "");
				t_ip(l, &e->addrs[j]);
			}
			t_printf(l, " host=%s pod=%s ready=%d]", e->hostname ? e->hostname : "-",
			         e->pod_name ? e->pod_name : "-", e->ready);
		}
		t_ports(l, s->ports, s->nports);
		break;
	}
	case TERN_K8S_NAMESPACE:
		t_printf(l, " ns %s", it->namespace_name);
		break;
	case TERN_K8S_POD:
		t_printf(l, " pod %s/%s ips=", it->pod.ns, it->pod.name);
		for (unsigned i = 0; i < it->pod.nips; i++) {
			t_printf(l, i ? "," : "");
			t_ip(l, &it->pod.ips[i]);
		}
		t_printf(l, " finished=%d", it->pod_finished);
		break;
	default:
		cr_assert_fail("unexpected kind %d", it->kind);
	}
	t_printf(l, "\n");
out:
	l->items++;
	if (l->stop_after && l->items >= l->stop_after)
		return -1;
	return 0;
}

/* ---- feeding ---------------------------------------------------------------------- */

static char *t_read(const char *name, size_t *len)
{
	char dir[4096], path[4200];
	const char *root = getenv("TERN_SOURCE_ROOT");
	if (root) {
		snprintf(dir, sizeof(dir), "%s/tests/data/kube", root);
	} else {
		char here[4096];
		snprintf(here, sizeof(here), "%s", __FILE__);
		snprintf(dir, sizeof(dir), "%s/../../data/kube", dirname(here));
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	char *buf = NULL;
	size_t cap = 0;
	*len = 0;
	for (;;) {
		if (*len + 4096 > cap) {
			cap = (cap + 4096) * 2;
			buf = realloc(buf, cap + 1);
			cr_assert_not_null(buf);
		}
		size_t n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

enum { T_WHOLE = 0, T_BYTES = 1, T_RANDOM = -1 };

struct t_result {
	struct t_log log;
	int feed_rc;
	int finish_rc;
	char error[256];
	char list_rv[128];
	char list_cont[256];
};

/* Decode @p len bytes split as @p split says; the result owns the transcript. */
static struct t_result t_decode(enum tern_k8s_kind kind, enum kube_decode_mode mode,
                                const char *buf, size_t len, int split, unsigned seed)
{
	struct t_result r = { 0 };
	struct kube_decoder *d = kube_decode_new(kind, t_collect, &r.log);
	cr_assert_not_null(d);
	cr_assert_eq(kube_decode_begin(d, mode), 0);
	size_t off = 0;
	while (off < len && r.feed_rc == 0) {
		size_t n = len - off;
		if (split == T_BYTES)
			n = 1;
		else if (split == T_RANDOM)
			n = 1 + (size_t)(rand_r(&seed) % 97);
		if (n > len - off)
			n = len - off;
		r.feed_rc = kube_decode_feed(d, buf + off, n);
		off += n;
	}
	r.finish_rc = kube_decode_finish(d);
	snprintf(r.error, sizeof(r.error), "%s", kube_decode_error(d));
	snprintf(r.list_rv, sizeof(r.list_rv), "%s", kube_decode_list_rv(d));
	snprintf(r.list_cont, sizeof(r.list_cont), "%s", kube_decode_list_continue(d));
	if (!r.log.buf)
		t_printf(&r.log, "%s", "");
	kube_decode_free(d);
	return r;
}

static struct t_result t_decode_str(enum tern_k8s_kind kind, enum kube_decode_mode mode,
                                    const char *s)
{
	return t_decode(kind, mode, s, strlen(s), T_WHOLE, 0);
}

/* Decode a fixture whole, byte by byte and in random splits: all three must agree. */
static struct t_result t_decode_fixture(enum tern_k8s_kind kind, enum kube_decode_mode mode,
                                        const char *name)
{
	size_t len;
	char *buf = t_read(name, &len);
	struct t_result whole = t_decode(kind, mode, buf, len, T_WHOLE, 0);
	struct t_result bytes = t_decode(kind, mode, buf, len, T_BYTES, 0);
	cr_assert_str_eq(bytes.log.buf, whole.log.buf, "%s: byte-at-a-time differs", name);
	cr_assert_eq(bytes.finish_rc, whole.finish_rc);
	for (unsigned seed = 1; seed <= 20; seed++) {
		struct t_result rnd = t_decode(kind, mode, buf, len, T_RANDOM, seed);
		cr_assert_str_eq(rnd.log.buf, whole.log.buf, "%s: split seed %u differs", name,
		                 seed);
		cr_assert_str_eq(rnd.list_rv, whole.list_rv);
		cr_assert_str_eq(rnd.list_cont, whole.list_cont);
		free(rnd.log.buf);
	}
	free(bytes.log.buf);
	free(buf);
	return whole;
}

/* ---- lists ------------------------------------------------------------------------ */

Test(decode, service_list_keeps_dns_fields_of_every_service_kind)
{
	struct t_result r = t_decode_fixture(TERN_K8S_SERVICE, KUBE_DECODE_LIST,
	                                     "services_list.json");
	cr_assert_eq(r.feed_rc, 0, "%s", r.error);
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=192 svc default/kubernetes clusterip ips=10.96.0.1 ports=https/TCP/443\n"
		"ADDED rv=245 svc kube-system/kube-dns clusterip ips=10.96.0.10"
		" ports=dns/UDP/53,dns-tcp/TCP/53,metrics/TCP/9153\n"
		"ADDED rv=17002 svc shop/frontend clusterip ips=10.96.100.5,fd00:10:96::5"
		" ports=http/TCP/80\n"
		"ADDED rv=17010 svc shop/web headless ips= ports=/TCP/8080\n"
		"ADDED rv=17020 svc shop/db externalname ips= ext=my.database.example.com ports=\n"
		"ADDED rv=17100 svc monitoring/metrics-v6 clusterip ips=fd00:10:96::a"
		" ports=web/TCP/9090,syslog/UDP/514\n");
	cr_assert_str_eq(r.list_rv, "18342");
	cr_assert_str_eq(r.list_cont, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTgzNDIsInN0YXJ0Ijoib"
	                              "XktbnMvd2ViXHUwMDAwIn0");
	free(r.log.buf);
}

Test(decode, slice_list_reads_readiness_hostnames_and_pod_refs)
{
	struct t_result r = t_decode_fixture(TERN_K8S_SLICE, KUBE_DECODE_LIST,
	                                     "slices_list.json");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=1201 slice kube-system/kube-dns-7xk2p svc=kube-dns trigger=1709284400.000"
		" eps=[10.244.0.2 host=- pod=coredns-5d78c9869d-8xw7q ready=1],"
		"[10.244.0.3 host=- pod=coredns-5d78c9869d-qj2mh ready=1]"
		" ports=dns-tcp/TCP/53,dns/UDP/53,metrics/TCP/9153\n"
		"ADDED rv=17031 slice shop/web-v4-abcde svc=web trigger=1709377327.250"
		" eps=[10.244.1.7 host=web-0 pod=web-0 ready=1],"
		"[10.244.2.9 host=web-1 pod=web-1 ready=0],"
		"[10.244.3.4 host=- pod=web-2 ready=1],"
		"[10.244.3.5 host=- pod=- ready=1] ports=/TCP/8080\n"
		"ADDED rv=17032 slice shop/web-v6-fghij svc=web trigger=0.000"
		" eps=[fd00:10:244:1::7 host=web-0 pod=web-0 ready=1] ports=/TCP/8080\n"
		"ADDED rv=17040 slice shop/manual-ext svc=legacy trigger=0.000 eps= ports=http/TCP/80\n"
		"ADDED rv=17041 slice shop/orphan-xyz svc= trigger=0.000"
		" eps=[10.244.9.9 host=- pod=- ready=1] ports=sctp-port/SCTP/9999\n"
		"ADDED rv=17042 slice shop/empty-q9w8e svc=empty trigger=0.000 eps= ports=\n");
	cr_assert_str_eq(r.list_rv, "18350");
	cr_assert_str_eq(r.list_cont, "");
	free(r.log.buf);
}

Test(decode, namespace_list_gives_names)
{
	struct t_result r = t_decode_fixture(TERN_K8S_NAMESPACE, KUBE_DECODE_LIST,
	                                     "namespaces_list.json");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=41 ns default\n"
		"ADDED rv=5 ns kube-system\n"
		"ADDED rv=16990 ns shop\n"
		"ADDED rv=18001 ns old\n");
	cr_assert_str_eq(r.list_rv, "18360");
	free(r.log.buf);
}

Test(decode, pod_list_marks_finished_and_deleting_pods)
{
	struct t_result r = t_decode_fixture(TERN_K8S_POD, KUBE_DECODE_LIST, "pods_list.json");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=17030 pod shop/web-0 ips=10.244.1.7,fd00:10:244:1::7 finished=0\n"
		"ADDED rv=17500 pod batch/job-x7p2k ips=10.244.2.30 finished=1\n"
		"ADDED rv=17600 pod shop/api-6f7d-abcde ips=10.244.2.31 finished=1\n"
		"ADDED rv=17700 pod shop/pending-1 ips= finished=0\n"
		"ADDED rv=17800 pod shop/old-style ips=10.244.2.40 finished=0\n");
	free(r.log.buf);
}

Test(decode, empty_list_has_no_items_and_a_resource_version)
{
	struct t_result r = t_decode_str(TERN_K8S_SERVICE, KUBE_DECODE_LIST,
		"{\"kind\":\"ServiceList\",\"apiVersion\":\"v1\","
		"\"metadata\":{\"resourceVersion\":\"77\"},\"items\":[]}");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_eq(r.log.items, 0);
	cr_assert_str_eq(r.list_rv, "77");
	free(r.log.buf);
}

Test(decode, metadata_after_items_is_still_read)
{
	struct t_result r = t_decode_str(TERN_K8S_NAMESPACE, KUBE_DECODE_LIST,
		"{\"items\":[{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"3\"}}],"
		"\"metadata\":{\"continue\":\"tok\",\"resourceVersion\":\"9\"}}");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf, "ADDED rv=3 ns a\n");
	cr_assert_str_eq(r.list_rv, "9");
	cr_assert_str_eq(r.list_cont, "tok");
	free(r.log.buf);
}

/* ---- watch streams ---------------------------------------------------------------- */

Test(decode, watch_stream_gives_events_bookmarks_and_410)
{
	struct t_result r = t_decode_fixture(TERN_K8S_SERVICE, KUBE_DECODE_WATCH,
	                                     "watch_services.jsonl");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=18400 svc shop/api clusterip ips=10.96.55.1 ports=grpc/TCP/9000\n"
		"MODIFIED rv=18405 svc shop/api clusterip ips=10.96.55.1"
		" ports=grpc/TCP/9000,http/TCP/80\n"
		"BOOKMARK rv=18410\n"
		"DELETED rv=18412 svc shop/db externalname ips= ext=my.database.example.com ports=\n"
		"ERROR rv= code=410 reason=Expired message=too old resource version: 18000 (18412)\n");
	free(r.log.buf);
}

Test(decode, watch_event_type_may_follow_the_object)
{
	struct t_result r = t_decode_str(TERN_K8S_NAMESPACE, KUBE_DECODE_WATCH,
		"{\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\"}},"
		"\"type\":\"DELETED\"}\n");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf, "DELETED rv=5 ns x\n");
	free(r.log.buf);
}

Test(decode, pod_watch_error_status_is_not_a_pod_status)
{
	/* "status" is a string in a Status object and an object in a Pod. */
	struct t_result r = t_decode_str(TERN_K8S_POD, KUBE_DECODE_WATCH,
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
		"\"metadata\":{},\"status\":\"Failure\",\"message\":\"internal error\","
		"\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":\"x\"}]},"
		"\"code\":500}}\n");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ERROR rv= code=500 reason=InternalError message=internal error\n");
	free(r.log.buf);
}

Test(decode, empty_watch_stream_is_complete)
{
	struct t_result r = t_decode_str(TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	free(r.log.buf);
	r = t_decode_str(TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "\n\r\n ");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_eq(r.log.items, 0);
	free(r.log.buf);
}

Test(decode, deleted_event_needs_only_the_names)
{
	struct t_result r = t_decode_str(TERN_K8S_SERVICE, KUBE_DECODE_WATCH,
		"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
		"\"resourceVersion\":\"8\"},\"spec\":{\"clusterIP\":\"bogus\"}}}\n"
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
		"\"resourceVersion\":\"9\"},\"spec\":{\"clusterIP\":\"bogus\"}}}\n");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"DELETED rv=8 svc n/a clusterip ips= ports=\n"
		"MODIFIED rv=9 INVALID\n");
	free(r.log.buf);
}

/* ---- unusable items: delivered as invalid, the stream goes on ---------------------- */

Test(decode, unusable_items_are_flagged_and_the_stream_goes_on)
{
	struct t_result r = t_decode_str(TERN_K8S_SERVICE, KUBE_DECODE_LIST,
		"{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":["
		"{\"metadata\":{\"name\":\"noip\",\"namespace\":\"a\",\"resourceVersion\":\"1\"},"
		" \"spec\":{\"clusterIP\":\"10.0.0.999\"}},"
		"{\"metadata\":{\"namespace\":\"a\",\"resourceVersion\":\"2\"},\"spec\":{}},"
		"{\"metadata\":{\"name\":\"nons\",\"resourceVersion\":\"3\"},\"spec\":{}},"
		"{\"metadata\":{\"name\":\"three\",\"namespace\":\"a\",\"resourceVersion\":\"4\"},"
		" \"spec\":{\"clusterIPs\":[\"10.0.0.1\",\"fd00::1\",\"10.0.0.2\"]}},"
		"{\"metadata\":{\"name\":\"port0\",\"namespace\":\"a\",\"resourceVersion\":\"5\"},"
		" \"spec\":{\"ports\":[{\"port\":0}]}},"
		"{\"metadata\":{\"name\":\"good\",\"namespace\":\"a\",\"resourceVersion\":\"6\"},"
		" \"spec\":{\"clusterIP\":\"10.0.0.7\"}}]}");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=1 INVALID\n"
		"ADDED rv=2 INVALID\n"
		"ADDED rv=3 INVALID\n"
		"ADDED rv=4 INVALID\n"
		"ADDED rv=5 INVALID\n"
		"ADDED rv=6 svc a/good clusterip ips=10.0.0.7 ports=\n");
	free(r.log.buf);
}

Test(decode, non_ip_address_in_an_ip_slice_is_unusable)
{
	struct t_result r = t_decode_str(TERN_K8S_SLICE, KUBE_DECODE_LIST,
		"{\"items\":[{\"metadata\":{\"name\":\"s\",\"namespace\":\"a\"},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"web.example\"]}]}]}");
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf, "ADDED rv= INVALID\n");
	free(r.log.buf);
}

Test(decode, overlong_name_is_unusable)
{
	char buf[1024];
	char name[300];
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(buf, sizeof(buf), "{\"items\":[{\"metadata\":{\"name\":\"%s\"}}]}", name);
	struct t_result r = t_decode_str(TERN_K8S_NAMESPACE, KUBE_DECODE_LIST, buf);
	cr_assert_eq(r.finish_rc, 0, "%s", r.error);
	cr_assert_str_eq(r.log.buf, "ADDED rv= INVALID\n");
	free(r.log.buf);
}

/* ---- broken streams --------------------------------------------------------------- */

struct t_bad {
	enum tern_k8s_kind kind;
	enum kube_decode_mode mode;
	const char *input;
};

static const struct t_bad t_bad_cases[] = {
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "this is not json" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "<html><body>502 Bad Gateway</body></html>" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "[1,2,3]" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "42" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":{}}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":5}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[7]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"metadata\":[]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"metadata\":{\"resourceVersion\":5}}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[{\"metadata\":{\"name\":5}}]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[{\"metadata\":{\"name\":{}}}]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST,
	  "{\"items\":[{\"spec\":{\"ports\":[{\"port\":\"80\"}]}}]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST,
	  "{\"items\":[{\"spec\":{\"ports\":[{\"port\":80.5}]}}]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[{\"spec\":{\"clusterIPs\":\"x\"}}]}" },
	{ TERN_K8S_SLICE, KUBE_DECODE_LIST,
	  "{\"items\":[{\"endpoints\":[{\"conditions\":{\"ready\":\"yes\"}}]}]}" },
	{ TERN_K8S_SLICE, KUBE_DECODE_LIST, "{\"items\":[{\"endpoints\":{}}]}" },
	{ TERN_K8S_POD, KUBE_DECODE_LIST, "{\"items\":[{\"status\":{\"podIPs\":[\"1.2.3.4\"]}}]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[]} {\"items\":[]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[]}}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "{\"items\":[\"\xff\xfe\"]}" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_LIST, "" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\"}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"object\":{}}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":\"EXPLODED\",\"object\":{}}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\",\"object\":[]}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\",\"object\":\"x\"}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":7,\"object\":{}}\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "[]\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "\"ADDED\"\n" },
	{ TERN_K8S_SERVICE, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\",\"object\":{}}\ngarbage\n" },
};

Test(decode, garbage_and_wrong_shapes_break_the_stream)
{
	for (size_t i = 0; i < sizeof(t_bad_cases) / sizeof(t_bad_cases[0]); i++) {
		const struct t_bad *c = &t_bad_cases[i];
		struct t_result r = t_decode_str(c->kind, c->mode, c->input);
		bool broken = r.feed_rc == TERN_EINVAL || r.finish_rc == TERN_EINVAL;
		cr_assert(broken, "case %zu (%s): accepted", i, c->input);
		cr_assert_eq(r.finish_rc, TERN_EINVAL, "case %zu (%s)", i, c->input);
		cr_assert_neq(r.error[0], '\0', "case %zu has no error text", i);
		free(r.log.buf);
	}
}

Test(decode, truncated_list_is_an_error_at_every_cut)
{
	size_t len;
	char *buf = t_read("slices_list.json", &len);
	struct t_result whole = t_decode(TERN_K8S_SLICE, KUBE_DECODE_LIST, buf, len, T_WHOLE, 0);
	/* Cut anywhere before the closing brace (trailing newline aside): an error, and every
	 * item delivered is a whole one the full decode also delivered. */
	size_t end = len;
	while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == ' '))
		end--;
	for (size_t cut = 0; cut < end; cut += 7) {
		struct t_result r = t_decode(TERN_K8S_SLICE, KUBE_DECODE_LIST, buf, cut, T_WHOLE, 0);
		cr_assert_eq(r.finish_rc, TERN_EINVAL, "cut at %zu accepted", cut);
		cr_assert(strncmp(whole.log.buf, r.log.buf, r.log.len) == 0,
		          "cut at %zu delivered something else", cut);
		cr_assert(r.log.len == 0 || r.log.buf[r.log.len - 1] == '\n');
		free(r.log.buf);
	}
	free(whole.log.buf);
	free(buf);
}

Test(decode, truncated_watch_event_is_not_delivered)
{
	size_t len;
	char *buf = t_read("watch_services.jsonl", &len);
	const char *second = strchr(buf, '\n') + 1;
	size_t cut = (size_t)(second - buf) + 100;   /* inside the MODIFIED event */
	struct t_result r = t_decode(TERN_K8S_SERVICE, KUBE_DECODE_WATCH, buf, cut, T_BYTES, 0);
	cr_assert_eq(r.feed_rc, 0);
	cr_assert_eq(r.finish_rc, TERN_EINVAL);
	cr_assert_str_eq(r.log.buf,
		"ADDED rv=18400 svc shop/api clusterip ips=10.96.55.1 ports=grpc/TCP/9000\n");
	free(r.log.buf);
	free(buf);
}

Test(decode, callback_can_stop_the_stream)
{
	size_t len;
	char *buf = t_read("watch_services.jsonl", &len);
	struct t_log log = { .stop_after = 2 };
	struct kube_decoder *d = kube_decode_new(TERN_K8S_SERVICE, t_collect, &log);
	cr_assert_eq(kube_decode_begin(d, KUBE_DECODE_WATCH), 0);
	cr_assert_eq(kube_decode_feed(d, buf, len), -1);
	cr_assert_eq(kube_decode_feed(d, "\n", 1), -1);
	cr_assert_eq(kube_decode_finish(d), -1);
	cr_assert_eq(log.items, 2);
	/* The decoder is reusable for the next response. */
	log = (struct t_log){ .buf = log.buf, .cap = log.cap };
	cr_assert_eq(kube_decode_begin(d, KUBE_DECODE_WATCH), 0);
	cr_assert_eq(kube_decode_feed(d, buf, len), 0);
	cr_assert_eq(kube_decode_finish(d), 0);
	cr_assert_eq(log.items, 5);
	kube_decode_free(d);
	free(log.buf);
	free(buf);
}

Test(decode, mutated_fixtures_never_crash)
{
	static const struct {
		const char *file;
		enum tern_k8s_kind kind;
		enum kube_decode_mode mode;
	} files[] = {
		{ "services_list.json", TERN_K8S_SERVICE, KUBE_DECODE_LIST },
		{ "slices_list.json", TERN_K8S_SLICE, KUBE_DECODE_LIST },
		{ "pods_list.json", TERN_K8S_POD, KUBE_DECODE_LIST },
		{ "watch_services.jsonl", TERN_K8S_SERVICE, KUBE_DECODE_WATCH },
	};
	unsigned seed = 12345;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *orig = t_read(files[f].file, &len);
		char *buf = malloc(len);
		for (int round = 0; round < 300; round++) {
			memcpy(buf, orig, len);
			int flips = 1 + rand_r(&seed) % 4;
			for (int k = 0; k < flips; k++)
				buf[rand_r(&seed) % len] = "{}[]\":,0a\\ \x80n"[rand_r(&seed) % 14];
			struct t_result r = t_decode(files[f].kind, files[f].mode, buf, len,
			                             T_RANDOM, seed);
			/* Whatever happened, every delivered line is complete. */
			cr_assert(r.log.len == 0 || r.log.buf[r.log.len - 1] == '\n');
			free(r.log.buf);
		}
		free(buf);
		free(orig);
	}
}

/* ---- memory ----------------------------------------------------------------------- */

struct t_counter {
	unsigned items;
};

static int t_count(void *ctx, const struct kube_item *it)
{
	struct t_counter *c = ctx;
	cr_assert(it->valid);
	cr_assert_eq(it->service.nports, 2);
	c->items++;
	return 0;
}

Test(decode, memory_does_not_grow_with_the_list)
{
	struct t_counter cnt = { 0 };
	struct kube_decoder *d = kube_decode_new(TERN_K8S_SERVICE, t_count, &cnt);
	cr_assert_eq(kube_decode_begin(d, KUBE_DECODE_LIST), 0);
	const char *head = "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"1\"},"
	                   "\"items\":[";
	cr_assert_eq(kube_decode_feed(d, head, strlen(head)), 0);
	size_t after_first = 0, fed = 0;
	char item[1024];
	for (unsigned i = 0; i < 50000; i++) {
		int n = snprintf(item, sizeof(item),
			"%s{\"metadata\":{\"name\":\"svc-%u\",\"namespace\":\"ns-%u\","
			"\"resourceVersion\":\"%u\",\"labels\":{\"app\":\"a%u\"}},"
			"\"spec\":{\"clusterIP\":\"10.%u.%u.%u\",\"ports\":[{\"name\":\"http\","
			"\"protocol\":\"TCP\",\"port\":80},{\"name\":\"https\",\"protocol\":\"TCP\","
			"\"port\":443}],\"selector\":{\"app\":\"a%u\"}}}",
			i ? "," : "", i, i % 1000, i, i, (i >> 16) & 255, (i >> 8) & 255, i & 255, i);
		cr_assert_eq(kube_decode_feed(d, item, (size_t)n), 0);
		fed += (size_t)n;
		if (i == 0)
			after_first = kube_decode_footprint(d);
	}
	cr_assert_eq(kube_decode_feed(d, "]}", 2), 0);
	cr_assert_eq(kube_decode_finish(d), 0);
	cr_assert_eq(cnt.items, 50000);
	cr_assert_gt(fed, 10u << 20);
	cr_assert_eq(kube_decode_footprint(d), after_first,
	             "footprint grew from %zu to %zu", after_first, kube_decode_footprint(d));
	cr_assert_lt(after_first, 16384u);
	kube_decode_free(d);
}
