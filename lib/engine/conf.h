/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The YAML configuration as loaded by libcyaml: the structs below mirror the file
 * (docs/CONFIG.md), each plugin's own struct comes from lib/plugins/<name>/<name>.h
 * through plugins.def. tern_conf_load() parses, records every node's position for
 * diagnostics, and checks everything that does not need a plugin (listen addresses,
 * workers, durations, zones). Plugin options are checked by the plugins' init hooks
 * when the view is built (view.h), reporting into the same diag.
 * Thread: loader.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/engine/diag.h"

/* The plugins mapping: one optional pointer per registered plugin, NULL if absent. */
#define TERN_PLUGIN_X(name) struct tern_##name##_conf;
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X

struct tern_plugins_conf {
#define TERN_PLUGIN_X(name) struct tern_##name##_conf *name;
#include "lib/engine/plugins.def"
#undef TERN_PLUGIN_X
};

/** One `metrics:`, `health:` or `ready:` HTTP endpoint. */
struct tern_http_conf {
	char *listen;             /**< "127.0.0.1:9153" */
	char *lameduck;           /**< health only: duration string, "5s" */
	/* Filled by tern_conf_load's checks: */
	struct sockaddr_storage addr;
	uint64_t lameduck_ms;
};

/** One server block. */
struct tern_server_conf {
	char **zones;
	unsigned zones_count;
	char **listen;
	unsigned listen_count;
	struct tern_plugins_conf *plugins;
	/* Filled by tern_conf_load's checks: */
	struct sockaddr_storage *addrs;  /**< parsed listen, listen_count entries */
};

struct tern_conf {
	char *workers;                   /**< "auto" or a number; NULL = auto */
	unsigned *hot_answers;           /**< answers kept per worker (lib/engine/hot.h); 0: off */
	struct tern_http_conf *metrics;
	struct tern_http_conf *health;
	struct tern_http_conf *ready;
	struct tern_server_conf *servers;
	unsigned servers_count;
	/* Filled by tern_conf_load: */
	unsigned nworkers;               /**< resolved worker count (auto = CPUs) */
	unsigned hot_entries;            /**< hot_answers or its default */
	char *path;                      /**< file it came from, owned; NULL for strings */
	char *dir;                       /**< directory relative plugin paths resolve under */
};

/**
 * Load and check a config file. Problems go to @p diag (all of them, with positions).
 * @return 0 and *out (owned, free with tern_conf_free) or TERN_ECONFIG.
 */
int tern_conf_load_file(const char *path, struct tern_diag *diag, struct tern_conf **out);

/** Same from memory; relative paths resolve under @p dir. */
int tern_conf_load_string(const char *yaml, size_t len, const char *dir,
                          struct tern_diag *diag, struct tern_conf **out);

void tern_conf_free(struct tern_conf *conf);
