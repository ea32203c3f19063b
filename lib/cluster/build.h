/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The write side of Kubernetes data: a mutable store of slim objects (model.h) that
 * the watcher updates event by event, and that builds immutable snapshots
 * (snapshot.h). Services whose Service or EndpointSlices changed since the last build
 * are recomputed (slices merged per Service across address families, duplicates
 * removed, only ready endpoints kept, hostnames derived as CoreDNS does); all other
 * per-service records are shared with the previous snapshot.
 *
 * Relists never wipe good data: objects of a kind are marked between relist_begin and
 * relist_end, and only those not seen again are removed at relist_end.
 * Thread: one builder belongs to one thread (the watcher, or a test). Snapshots it
 * built must be freed on that thread too (refcounts are not atomic).
 */
#pragma once

#include <stdbool.h>

#include "lib/cluster/model.h"
#include "lib/cluster/snapshot.h"
#include "lib/cluster/source.h"

enum tern_k8s_kind {
	TERN_K8S_SERVICE = 0,
	TERN_K8S_SLICE,
	TERN_K8S_NAMESPACE,
	TERN_K8S_POD,
	TERN_K8S_KIND_COUNT,
};

struct tern_cluster_builder;

/** @p conf is borrowed for the builder's life (namespaces filter, endpoint_pod_names). */
struct tern_cluster_builder *tern_cluster_builder_new(const struct tern_cluster_source_conf *conf);
/** Also frees the retired snapshots, waiting for their grace periods (rcu_barrier). */
void tern_cluster_builder_free(struct tern_cluster_builder *b);

/* Add or replace, and delete, by namespace and name. @return 0 or TERN_E*. */
int tern_cluster_builder_service(struct tern_cluster_builder *b, const struct tern_k8s_service *s);
int tern_cluster_builder_service_delete(struct tern_cluster_builder *b, const char *ns,
                                        const char *name);
int tern_cluster_builder_slice(struct tern_cluster_builder *b, const struct tern_k8s_slice *s);
int tern_cluster_builder_slice_delete(struct tern_cluster_builder *b, const char *ns,
                                      const char *name);
int tern_cluster_builder_namespace(struct tern_cluster_builder *b, const char *name);
int tern_cluster_builder_namespace_delete(struct tern_cluster_builder *b, const char *name);
int tern_cluster_builder_pod(struct tern_cluster_builder *b, const struct tern_k8s_pod *p);
int tern_cluster_builder_pod_delete(struct tern_cluster_builder *b, const char *ns,
                                    const char *name);

void tern_cluster_builder_relist_begin(struct tern_cluster_builder *b, enum tern_k8s_kind kind);
void tern_cluster_builder_relist_end(struct tern_cluster_builder *b, enum tern_k8s_kind kind);

/** Every watched kind was listed once: snapshots from now on are synced. */
void tern_cluster_builder_set_synced(struct tern_cluster_builder *b);

/** True if something changed since the last snapshot. */
bool tern_cluster_builder_dirty(const struct tern_cluster_builder *b);

/** Build an immutable snapshot of the current state. @return NULL when out of memory. */
struct tern_cluster *tern_cluster_builder_snapshot(struct tern_cluster_builder *b);

/** Release a snapshot (builder's thread, after a grace period if it was published). */
void tern_cluster_free(struct tern_cluster *c);

/**
 * Snapshot, publish into @p src with TERN_RCU_XCHG_SCOPED (hot answers follow the
 * snapshot's parts, snapshot.h), retire the previous one (freed
 * after a grace period by tern_cluster_builder_reclaim(): publishing never waits for
 * readers), and count it in src->stats. Slice changes of headless Services applied
 * after set_synced with a new last-change-trigger-time are observed as DNS programming
 * durations (now - trigger time) right after the exchange, when they become visible
 * (see internal.h; changes that alter no record are observed when applied).
 * The caller must not be an online RCU reader (unregistered, or registered and
 * offline). @return 0 or TERN_ENOMEM.
 */
int tern_cluster_builder_publish(struct tern_cluster_builder *b, struct tern_cluster_source *src);

/**
 * Free the snapshots retired by earlier publishes whose grace period has passed (also
 * done by each publish). The watcher calls it every loop turn; tern_cluster_builder_free
 * waits for and frees the rest (it must not be called by an online RCU reader).
 */
void tern_cluster_builder_reclaim(struct tern_cluster_builder *b);
