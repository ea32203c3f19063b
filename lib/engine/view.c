/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Building, routing and freeing the runtime view (view.h), and the plugin registry.
 * Build and free run on the loader thread; tern_view_route runs on workers.
 */
#include "lib/engine/view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/core/rcu.h"
#include "lib/core/stats.h"
#include "lib/dns/name.h"

#define TERN_PLUGIN_X(name) extern const struct tern_plugin tern_plugin_##name;
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X

const struct tern_plugin *const tern_plugins[] = {
#define TERN_PLUGIN_X(name) &tern_plugin_##name,
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X
};
const size_t tern_plugins_count = sizeof(tern_plugins) / sizeof(tern_plugins[0]);

struct tern_view *tern_view_root;

/* The conf pointers of a plugins mapping, in registry order. */
static void plugin_confs(const struct tern_plugins_conf *pc, const void **out)
{
	size_t i = 0;
#define TERN_PLUGIN_X(name) out[i++] = pc->name;
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X
}

static int build_server(struct tern_server *srv, unsigned index, const struct tern_server_conf *sc,
                        const char *config_dir, struct tern_diag *diag)
{
	srv->index = index;
	srv->nzones = sc->zones_count;
	srv->zones = calloc(sc->zones_count, sizeof(*srv->zones));
	srv->zone_strs = calloc(sc->zones_count, sizeof(*srv->zone_strs));
	srv->chain = calloc(tern_plugins_count, sizeof(*srv->chain));
	if (!srv->zones || !srv->zone_strs || !srv->chain)
		return TERN_ENOMEM;
	for (size_t i = 0; i < sc->zones_count; i++) {
		srv->zone_strs[i] = strdup(sc->zones[i]);
		srv->zones[i] = knot_dname_from_str_alloc(sc->zones[i]);
		if (!srv->zone_strs[i] || !srv->zones[i])
			return TERN_ENOMEM;
		knot_dname_to_lower(srv->zones[i]);
	}

	const void *confs[tern_plugins_count];
	plugin_confs(sc->plugins, confs);
	struct tern_plugin_env env = {
		.zones = (const char *const *)srv->zone_strs,
		.nzones = srv->nzones,
		.config_dir = config_dir,
	};
	int result = 0;
	for (size_t p = 0; p < tern_plugins_count; p++) {
		if (!confs[p])
			continue;
		struct tern_plugin_inst *pi = &srv->chain[srv->chain_len];
		pi->plugin = tern_plugins[p];
		pi->plugin_id = (unsigned)p;
		tern_diag_set_prefix(diag, "servers[%u].plugins.%s", index, pi->plugin->name);
		int ret = pi->plugin->init ? pi->plugin->init(pi, confs[p], &env, diag) : 0;
		if (ret != 0) {
			if (!tern_diag_failed(diag))
				tern_diag_error(diag, "", "%s", tern_strerror(ret));
			result = TERN_ECONFIG;
			continue;
		}
		srv->chain_len++;
	}
	return result;
}

static int route_cmp(const void *a, const void *b)
{
	const struct tern_route *x = a, *y = b;
	return (int)y->labels - (int)x->labels;
}

/* Process-wide listen indexes: an address keeps its index across reloads. Loader. */
static struct sockaddr_storage listen_registry[TERN_VIEW_MAX_LISTENS];
static size_t listen_registry_len;

static int listen_index(const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < listen_registry_len; i++) {
		if (tern_addr_equal(&listen_registry[i], ss))
			return (int)i;
	}
	if (listen_registry_len == TERN_VIEW_MAX_LISTENS)
		return -1;
	listen_registry[listen_registry_len] = *ss;
	return (int)listen_registry_len++;
}

static int build_routes(struct tern_view *v, const struct tern_conf *conf, struct tern_diag *diag)
{
	for (unsigned s = 0; s < conf->servers_count; s++) {
		for (unsigned l = 0; l < conf->servers[s].listen_count; l++) {
			if (listen_index(&conf->servers[s].addrs[l]) < 0) {
				tern_diag_set_prefix(diag, "servers[%u]", s);
				tern_diag_error(diag, "listen", "more than %d distinct listen "
				                "addresses over the life of ternd", TERN_VIEW_MAX_LISTENS);
				return TERN_ECONFIG;
			}
		}
	}
	v->nlistens = listen_registry_len;
	v->listens = calloc(v->nlistens ? v->nlistens : 1, sizeof(*v->listens));
	if (!v->listens)
		return TERN_ENOMEM;
	for (size_t li = 0; li < v->nlistens; li++)
		v->listens[li].addr = listen_registry[li];
	for (unsigned s = 0; s < conf->servers_count; s++) {
		const struct tern_server_conf *sc = &conf->servers[s];
		for (unsigned l = 0; l < sc->listen_count; l++) {
			struct tern_listen_routes *lr = &v->listens[listen_index(&sc->addrs[l])];
			lr->active = true;
			struct tern_route *r = realloc(lr->routes,
				(lr->nroutes + sc->zones_count) * sizeof(*r));
			if (!r)
				return TERN_ENOMEM;
			lr->routes = r;
			char addr[80], server[96];
			tern_addr_str(&lr->addr, addr, sizeof(addr));
			snprintf(server, sizeof(server), "dns://%s", addr);
			const struct tern_server *srv = &v->servers[s];
			for (size_t z = 0; z < srv->nzones; z++) {
				r[lr->nroutes++] = (struct tern_route) {
					.zone = srv->zones[z],
					.server = srv,
					.stats_slot = tern_stats_slot(server, srv->zone_strs[z]),
					.labels = (unsigned)knot_dname_labels(srv->zones[z], NULL),
					.len = (unsigned)tern_name_len(srv->zones[z]),
				};
			}
		}
	}
	for (size_t li = 0; li < v->nlistens; li++) {
		if (v->listens[li].nroutes > 1)   /* inactive addresses have no routes (NULL) */
			qsort(v->listens[li].routes, v->listens[li].nroutes,
			      sizeof(struct tern_route), route_cmp);
	}
	return 0;
}

int tern_view_build(struct tern_conf *conf, struct tern_diag *diag, struct tern_view **out)
{
	struct tern_view *v = calloc(1, sizeof(*v));
	if (!v) {
		tern_conf_free(conf);
		return TERN_ENOMEM;
	}
	v->conf = conf;
	v->servers = calloc(conf->servers_count ? conf->servers_count : 1, sizeof(*v->servers));
	if (!v->servers)
		goto nomem;
	int result = 0;
	for (unsigned s = 0; s < conf->servers_count; s++) {
		v->nservers = s + 1;
		int ret = build_server(&v->servers[s], s, &conf->servers[s], conf->dir, diag);
		if (ret == TERN_ENOMEM)
			goto nomem;
		if (ret != 0)
			result = ret;
	}
	if (result != 0) {
		tern_view_free(v);
		return result;
	}
	result = build_routes(v, conf, diag);
	if (result == TERN_ENOMEM)
		goto nomem;
	if (result != 0) {
		tern_view_free(v);
		return result;
	}
	static uint64_t generation;
	v->generation = ++generation;
	*out = v;
	return 0;
nomem:
	tern_view_free(v);
	return TERN_ENOMEM;
}

void tern_view_free(struct tern_view *v)
{
	if (!v)
		return;
	for (size_t s = 0; s < v->nservers; s++) {
		struct tern_server *srv = &v->servers[s];
		for (size_t p = 0; p < srv->chain_len; p++) {
			struct tern_plugin_inst *pi = &srv->chain[p];
			if (pi->plugin->deinit)
				pi->plugin->deinit(pi);
		}
		for (size_t z = 0; z < srv->nzones; z++) {
			if (srv->zones)
				free(srv->zones[z]);
			if (srv->zone_strs)
				free(srv->zone_strs[z]);
		}
		free(srv->zones);
		free(srv->zone_strs);
		free(srv->chain);
	}
	for (size_t li = 0; li < v->nlistens; li++)
		free(v->listens[li].routes);
	free(v->listens);
	free(v->servers);
	tern_conf_free(v->conf);
	free(v);
}

const struct tern_route *tern_view_route(const struct tern_view *v, unsigned li,
                                         const knot_dname_t *qname, size_t qname_len)
{
	if (li >= v->nlistens)
		return NULL;
	const struct tern_listen_routes *lr = &v->listens[li];
	for (size_t i = 0; i < lr->nroutes; i++) {
		const struct tern_route *r = &lr->routes[i];
		if (tern_name_is_under_n(qname, qname_len, r->zone, r->len))
			return r;
	}
	return NULL;
}

bool tern_view_ready(const struct tern_view *v, char *buf, size_t len)
{
	bool ready = true;
	size_t used = 0;
	if (len)
		buf[0] = '\0';
	for (size_t s = 0; s < v->nservers; s++) {
		const struct tern_server *srv = &v->servers[s];
		for (size_t p = 0; p < srv->chain_len; p++) {
			const struct tern_plugin_inst *pi = &srv->chain[p];
			if (!pi->plugin->ready || pi->plugin->ready(pi))
				continue;
			ready = false;
			if (used < len) {
				int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
				                 pi->plugin->name);
				if (n > 0)
					used += (size_t)n;
			}
		}
	}
	return ready;
}

void tern_view_maintain(struct tern_view *v)
{
	for (size_t s = 0; s < v->nservers; s++) {
		struct tern_server *srv = &v->servers[s];
		for (size_t p = 0; p < srv->chain_len; p++) {
			struct tern_plugin_inst *pi = &srv->chain[p];
			if (pi->plugin->maintain)
				pi->plugin->maintain(pi);
		}
	}
}
