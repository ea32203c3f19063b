/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One query in flight. The engine (process.c) fills it from the wire, runs the chain
 * of the server block the query was routed to, and finalises the answer. Plugins read
 * the query fields and build the answer through lib/dns/answer.h.
 * Thread: one worker; everything referenced lives for the current packet only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <libknot/libknot.h>

struct tern_server;
struct tern_view;
struct tern_io;
struct tern_resume;

enum tern_proto {
	TERN_PROTO_UDP = 0,
	TERN_PROTO_TCP = 1,
};

/** How many plugin counters one hot answer may bump (lib/engine/hot.h). */
#define TERN_HOT_MAX_COUNTERS 4

/**
 * Data published without advancing the publish epoch (TERN_RCU_XCHG_SCOPED in
 * lib/core/rcu.h: the clusters' snapshots), whose reader tells the engine which part
 * of it an answer was built from (req->hot.scope). A kept answer is replayed only
 * while current() says that part is unchanged.
 */
struct tern_hot_scope {
	/**
	 * Is @p part still @p id in the data published now? If so, *serial is the SOA
	 * serial that answers carry now (written over the kept one when the answer asked
	 * for it). *seen is the id of the whole data this answer was last found right in
	 * (req->hot.scope_seen at first): while that is still the data published now,
	 * the part need not be looked at; when the part is found unchanged in newer data,
	 * *seen becomes its id. Worker thread, online as an RCU reader; no allocation,
	 * no lock.
	 */
	bool (*current)(const struct tern_hot_scope *scope, uint32_t part, uint64_t id,
	                uint64_t *seen, uint32_t *serial);
};

/**
 * What plugins tell the engine about replaying this answer from the worker's hot
 * answers (lib/engine/hot.h; enum tern_plugin_hot in plugin.h).
 */
struct tern_hot_hint {
	/**
	 * The answering plugin allows replay with the limits below, whatever is published
	 * meanwhile (what the plugin itself would answer, as a cache does); a new view
	 * (config) still retires it.
	 */
	bool allow;
	bool deny;                  /**< a plugin forbids replaying this answer */
	uint64_t until_ms;          /**< replay only before this (CLOCK_MONOTONIC ms); 0: no limit */
	/* TTLs counted down on replay, as ttl - (now - ttl_base_ms) / 1000 floored at 0. */
	uint64_t ttl_base_ms;
	const uint32_t *ttls;
	const uint16_t *ttl_offs;   /**< offsets of the TTL fields in the answer message */
	uint16_t nttl;
	/*
	 * What a plugin read from data published with TERN_RCU_XCHG_SCOPED: one part of
	 * it, with its id then (struct tern_hot_scope). NULL: nothing (a second plugin
	 * that reads such data must set deny instead).
	 */
	const struct tern_hot_scope *scope;
	uint32_t scope_part;
	uint64_t scope_id;
	uint64_t scope_seen;        /**< the id of the whole data it was read from */
	bool scope_serial;          /**< the answer's one SOA carries the scope's serial */
	/* Counters the skipped hooks would have bumped (+1 each per replay). */
	uint8_t ncounters;
	_Atomic uint64_t *counters[TERN_HOT_MAX_COUNTERS];
};

struct tern_req {
	/* The query (read-only for plugins). */
	knot_pkt_t *query;                 /**< parsed query, in the arena */
	const knot_dname_t *qname;         /**< lowercased question name (use for lookups) */
	uint16_t qname_len;                /**< its wire length */
	uint16_t qtype;
	uint16_t qclass;
	enum tern_proto proto;
	const struct sockaddr_storage *src; /**< client address */
	bool has_edns;                     /**< the query carried an OPT record */
	bool dnssec_ok;                    /**< EDNS DO bit */
	uint16_t qsize;                    /**< query size in bytes */

	/* Context. */
	const struct tern_view *view;      /**< the runtime view for this turn */
	const struct tern_server *server;  /**< the server block the query was routed to */
	const knot_dname_t *zone;          /**< the block zone that matched (lowercase) */
	uint64_t now_ms;                   /**< CLOCK_MONOTONIC ms, taken once per turn */
	unsigned worker_id;
	knot_mm_t *mm;                     /**< per-packet arena: allocations die with the packet */

	/* Asynchronous work (lib/engine/io.h); NULL/false where the transport has none. */
	struct tern_io *io;                /**< the worker's services */
	const struct tern_resume *resume;  /**< set when a parked request is re-run */
	bool refresh;                      /**< a background refresh: no client is waiting */

	/* The answer (built by plugins). */
	knot_pkt_t *answer;                /**< over the TX buffer; question already copied */
	uint16_t max_size;                 /**< what the client can take (UDP: EDNS size or 512) */
	bool truncated;                    /**< an RRset did not fit: the engine sends TC */
	unsigned plugin_id;                /**< who answered (metrics "plugin" label) */
	bool answered;                     /**< a plugin set plugin_id */
	/**
	 * Raw answers: a plugin that wrote a complete message (without OPT) into
	 * answer->wire sets its length here instead of building through knot_pkt (a cache
	 * hit). The engine then sets the ID, copies the question with the client's case,
	 * truncates if needed and adds the OPT record.
	 */
	uint16_t raw_len;
	struct tern_hot_hint hot;          /**< replay rules for this answer (lib/engine/hot.h) */
};

/** The lowercased question name as a NUL-terminated presentation string, for logs. */
const char *tern_req_qname_str(const struct tern_req *req, char *buf, size_t len);
