/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An immutable in-memory DNS zone loaded from an RFC 1035 master file (libzscanner).
 * The loader thread builds one with tern_zone_load(); afterwards it is read-only and
 * shared by every worker (the file plugin publishes it through an RCU pointer and frees
 * it with tern_zone_free() after a grace period). Every owner name is stored lowercased
 * in wire form, one node per name with its RRsets; empty non-terminals are materialised
 * as nodes without RRsets, so "name exists" (NODATA) and "name does not exist"
 * (NXDOMAIN) are told apart exactly. A hash table (open addressing, built once) maps a
 * lowercased wire name to its node, so a lookup costs one probe for the name and one per
 * ancestor walked up to the closest encloser. Rdata is kept as written in the file
 * (names inside rdata keep their case).
 * Thread: loaded and freed by the loader; lookups from any thread, no allocation.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>

struct tern_zone_chunk;

/** One owner name of the zone. */
struct tern_zone_node {
	knot_dname_t *owner;          /**< lowercase wire form, owned by the zone */
	knot_rrset_t *rrsets;         /**< sorted by type; NULL/0 for an empty non-terminal */
	uint16_t nrrsets;
	uint8_t labels;               /**< label count of owner */
	bool wildcard_child;          /**< "*.<owner>" exists in the zone */
	int32_t deleg;                /**< index of the delegation point at or above this
	                                   node (non-apex node with NS), or -1 */
};

/** A loaded zone. Opaque to callers except through the functions below. */
struct tern_zone {
	knot_dname_t *origin;         /**< lowercase wire form */
	uint8_t origin_labels;
	struct tern_zone_node *nodes; /**< nodes[0] is the apex */
	size_t nnodes;
	uint32_t *table;              /**< open addressing, node index + 1, 0 = empty */
	size_t table_mask;            /**< table size - 1 (size is a power of two) */
	const knot_rrset_t *soa;      /**< the apex SOA (exactly one record) */
	uint32_t neg_ttl;             /**< RFC 2308: min(SOA TTL, SOA MINIMUM) */
	size_t nrecords;              /**< records loaded (after duplicate removal) */
	struct tern_zone_chunk *chunks; /**< private: storage for names, RRsets, rdata */
};

/** What tern_zone_find() found for a name. */
enum tern_zone_result {
	TERN_ZONE_OUT = 0,   /**< the name is not in (or under) this zone */
	TERN_ZONE_FOUND,     /**< the name exists (node; possibly an empty non-terminal) */
	TERN_ZONE_WILDCARD,  /**< no such name, but the wildcard node applies (RFC 4592) */
	TERN_ZONE_DELEG,     /**< the name is at or below a zone cut: node is the cut */
	TERN_ZONE_NXDOMAIN,  /**< no such name and no wildcard; node is the closest encloser */
};

/**
 * Load the master file @p path for zone @p origin (presentation form, relative names in
 * the file are relative to it). Requires exactly one SOA, at the apex, and NS at the
 * apex; rejects out-of-zone records, classes other than IN and CNAME next to other
 * data. On failure writes "FILE:LINE: reason" (or "FILE: reason") into @p err.
 * @param[out] out  returns owned, free with tern_zone_free()
 * @return 0, TERN_EZONE (parse or content error), TERN_EINVAL (bad origin) or
 *         TERN_ENOMEM. Thread: loader.
 */
int tern_zone_load(const char *path, const char *origin, struct tern_zone **out,
                   char *err, size_t errlen);

/** Free a zone and everything it owns; NULL is a no-op. Thread: loader. */
void tern_zone_free(struct tern_zone *zone);

/** The node named exactly @p name (lowercase wire form), or NULL. */
const struct tern_zone_node *tern_zone_get(const struct tern_zone *zone,
                                           const knot_dname_t *name);

/** The RRset of @p type at @p node, or NULL. */
const knot_rrset_t *tern_zone_node_rrset(const struct tern_zone_node *node, uint16_t type);

/**
 * Classify @p name (lowercase wire form) against the zone, as an authoritative server
 * must (RFC 1034 4.3.2, RFC 4592): exact match, zone cut on the way down, wildcard at the
 * closest encloser, or NXDOMAIN. A query for DS at a zone cut is answered by the parent
 * side, so with @p qtype KNOT_RRTYPE_DS the cut itself reads as FOUND.
 * @param[out] node  the node the result refers to (see enum tern_zone_result)
 */
enum tern_zone_result tern_zone_find(const struct tern_zone *zone, const knot_dname_t *name,
                                     uint16_t qtype, const struct tern_zone_node **node);
