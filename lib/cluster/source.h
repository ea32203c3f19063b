/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cluster source: one connection to a Kubernetes API (endpoint, credentials,
 * selectors, which kinds to watch) and the RCU root of the latest snapshot built from
 * it. kubernetes plugin instances ask for a source at init (identical settings share
 * one source, so a reload does not relist); the daemon starts one watcher thread
 * (kube/) per source and stops it when no instance uses the source any more.
 * Thread: get/put/foreach/reap: loader; snapshot: workers (RCU read side);
 * publish: the source's watcher; render: the metrics scrape (any, RCU read side).
 *
 * Locking: the registry list is changed only by the loader, and read by the loader and
 * by tern_cluster_sources_render() on the HTTP thread. A mutex (control plane only,
 * never taken on the query path) orders the two: get/put/reap take it to change the
 * list or refs, foreach to read each link, render for its whole walk. Render runs
 * while its thread is an online RCU reader, so nobody may wait for a grace period
 * while holding the mutex (liburcu, "Interaction with mutexes"): a watcher publishing
 * out of memory calls tern_rcu_synchronize(), and freeing its builder waits for the
 * grace periods of its retired snapshots (rcu_barrier), either of which waits for that
 * reader, which may be waiting for the mutex. Hence reap only unlinks unused sources under the mutex, then calls
 * stop() (which joins the watcher) and frees them after releasing it; render can no
 * longer reach an unlinked source, and one that started before the unlink finished
 * before the unlink could take the mutex. For the same reason foreach calls @p fn
 * without the mutex (kube_stop_all's callback joins watchers); that is safe because
 * only the loader, the caller itself, unlinks or frees sources.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct tern_cluster;

/** What identifies a watch. Strings owned by the source once registered. */
struct tern_cluster_source_conf {
	char *endpoint;            /**< "https://host:port"; NULL: in-cluster or kubeconfig */
	char *tls_cert, *tls_key, *tls_ca;
	char *kubeconfig;          /**< path; wins over endpoint, as in CoreDNS */
	char *context;             /**< kubeconfig context; NULL = current-context */
	char **namespaces;         /**< expose only these (NULL/0 = all) */
	size_t nnamespaces;
	char *namespace_labels;    /**< label selector on the namespace watch */
	char *labels;              /**< label selector on services/slices/pods */
	bool watch_pods;           /**< pods: verified */
	bool watch_endpoints;      /**< false with noendpoints */
	bool endpoint_pod_names;
	uint64_t startup_timeout_ms;
};

/** Counters the watcher keeps (relaxed atomics; read by the metrics scrape). */
struct tern_cluster_source_stats {
	uint64_t api_requests[6];  /**< by HTTP class: [0] errors, [1] 1xx ... [5] 5xx */
	uint64_t watch_restarts;   /**< watch stream ended and was resumed */
	uint64_t relists_gone;     /**< relist after 410 Gone / too old resource version */
	uint64_t relists_error;    /**< relist after another error */
	uint64_t decode_errors;    /**< garbage or unexpected JSON dropped */
	uint64_t snapshots;        /**< snapshots published */
	uint64_t build_ns_total;   /**< snapshot build+publish time, summed */
	uint64_t build_hist[16];   /**< build seconds histogram, 0.0001 * 2^k buckets */
};

struct tern_cluster_source {
	char *key;                            /**< canonical form of conf */
	struct tern_cluster_source_conf conf;
	struct tern_cluster *current;         /**< RCU root; NULL until the first publish */
	unsigned refs;                        /**< plugin instances using it (loader) */
	void *watcher;                        /**< the daemon's watcher, NULL when none */
	struct tern_cluster_source_stats stats;
	struct tern_cluster_source *next;
};

/**
 * Find the source with these settings or create it (deep copy of @p conf); refs++.
 * @return NULL only when out of memory.
 */
struct tern_cluster_source *tern_cluster_source_get(const struct tern_cluster_source_conf *conf);

/** refs--; a source with no refs is freed by tern_cluster_sources_reap(). */
void tern_cluster_source_put(struct tern_cluster_source *src);

/** The current snapshot (NULL before the first publish). RCU read side. */
const struct tern_cluster *tern_cluster_source_snapshot(const struct tern_cluster_source *src);

/** Call @p fn for every registered source. Loader. */
void tern_cluster_sources_foreach(void (*fn)(struct tern_cluster_source *src, void *ctx),
                                  void *ctx);

/**
 * Free every source with no refs, after calling @p stop on it (the daemon stops and
 * joins its watcher there; NULL when none can be running). Loader.
 */
void tern_cluster_sources_reap(void (*stop)(struct tern_cluster_source *src));

/**
 * Write the Prometheus text exposition of every registered source to @p out:
 * coredns_kubernetes_dns_programming_duration_seconds{service_kind} (process-wide, as
 * in CoreDNS) and Tern's tern_kubernetes_* families, one series per source with the
 * label source="<endpoint URL>", "kubeconfig:<path>[?context=<name>]" or "in-cluster"
 * (plus "#<hash of all settings>" when several sources share that name). Writes
 * nothing when no source is registered and nothing was observed.
 * Thread: any registered RCU reader, online (snapshots are read with TERN_RCU_DEREF);
 * takes the registry mutex, so never call it while holding anything a watcher or the
 * loader waits for.
 */
void tern_cluster_sources_render(FILE *out);
