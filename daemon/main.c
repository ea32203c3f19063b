/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ternd: the Tern DNS server. Loads and checks the config, publishes the first
 * runtime view, starts the workers and the HTTP endpoints, then runs the control loop
 * on the main thread: SIGHUP reloads (the new view is built and checked completely
 * before it is swapped in through RCU), SIGTERM/SIGINT drain for the health lameduck
 * time and exit, and once a second the plugins' maintain hooks reload changed files.
 * Thread: main (the loader: the only writer of the view root).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/signalfd.h>

#include "daemon/http.h"
#include "daemon/listener.h"
#include "daemon/upstream.h"
#include "daemon/worker.h"
#include "kube/kube.h"
#include "lib/cluster/source.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"
#include "lib/engine/conf.h"
#include "lib/engine/view.h"

/* The running workers, for the io layer's counters on /metrics (valid until http_stop). */
static struct worker **running_workers;
static unsigned running_nworkers;

/* coredns_proxy_conn_cache_{hits,misses}_total, summed over workers by upstream. */
struct conn_rows {
	struct sockaddr_storage addr[TERN_VIEW_MAX_LISTENS * 4];
	uint64_t conn[TERN_VIEW_MAX_LISTENS * 4][2][3];
	size_t n;
};

static void add_conn_row(const struct sockaddr_storage *addr, const uint64_t conn[2][3],
                         void *ctx)
{
	struct conn_rows *rows = ctx;
	size_t i = 0;
	while (i < rows->n && !tern_addr_equal(&rows->addr[i], addr))
		i++;
	if (i == rows->n) {
		if (rows->n == TERN_ARRAY_LEN(rows->addr))
			return;
		rows->addr[rows->n++] = *addr;
	}
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned p = 0; p < 3; p++)
			rows->conn[i][k][p] += conn[k][p];
	}
}

static void render_conn_cache(FILE *out)
{
	static const char *const names[2] = { "hits", "misses" };
	static const char *const protos[3] = { "udp", "tcp", "tcp-tls" };
	struct conn_rows *rows = calloc(1, sizeof(*rows));
	if (!rows)
		return;
	for (unsigned i = 0; i < running_nworkers; i++) {
		if (running_workers[i] && running_workers[i]->io)
			upstream_conn_stats_read(running_workers[i]->io, add_conn_row, rows);
	}
	for (unsigned k = 0; k < 2; k++) {
		fprintf(out, "# HELP coredns_proxy_conn_cache_%s_total Counter of connection cache "
		        "%s per upstream and protocol.\n# TYPE coredns_proxy_conn_cache_%s_total "
		        "counter\n", names[k], names[k], names[k]);
		for (size_t i = 0; i < rows->n; i++) {
			char to[80];
			tern_addr_str(&rows->addr[i], to, sizeof(to));
			for (unsigned p = 0; p < 3; p++) {
				if (rows->conn[i][0][p] + rows->conn[i][1][p] == 0)
					continue;
				fprintf(out, "coredns_proxy_conn_cache_%s_total{proxy_name=\"forward\","
				        "to=\"%s\",proto=\"%s\"} %llu\n", names[k], to, protos[p],
				        (unsigned long long)rows->conn[i][k][p]);
			}
		}
	}
	free(rows);
}

static void render_upstream_metrics(FILE *out)
{
	render_conn_cache(out);
	uint64_t sum[UPSTREAM_COUNTER_COUNT] = { 0 };
	for (unsigned i = 0; i < running_nworkers; i++) {
		if (running_workers[i] && running_workers[i]->io)
			upstream_stats_read(running_workers[i]->io, sum);
	}
	for (unsigned c = 0; c < UPSTREAM_COUNTER_COUNT; c++) {
		const char *name = upstream_counter_names[c];
		fprintf(out, "# HELP tern_upstream_%s_total Upstream queries (forward): %s, "
		        "all workers.\n# TYPE tern_upstream_%s_total counter\n"
		        "tern_upstream_%s_total %llu\n", name, name, name, name,
		        (unsigned long long)sum[c]);
	}
}

static const struct worker_tcp_limits tcp_limits = {
	.max_conns = 1024,
	.max_per_client = 64,
	.idle_ms = 10000,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ternd --config FILE     serve DNS as FILE says\n"
		"       ternd --check-config FILE\n"
		"                               check FILE, print every problem, exit 0 if valid\n"
		"       ternd --version\n"
		"Options: -v, --verbose (debug log)\n");
}

static void print_diag(const struct tern_diag *d)
{
	for (size_t i = 0; i < d->nmsgs; i++)
		fprintf(stderr, "%s\n", d->msgs[i]);
}

/* Load @p path into a complete view. Problems are printed. */
static int load_view(const char *path, struct tern_view **out)
{
	struct tern_diag diag;
	tern_diag_init(&diag, path);
	struct tern_conf *conf = NULL;
	int ret = tern_conf_load_file(path, &diag, &conf);
	if (ret == 0)
		ret = tern_view_build(conf, &diag, out);
	if (ret != 0 && !tern_diag_failed(&diag))
		tern_diag_raw(&diag, "%s: %s", path, tern_strerror(ret));
	print_diag(&diag);
	tern_diag_deinit(&diag);
	return ret;
}

static bool http_conf_equal(const struct tern_http_conf *a, const struct tern_http_conf *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a->listen, b->listen) == 0;
}

/*
 * Check that every address @p new listens on and @p old does not can be bound, so that
 * workers (which open them when they see the new view) will not fail.
 */
static const char *new_listens_unbindable(const struct tern_view *old, const struct tern_view *new)
{
	static char why[160];
	for (size_t li = 0; li < new->nlistens; li++) {
		if (!new->listens[li].active || (li < old->nlistens && old->listens[li].active))
			continue;
		bool pktinfo;
		int u = listener_udp_open(&new->listens[li].addr, &pktinfo);
		int t = u >= 0 ? listener_tcp_open(&new->listens[li].addr) : u;
		if (u >= 0)
			close(u);
		if (t >= 0)
			close(t);
		if (t < 0) {
			char addr[80];
			tern_addr_str(&new->listens[li].addr, addr, sizeof(addr));
			snprintf(why, sizeof(why), "cannot listen on %s (%s)", addr, strerror(-t));
			return why;
		}
	}
	return NULL;
}

/* Boot settings (threads, HTTP endpoints) cannot change on reload. */
static const char *boot_change(const struct tern_view *old, const struct tern_view *new)
{
	const char *why = new_listens_unbindable(old, new);
	if (why)
		return why;
	if (old->conf->nworkers != new->conf->nworkers)
		return "workers changed (needs a restart)";
	if (old->conf->hot_entries != new->conf->hot_entries)
		return "hot_answers changed (needs a restart)";
	if (!http_conf_equal(old->conf->metrics, new->conf->metrics) ||
	    !http_conf_equal(old->conf->health, new->conf->health) ||
	    !http_conf_equal(old->conf->ready, new->conf->ready))
		return "metrics/health/ready listen changed (needs a restart)";
	return NULL;
}

/* One Kubernetes watcher per cluster source in use; none for sources no longer used. */
static void sync_watchers(void)
{
	int ret = kube_sync();
	if (ret != 0)
		tern_err("kubernetes, a watcher did not start (%s), retrying at the next reload",
		         tern_strerror(ret));
}

static void reload(const char *path)
{
	tern_info("reload, reading %s", path);
	struct tern_view *next = NULL;
	if (load_view(path, &next) != 0) {
		tern_err("reload, %s is invalid, keeping the running config", path);
		tern_stats_reload_failed();
		tern_cluster_sources_reap(kube_stop_watcher);   /* sources only the failed view asked for */
		return;
	}
	const char *why = boot_change(tern_view_root, next);
	if (why) {
		tern_err("reload, %s, keeping the running config", why);
		tern_stats_reload_failed();
		tern_view_free(next);
		tern_cluster_sources_reap(kube_stop_watcher);
		return;
	}
	struct tern_view *old = TERN_RCU_XCHG(&tern_view_root, next);
	tern_rcu_synchronize();
	tern_view_free(old);
	sync_watchers();
	tern_info("reload, done");
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int serve(const char *path)
{
	struct tern_view *view = NULL;
	if (load_view(path, &view) != 0)
		return 1;

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	TERN_RCU_SET(&tern_view_root, view);
	unsigned n = view->conf->nworkers;
	struct worker **workers = calloc(n, sizeof(*workers));
	int rc = 1;
	if (sfd < 0 || !workers)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		int ret = worker_new(i, view, &tcp_limits, view->conf->hot_entries, &workers[i]);
		if (ret != 0) {
			tern_err("worker %u, start failed (%s)", i, strerror(-ret));
			goto out;
		}
	}
	running_workers = workers;
	running_nworkers = n;
	http_set_extra_metrics(render_upstream_metrics);
	if (http_start(view->conf) != 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (worker_start(workers[i]) != 0) {
			tern_err("worker %u, thread start failed", i);
			goto out;
		}
	}
	sync_watchers();
	tern_info("ternd %s, serving with %u workers (config %s)", TERN_VERSION, n, path);

	for (;;) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		int pr = poll(&pfd, 1, 1000);
		if (pr == 0) {
			tern_view_maintain(tern_view_root);
			continue;
		}
		struct signalfd_siginfo si;
		if (pr < 0 || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			reload(path);
			continue;
		}
		break;
	}
	const struct tern_http_conf *health = tern_view_root->conf->health;
	uint64_t lameduck = health ? health->lameduck_ms : 0;
	tern_info("shutdown, draining for %llu ms", (unsigned long long)lameduck);
	http_set_draining(true);
	sleep_ms(lameduck);
	rc = 0;
out:
	http_stop();   /* first: a scrape reads the workers' io counters */
	for (unsigned i = 0; workers && i < n; i++)
		worker_stop(workers[i]);
	kube_stop_all();
	free(workers);
	if (sfd >= 0)
		close(sfd);
	tern_view_free(TERN_RCU_XCHG(&tern_view_root, NULL));
	tern_cluster_sources_reap(kube_stop_watcher);
	tern_info("shutdown, done");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config",       required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "version",      no_argument,       NULL, 'V' },
		{ "verbose",      no_argument,       NULL, 'v' },
		{ "help",         no_argument,       NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *check = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "c:C:Vvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'C': check = optarg; break;
		case 'V': printf("ternd %s\n", TERN_VERSION); return 0;
		case 'v': tern_log_level = TERN_LOG_DEBUG; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!config == !check)) {
		usage(stderr);
		return 2;
	}
	if (check) {
		struct tern_view *view = NULL;
		int ret = load_view(check, &view);
		tern_view_free(view);
		tern_cluster_sources_reap(kube_stop_watcher);
		if (ret != 0)
			return 1;
		printf("%s: OK\n", check);
		return 0;
	}
	return serve(config);
}
