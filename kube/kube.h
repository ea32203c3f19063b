/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the daemon sees of kube/: keep one watcher thread running per cluster source
 * (lib/cluster/source.h) that a kubernetes plugin instance uses, and stop them. Each
 * watcher lists and watches the API with libcurl, decodes with yajl, feeds a builder
 * and publishes snapshots into its source's RCU root (kube/watcher.h).
 * Thread: loader (daemon/main.c after the first view is published and after every
 * successful reload; at shutdown).
 */
#pragma once

#include "lib/cluster/source.h"

/**
 * Start a watcher for every source that has users and none yet, then stop the watchers
 * of sources nobody uses and free those sources (tern_cluster_sources_reap).
 * @return 0, or the first error of a watcher that could not start (its source is left
 * without one; the next kube_sync tries again).
 */
int kube_sync(void);

/** Stop and join the watcher of @p src, if any (a tern_cluster_sources_reap callback). */
void kube_stop_watcher(struct tern_cluster_source *src);

/** Stop every watcher (shutdown). The caller then puts and reaps the sources. */
void kube_stop_all(void);
