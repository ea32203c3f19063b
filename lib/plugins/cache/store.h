/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache's shared table: one per cache instance, read and written by every worker.
 *
 * Entries are complete answers in wire form (no OPT, question name lowercased, ID 0)
 * with the offset and the clamped TTL of every record, keyed by (qname, qtype, qclass,
 * DO and CD bits). They live in a liburcu-cds lock-free hash table (rculfhash, QSBR
 * flavour): lookups are RCU reads inside the worker's read side, stores are
 * cds_lfht_add_replace() by the worker that saw the answer. Capacity is bounded per
 * kind (success, denial) by a CLOCK ring of entry pointers: a store claims a ring slot
 * (compare-and-swap), and the entry it displaces (empty, replaced, expired, or not hit
 * since the hand last passed) is removed from the hash table and freed after a grace
 * period with urcu_qsbr_call_rcu(). The ring owns every entry; the hash table only
 * indexes them. Nothing here takes a lock.
 *
 * urcu: lib/core/rcu.h is the project's includer of liburcu (QSBR); this module adds
 * <urcu/rculfhash.h> after it, uses the QSBR flavour explicitly (urcu_qsbr_flavor,
 * urcu_qsbr_call_rcu, urcu_qsbr_barrier) and needs liburcu-cds.
 * Thread: lookups and stores: workers (registered QSBR readers, online); count: any
 * online reader; init/deinit: loader, when no worker can reach the table.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>

#include "lib/core/rcu.h"
#include <urcu/rculfhash.h>

/** The two capacity pools (CoreDNS's success and denial caches). */
enum cache_kind {
	CACHE_SUCCESS = 0,
	CACHE_DENIAL = 1,
	CACHE_KINDS,
};

/** What an answer is, for caching. */
enum cache_class {
	CACHE_CLASS_NONE = 0,    /**< not cacheable (REFUSED, delegation, no SOA, ...) */
	CACHE_CLASS_SUCCESS,     /**< NOERROR with answers */
	CACHE_CLASS_DENIAL,      /**< NXDOMAIN or NODATA with an SOA in authority */
	CACHE_CLASS_SERVFAIL,    /**< SERVFAIL, kept for the `servfail` duration */
};

/** Key flag bits. */
#define CACHE_KEY_DO 0x1u
#define CACHE_KEY_CD 0x2u

/** A lookup key; qname is lowercase wire form. */
struct cache_key {
	const knot_dname_t *qname;
	size_t qname_len;
	uint16_t qtype;
	uint16_t qclass;
	uint8_t flags;           /**< CACHE_KEY_* */
	unsigned long hash;      /**< cache_key_hash() */
};

enum cache_state {
	CACHE_LIVE = 0,
	CACHE_DEAD,              /**< replaced in the hash table; the ring reclaims it */
};

/** One cached answer. Immutable after insert except the atomics. */
struct cache_entry {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	unsigned long hash;
	uint64_t stored_ms;              /**< req->now_ms when stored */
	uint64_t expire_ms;              /**< stored_ms + ttl_ms */
	uint64_t ttl_ms;                 /**< the entry's lifetime */
	_Atomic uint64_t last_hit_ms;    /**< prefetch popularity (1 s granularity) */
	_Atomic uint64_t refresh_after_ms; /**< no background refresh before this */
	_Atomic uint32_t hits;           /**< hits without a `duration` gap, up to amount */
	_Atomic uint8_t ref;             /**< CLOCK bit: hit since the hand last passed */
	_Atomic uint8_t state;           /**< enum cache_state */
	uint8_t cls;                     /**< enum cache_class */
	uint8_t flags;                   /**< CACHE_KEY_* */
	uint16_t qtype;
	uint16_t qclass;
	uint16_t qname_len;
	uint16_t wire_len;
	uint16_t nrr;                    /**< records with a TTL (all but OPT) */
	const uint32_t *ttls;            /**< clamped TTL per record, seconds */
	const uint16_t *offs;            /**< offset of each record's TTL field in wire */
	const uint8_t *wire;             /**< the answer; its question name is the key */
	uint32_t data[];                 /**< ttls, offs, wire */
};

/** A CLOCK ring bounding one kind. */
struct cache_ring {
	_Atomic(struct cache_entry *) *slots;
	size_t cap;
	_Atomic size_t hand;
};

struct cache_table {
	struct cds_lfht *ht;
	struct cache_ring ring[CACHE_KINDS];
};

/** What a scan of an answer found (cache_msg_scan). */
struct cache_scan {
	size_t len;              /**< bytes to keep: the message up to its OPT record */
	uint16_t nrr;            /**< records kept */
	uint16_t ancount;
	uint8_t rcode;
	bool has_opt;            /**< an OPT record was found (the last record) */
	bool has_soa;            /**< an SOA record in the authority section */
	uint32_t soa_neg;        /**< min(SOA TTL, SOA MINIMUM) of the first such SOA */
};

/** TTL rules applied when an entry is built. */
struct cache_limits {
	uint32_t min_ttl;        /**< floor, seconds */
	uint32_t max_ttl;        /**< cap, seconds */
	uint64_t servfail_ms;    /**< lifetime of a SERVFAIL entry */
};

/** Hash of a key's fields (fills k->hash). Hot path. */
void cache_key_init(struct cache_key *k, const knot_dname_t *qname, uint16_t qtype,
                    uint16_t qclass, uint8_t flags);

/** @return 0, TERN_ENOMEM or TERN_EINVAL (a capacity of 0). Loader. */
int cache_table_init(struct cache_table *t, size_t cap_success, size_t cap_denial);
/** Free every entry and the table. No worker may reach it any more. Loader. */
void cache_table_deinit(struct cache_table *t);

/**
 * Find the entry for @p k (fresh, expired or stale: the caller decides).
 * @return borrowed until the caller's next quiescent state, or NULL. Worker (online).
 */
struct cache_entry *cache_table_find(const struct cache_table *t, const struct cache_key *k);

/**
 * Walk the message @p wire (at most @p cap bytes; the counts in its header say where
 * it ends) and check it answers @p k. @return 0, or TERN_EINVAL (malformed, not a
 * response to @p k, truncated (TC), TSIG, an OPT that is not the last record).
 */
int cache_msg_scan(const uint8_t *wire, size_t cap, const struct cache_key *k,
                   struct cache_scan *out);

/** The class of a scanned message for caching. */
enum cache_class cache_msg_class(const struct cache_scan *s);

/**
 * Build an entry from a scanned message: the bytes up to OPT are copied, ARCOUNT
 * fixed, ID zeroed and the question name replaced by @p k's (lowercase).
 * @return returns owned (heap; cache_table_insert takes it), or NULL (ENOMEM).
 */
struct cache_entry *cache_entry_new(const uint8_t *wire, const struct cache_scan *s,
                                    enum cache_class cls, const struct cache_key *k,
                                    const struct cache_limits *lim, uint64_t now_ms);

/** Free an entry that was never inserted. */
void cache_entry_free(struct cache_entry *e);

/**
 * Insert @p e (takes ownership), replacing any entry with the same key, and make room
 * in its kind's ring. @return true when a live entry was evicted for room (the
 * caller counts it). Worker (online).
 */
bool cache_table_insert(struct cache_table *t, struct cache_entry *e, uint64_t now_ms,
                        uint64_t stale_ms);

/** Live (not replaced) entries of @p kind. Any online reader. */
size_t cache_table_count(const struct cache_table *t, enum cache_kind kind);

/** The ring (kind) an entry class goes to. */
static inline enum cache_kind cache_class_kind(enum cache_class cls)
{
	return cls == CACHE_CLASS_SUCCESS ? CACHE_SUCCESS : CACHE_DENIAL;
}
