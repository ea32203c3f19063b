/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime view: everything the workers need from the config (server blocks, their
 * zones and plugin chains, query routing per listen address), built from a checked
 * tern_conf by the loader and published through one RCU root. A reload builds a new
 * view completely, publishes it, waits for a grace period and frees the old one, so
 * queries keep flowing and never see half a config.
 *
 * Every distinct listen address gets a process-wide "listen index" the first time a
 * view names it, and keeps it for the life of the process, so sockets and TCP
 * connections stay attached to the right routes across reloads. A view's listens
 * array is indexed by it; addresses the view no longer uses are inactive (the workers
 * close their sockets, and open sockets for newly active ones).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <libknot/libknot.h>

#include "lib/engine/conf.h"
#include "lib/engine/plugin.h"

/** A server block with its chain (plugins in plugins.def order). */
struct tern_server {
	unsigned index;
	char **zone_strs;                 /**< FQDN presentation form, lowercase */
	knot_dname_t **zones;             /**< lowercase wire form */
	size_t nzones;
	struct tern_plugin_inst *chain;
	size_t chain_len;
};

/** One (zone, block) pair reachable on a listen address. */
struct tern_route {
	const knot_dname_t *zone;
	const struct tern_server *server;
	int stats_slot;                   /**< metrics row for (server label, zone), -1 = none */
	unsigned labels;                  /**< label count of zone, routes sorted by it desc */
	unsigned len;                     /**< wire length of zone */
};

/** The routes of one listen address. */
struct tern_listen_routes {
	struct sockaddr_storage addr;
	bool active;                      /**< this view listens here */
	struct tern_route *routes;
	size_t nroutes;
};

struct tern_view {
	struct tern_server *servers;
	size_t nservers;
	struct tern_listen_routes *listens; /**< indexed by listen index (some inactive) */
	size_t nlistens;
	struct tern_conf *conf;             /**< owned: the config it was built from */
	uint64_t generation;                /**< 1, 2, ...: tells views apart (workers) */
};

/** The plugin registry, in execution order. */
extern const struct tern_plugin *const tern_plugins[];
extern const size_t tern_plugins_count;

/**
 * Build a view from @p conf (takes ownership of conf on success and failure). Every
 * plugin init problem is reported to @p diag. @return 0 or TERN_ECONFIG / TERN_ENOMEM.
 */
int tern_view_build(struct tern_conf *conf, struct tern_diag *diag, struct tern_view **out);

/** Deinit every plugin instance and free. Call only after a grace period. */
void tern_view_free(struct tern_view *view);

/**
 * Pick the block for @p qname (lowercase, @p qname_len bytes on the wire) on listen
 * index @p li: longest zone wins.
 */
const struct tern_route *tern_view_route(const struct tern_view *view, unsigned li,
                                         const knot_dname_t *qname, size_t qname_len);

/** True if every plugin instance reports ready; else write who is not into @p buf. */
bool tern_view_ready(const struct tern_view *view, char *buf, size_t len);

/** Control plane: call each instance's maintain hook (file/hosts reload checks). */
void tern_view_maintain(struct tern_view *view);

/** Upper bound on distinct listen addresses over the life of the process. */
#define TERN_VIEW_MAX_LISTENS 64

/* The RCU root read by workers (TERN_RCU_DEREF) and written by the loader. */
extern struct tern_view *tern_view_root;
