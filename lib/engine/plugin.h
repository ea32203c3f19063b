/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole contract between the engine and a plugin.
 *
 * A plugin is one const struct tern_plugin, linked statically and registered by one
 * line in lib/engine/plugins.def, whose order is the execution order (CoreDNS's
 * plugin.cfg order). The user's YAML enables and configures plugins; it never orders
 * them. Each plugin owns its config struct and libcyaml schema in
 * lib/plugins/<name>/<name>.h.
 *
 * Two planes:
 *  - control plane (init, deinit, maintain, ready): loader/main thread; may allocate,
 *    log, read files. An instance's data is read-only once the view is published; a
 *    plugin that swaps its own data (a reloaded zone) publishes it through RCU.
 *  - data plane (query, answer): a worker thread inside the RCU read side: no malloc,
 *    no locks, no syscalls, no blocking. Use the request's arena (req->mm).
 *
 * query hooks run in chain order until one returns other than TERN_NEXT; then the
 * answer hooks of every plugin whose query ran are called in reverse order (how log,
 * cache and rewrite observe and amend answers, as CoreDNS's wrapping does).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

struct tern_req;
struct tern_diag;
struct tern_server;
struct tern_view;

enum tern_verdict {
	TERN_NEXT = 0, /**< not mine (or fallthrough): run the next plugin */
	TERN_DONE,     /**< req->answer is complete: run answer hooks, send */
	TERN_DROP,     /**< send nothing */
	TERN_PARK,     /**< waiting on lib/engine/io.h (tern_io_forward was called): no answer yet */
	TERN_FAIL,     /**< internal error: the engine answers SERVFAIL and counts it */
};

/** What a plugin gets at init besides its own config. */
struct tern_plugin_env {
	const char *const *zones; /**< the server block's zones, presentation form, FQDN */
	size_t nzones;
	const char *config_dir;   /**< relative paths in plugin configs are under this */
};

/** One configured plugin in one server block. Owned by the view. */
struct tern_plugin_inst {
	const struct tern_plugin *plugin;
	unsigned plugin_id;       /**< index in the registry (plugins.def order) */
	void *data;               /**< plugin-owned instance state */
};

/*
 * Hot answers (lib/engine/hot.h): the engine keeps finished answers per worker and
 * replays them for the same question without running the chain, while the published
 * data is unchanged. Only answers whose whole chain allows it are kept:
 */
enum tern_plugin_hot {
	/**
	 * The plugin's hooks may be skipped for a replayed NOERROR/NXDOMAIN answer: they
	 * have no per-query effect besides the answer, or they hand the counters they
	 * bump to the engine (tern_hot_count in lib/engine/hot.h). Plugins without it
	 * (log) make every answer that passes them run the chain.
	 */
	TERN_HOT_SKIP = 1u << 0,
	/**
	 * The plugin's TERN_DONE answers depend only on the question (name, type, DO, CD,
	 * listen address) and on data it publishes with TERN_RCU_XCHG, and carry fixed
	 * TTLs, so they stay right until the next publish; or, for data published with
	 * TERN_RCU_XCHG_SCOPED, until the part of it that req->hot.scope names changes.
	 * Other plugins may allow the replay of one answer with limits through req->hot
	 * (the cache does).
	 */
	TERN_HOT_PURE = 1u << 1,
};

struct tern_plugin {
	const char *name; /**< YAML key, log subject, value of the metrics "plugin" label */
	unsigned hot;     /**< enum tern_plugin_hot flags */

	/**
	 * Validate @p conf (fill defaults, check ranges, report every problem through
	 * @p diag with keys relative to the plugin's node) and build the instance in
	 * pi->data. @return 0 or a negative TERN_E* code (TERN_ECONFIG after diag).
	 */
	int (*init)(struct tern_plugin_inst *pi, const void *conf,
	            const struct tern_plugin_env *env, struct tern_diag *diag);
	/** Free pi->data. Called after a grace period: no worker can still see it. */
	void (*deinit)(struct tern_plugin_inst *pi);
	/** Control plane, about once a second: reload changed files and the like. */
	void (*maintain)(struct tern_plugin_inst *pi);
	/** Control plane: false while the plugin cannot yet answer (feeds /ready). */
	bool (*ready)(const struct tern_plugin_inst *pi);
	/**
	 * Metrics scrape (HTTP thread, RCU read side): write this plugin's Prometheus
	 * families (HELP/TYPE once) for its instances in @p view, whose registry index is
	 * @p plugin_id. Counters shared with workers are read with relaxed loads.
	 */
	void (*metrics)(FILE *out, const struct tern_view *view, unsigned plugin_id);

	/** Data plane: answer, pass (TERN_NEXT), drop or fail. */
	enum tern_verdict (*query)(struct tern_req *req, const struct tern_plugin_inst *pi);
	/** Data plane: observe or amend the final answer. */
	void (*answer)(struct tern_req *req, const struct tern_plugin_inst *pi);
};

#define TERN_PLUGIN_DEFINE(id, ...) \
	const struct tern_plugin tern_plugin_##id = { .name = #id, __VA_ARGS__ }
