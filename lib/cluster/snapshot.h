/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The read side of Kubernetes data: one immutable snapshot of the services, their
 * merged ready endpoints, namespaces and (optionally) pods, as the kubernetes plugin
 * sees it. A snapshot is built by the watcher through build.h and published through
 * its source's RCU root (source.h); workers read it with no lock and no allocation.
 * Per-service records are shared between successive snapshots (refcounted by the
 * builder), so a rebuild costs what changed plus one pointer-table copy.
 *
 * All names in lookups are lowercase label bytes (not NUL-terminated): ns and name
 * exactly as they appear in a query label.
 * Thread: any reader inside the RCU read side.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cluster/model.h"

/** A named or unnamed port of a Service (or its endpoints). */
struct tern_cluster_port {
	const char *name;        /**< lowercase; "" when unnamed */
	const char *proto;       /**< lowercase "tcp", "udp", "sctp" */
	uint16_t port;
};

/** One ready endpoint address (one per (hostname, address); deduplicated). */
struct tern_cluster_ep {
	const char *hostname;    /**< lowercase: hostname, pod name (endpoint_pod_names) or dashed IP */
	struct tern_ip ip;
};

/** Everything DNS knows about one Service. Immutable once published. */
struct tern_cluster_svc {
	const char *ns;                      /**< lowercase */
	const char *name;                    /**< lowercase */
	enum tern_svc_kind kind;
	const struct tern_ip *cluster_ips;   /**< ClusterIP kind only */
	unsigned ncluster_ips;
	const uint8_t *external_name;        /**< ExternalName: target, lowercase wire dname */
	const struct tern_cluster_port *ports;        /**< the Service's ports */
	unsigned nports;
	const struct tern_cluster_port *ep_ports;     /**< the endpoints' ports (headless SRV) */
	unsigned nep_ports;
	const struct tern_cluster_ep *eps;   /**< ready endpoints, sorted by hostname then IP */
	unsigned neps;
};

/** What a reverse (PTR) lookup found: a Service, and an endpoint of it or none. */
struct tern_cluster_ptr {
	const struct tern_cluster_svc *svc;
	const struct tern_cluster_ep *ep;    /**< NULL: the address is a ClusterIP */
};

struct tern_cluster;

/** The Service @p ns / @p name, or NULL. *part (if not NULL): the part read (below). */
const struct tern_cluster_svc *tern_cluster_find_service(const struct tern_cluster *c,
	const char *ns, size_t nslen, const char *name, size_t namelen, uint32_t *part);

/** True if the namespace exists (and is exposed by the namespaces/labels options). */
bool tern_cluster_has_namespace(const struct tern_cluster *c, const char *ns, size_t nslen);

/**
 * Reverse lookup of @p ip: ClusterIPs first (CoreDNS order), then ready endpoints.
 * @return the number of matches; *out points into the snapshot (borrowed). *part (if
 * not NULL): the part read (below; NONE for an address of no family).
 */
size_t tern_cluster_find_ptr(const struct tern_cluster *c, const struct tern_ip *ip,
                             const struct tern_cluster_ptr **out, uint32_t *part);

/** True if a pod with @p ip exists in namespace @p ns (pods: verified). */
bool tern_cluster_has_pod(const struct tern_cluster *c, const char *ns, size_t nslen,
                          const struct tern_ip *ip);

/** True once the first complete list of every watched kind was applied. */
bool tern_cluster_synced(const struct tern_cluster *c);

/** Zone serial: unix time of the last DNS-relevant change. */
uint32_t tern_cluster_serial(const struct tern_cluster *c);

/** Monotonic ms when this snapshot was published (its age for metrics). */
uint64_t tern_cluster_published_ms(const struct tern_cluster *c);

/*
 * Parts, for the workers' hot answers (lib/engine/hot.h): a snapshot is made of parts
 * (each of the service table's shards, each of the PTR index's shards, the namespace
 * set, the pod index) that the next snapshot shares when no change touched them. Each
 * part has an id that is new whenever the part is rebuilt, so an answer built from
 * what one lookup read is still the answer in any later snapshot where that lookup's
 * part has the same id (the SOA serial aside). TERN_CLUSTER_PART_ALL is the snapshot
 * itself (any change), TERN_CLUSTER_PART_NONE no data at all (id 0 forever).
 */
#define TERN_CLUSTER_PART_NAMESPACES 8192u   /**< tern_cluster_has_namespace */
#define TERN_CLUSTER_PART_PODS       8193u   /**< tern_cluster_has_pod */
#define TERN_CLUSTER_PART_ALL        8194u
#define TERN_CLUSTER_PART_NONE       8195u

/** The id of @p part in @p c (0: the part is empty, or NONE). */
uint64_t tern_cluster_part_id(const struct tern_cluster *c, uint32_t part);

/**
 * A hot answer's check, in one call: @p c is synced and its @p part is still @p id;
 * then *serial is its SOA serial. *seen: the snapshot (its ALL id) the answer was last
 * found right in; when that is @p c, the part is not looked at (no cache miss on a
 * shard), else it becomes @p c's when the part is unchanged.
 */
bool tern_cluster_part_unchanged(const struct tern_cluster *c, uint32_t part, uint64_t id,
                                 uint64_t *seen, uint32_t *serial);

/** Object counts of this snapshot (metrics). */
struct tern_cluster_counts {
	size_t services, endpoints, namespaces, pods;
};
void tern_cluster_counts(const struct tern_cluster *c, struct tern_cluster_counts *out);
