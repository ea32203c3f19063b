/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /metrics, /health and /ready over libmicrohttpd (see http.h). Endpoints with equal
 * addresses are grouped into one MHD daemon whose access handler knows which paths it
 * serves; anything else is 404, methods other than GET/HEAD are 405. Handlers read
 * the runtime view (and /metrics the cluster sources' snapshots, lib/cluster/source.h)
 * through RCU roots: each MHD thread registers with QSBR the first
 * time it needs to (a pthread key unregisters it when the thread exits), goes offline
 * at once, and is online only around each read so it never stalls a grace period.
 */
#include "daemon/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "lib/cluster/source.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"
#include "lib/engine/view.h"

enum {
	PATH_METRICS = 1u << 0,
	PATH_HEALTH  = 1u << 1,
	PATH_READY   = 1u << 2,
};

#define HTTP_MAX_ENDPOINTS  3
#define HTTP_CONN_LIMIT     1024 /* idle clients must not starve kubelet probes */
#define HTTP_CONN_TIMEOUT_S 10
#define METRICS_CTYPE       "text/plain; version=0.0.4; charset=utf-8"
#define PLUGIN_ENABLED_HEAD \
	"# HELP coredns_plugin_enabled A metric that indicates whether a plugin is enabled " \
	"on per server and zone basis.\n# TYPE coredns_plugin_enabled gauge\n"

struct endpoint {
	struct MHD_Daemon *mhd;
	struct sockaddr_storage addr;
	unsigned paths;
};

/* Daemon-owned counters rendered into every scrape (http_set_extra_metrics). */
static void (*extra_metrics)(FILE *out);

void http_set_extra_metrics(void (*fn)(FILE *out))
{
	extra_metrics = fn;
}

static struct endpoint endpoints[HTTP_MAX_ENDPOINTS];
static size_t nendpoints;
static bool draining; /* atomic */

static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t rcu_key;
static __thread bool rcu_registered;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	tern_rcu_unregister();
}

static void rcu_key_create(void)
{
	if (pthread_key_create(&rcu_key, rcu_thread_exit) != 0)
		tern_err("http: no thread key for RCU registration");
}

/* Make this MHD thread an online QSBR reader; pair with tern_rcu_offline(). */
static void reader_enter(void)
{
	if (!rcu_registered) {
		pthread_once(&rcu_key_once, rcu_key_create);
		tern_rcu_register();
		tern_rcu_offline();
		/* A non-NULL value makes the destructor run at thread exit. */
		pthread_setspecific(rcu_key, (void *)1);
		rcu_registered = true;
	}
	tern_rcu_online();
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The presentation form of a route's zone, from its server block when possible. */
static const char *zone_str(const struct tern_route *r, char *buf, size_t len)
{
	for (size_t z = 0; z < r->server->nzones; z++) {
		if (r->server->zones[z] == r->zone)
			return r->server->zone_strs[z];
	}
	return knot_dname_to_str(buf, r->zone, len) ? buf : "";
}

/*
 * coredns_plugin_enabled{server,zone,view,name} 1 for every plugin in the chain of
 * every (listen address, zone) the view routes. Call online.
 */
static void render_plugins_enabled(FILE *out, const struct tern_view *v)
{
	bool head = false;
	for (size_t li = 0; li < v->nlistens; li++) {
		const struct tern_listen_routes *lr = &v->listens[li];
		char addr[TERN_ADDR_STRLEN];
		if (tern_addr_str(&lr->addr, addr, sizeof(addr)) != 0)
			continue;
		for (size_t ri = 0; ri < lr->nroutes; ri++) {
			const struct tern_route *r = &lr->routes[ri];
			bool dup = false; /* a zone shadowed on this address: same labels */
			for (size_t prev = 0; prev < ri && !dup; prev++)
				dup = knot_dname_is_equal(lr->routes[prev].zone, r->zone);
			if (dup)
				continue;
			char zbuf[KNOT_DNAME_TXT_MAXLEN + 1];
			const char *zone = zone_str(r, zbuf, sizeof(zbuf));
			for (size_t p = 0; p < r->server->chain_len; p++) {
				if (!head) {
					fputs(PLUGIN_ENABLED_HEAD, out);
					head = true;
				}
				fprintf(out, "coredns_plugin_enabled{server=\"dns://%s\",zone=\"",
				        addr);
				tern_stats_put_label(out, zone);
				fputs("\",view=\"\",name=\"", out);
				tern_stats_put_label(out, r->server->chain[p].plugin->name);
				fputs("\"} 1\n", out);
			}
		}
	}
}

static enum MHD_Result serve_metrics(struct MHD_Connection *conn)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!out)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	tern_stats_render(out);   /* offline: takes the stats registry mutex */
	if (extra_metrics)
		extra_metrics(out);
	reader_enter();
	const struct tern_view *v = TERN_RCU_DEREF(tern_view_root);
	if (v) {
		render_plugins_enabled(out, v);
		for (size_t p = 0; p < tern_plugins_count; p++) {
			if (tern_plugins[p]->metrics)
				tern_plugins[p]->metrics(out, v, (unsigned)p);
		}
	}
	tern_cluster_sources_render(out);   /* online: reads each source's snapshot */
	tern_rcu_offline();
	if (fclose(out) != 0) {
		free(buf);
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf,
	                                                            MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CTYPE);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result serve_ready(struct MHD_Connection *conn)
{
	if (__atomic_load_n(&draining, __ATOMIC_RELAXED))
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "draining");
	char names[512];
	bool ready = false, have_view = false;
	reader_enter();
	const struct tern_view *v = TERN_RCU_DEREF(tern_view_root);
	if (v) {
		have_view = true;
		ready = tern_view_ready(v, names, sizeof(names));
	}
	tern_rcu_offline();
	if (!have_view)
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "starting");
	if (!ready)
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, names);
	return reply(conn, MHD_HTTP_OK, "OK");
}

static unsigned path_bit(const char *url)
{
	if (strcmp(url, "/metrics") == 0)
		return PATH_METRICS;
	if (strcmp(url, "/health") == 0)
		return PATH_HEALTH;
	if (strcmp(url, "/ready") == 0)
		return PATH_READY;
	return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
	(void)version;
	(void)upload_data;
	(void)con_cls;
	const struct endpoint *ep = cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	*upload_data_size = 0; /* a GET with a body: the body is ignored */
	unsigned path = url ? path_bit(url) : 0;
	if (!(path & ep->paths))
		return reply(conn, MHD_HTTP_NOT_FOUND, "404 page not found\n");
	switch (path) {
	case PATH_METRICS:
		return serve_metrics(conn);
	case PATH_READY:
		return serve_ready(conn);
	default:
		return reply(conn, MHD_HTTP_OK, "OK");
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	tern_warn("http: %s", line);
}

/* Add @p hc (if configured) to the endpoint with its address, or a new one. */
static void add_endpoint(const struct tern_http_conf *hc, unsigned path)
{
	if (!hc)
		return;
	for (size_t i = 0; i < nendpoints; i++) {
		if (addr_equal(&endpoints[i].addr, &hc->addr)) {
			endpoints[i].paths |= path;
			return;
		}
	}
	endpoints[nendpoints++] = (struct endpoint) { .addr = hc->addr, .paths = path };
}

int http_start(const struct tern_conf *conf)
{
	http_stop();
	add_endpoint(conf->metrics, PATH_METRICS);
	add_endpoint(conf->health, PATH_HEALTH);
	add_endpoint(conf->ready, PATH_READY);
	for (size_t i = 0; i < nendpoints; i++) {
		struct endpoint *ep = &endpoints[i];
		char addr[TERN_ADDR_STRLEN] = "?";
		tern_addr_str(&ep->addr, addr, sizeof(addr));
		unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
		if (ep->addr.ss_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		errno = 0;
		ep->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, ep,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first, or MHD warns */
			MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ep->addr,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_S,
			MHD_OPTION_END);
		if (!ep->mhd) {
			int err = errno ? -errno : TERN_EINVAL;
			tern_err("http: cannot listen on %s (%s)", addr, tern_strerror(err));
			http_stop();
			return err;
		}
		tern_info("http: listening on %s for%s%s%s", addr,
		          ep->paths & PATH_METRICS ? " /metrics" : "",
		          ep->paths & PATH_HEALTH ? " /health" : "",
		          ep->paths & PATH_READY ? " /ready" : "");
	}
	return 0;
}

void http_set_draining(bool on)
{
	__atomic_store_n(&draining, on, __ATOMIC_RELAXED);
}

void http_stop(void)
{
	for (size_t i = 0; i < nendpoints; i++) {
		if (endpoints[i].mhd)
			MHD_stop_daemon(endpoints[i].mhd);
	}
	memset(endpoints, 0, sizeof(endpoints));
	nendpoints = 0;
}
