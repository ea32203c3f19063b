/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private interface between the builder (build.c) and the snapshot (snapshot.c):
 * the builder computes what changed since the previous snapshot (a delta) and the
 * snapshot code assembles a new immutable snapshot from it, sharing everything the
 * delta does not touch. Nothing outside lib/cluster/ includes this.
 * Thread: the builder's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cluster/snapshot.h"

/**
 * An immutable, refcounted array of ready endpoints, sorted by hostname then address,
 * without duplicates, with its hostname strings in the same block. The builder makes
 * one per EndpointSlice; a record whose Service has one slice (the common case) holds
 * a reference to that slice's block instead of a copy of it, so the store and the
 * snapshot keep each endpoint once. Refcounts are plain: builder thread only.
 */
struct tern_cluster_eps {
	uint32_t refs;
	uint32_t n;
	struct tern_cluster_ep v[];   /* n entries; hostname strings follow */
};

/** A block for @p n endpoints and @p strbytes of strings at *pool; refs = 1. */
struct tern_cluster_eps *tern_cluster_eps_alloc(size_t n, size_t strbytes, char **pool);
void tern_cluster_eps_hold(struct tern_cluster_eps *e);
void tern_cluster_eps_release(struct tern_cluster_eps *e);

struct tern_cluster_pod_key {
	const char *ns;
	struct tern_ip ip;
};

struct tern_cluster_delta {
	struct tern_cluster *prev;                 /**< NULL for the first snapshot */
	const struct tern_cluster_svc **removed;   /**< records of prev to drop */
	size_t nremoved;
	const struct tern_cluster_svc **added;     /**< new records; their refs move in */
	size_t nadded;
	const char **namespaces;                   /**< exposed set; NULL: same as prev */
	size_t nnamespaces;
	bool pods_watched;
	const struct tern_cluster_pod_key *pods;   /**< NULL: same as prev */
	size_t npods;                              /**< pod keys (ns, ip) */
	size_t pod_count;                          /**< pods (for counts) */
	bool synced;
	uint32_t serial;
};

/**
 * A zeroed record with @p payload bytes at *area (8-aligned); refs = 1. Its endpoints
 * are @p eps (NULL: none), whose reference the record takes over on success.
 */
struct tern_cluster_svc *tern_cluster_svc_alloc(size_t payload, void **area,
                                                struct tern_cluster_eps *eps);
/** Record filled: compute its key hash. */
void tern_cluster_svc_seal(struct tern_cluster_svc *svc);
void tern_cluster_svc_release(const struct tern_cluster_svc *svc);
/**
 * Assemble a snapshot from @p d; published_ms is stamped here, just before the
 * builder publishes. @return a snapshot with refs = 1, or NULL (then @p d is untouched).
 */
struct tern_cluster *tern_cluster_assemble(const struct tern_cluster_delta *d);
void tern_cluster_hold(struct tern_cluster *c);

/**
 * Count one DNS programming duration (CoreDNS's
 * coredns_kubernetes_dns_programming_duration_seconds, service_kind
 * "headless_with_selector"): a process-wide histogram kept with relaxed atomics in
 * source.c, rendered by tern_cluster_sources_render(). Negative durations (clock skew
 * between the API server and this node) count as 0. Thread: any (the builder's).
 */
void tern_cluster_programming_observe(double seconds);
