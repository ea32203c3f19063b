/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hot answers: each worker keeps the finished answers to the questions it was asked
 * and replays them, byte for byte what the chain would write, without parsing the
 * query with libknot, routing it or running the plugin chain. This is the fast path
 * for the names a cluster asks for over and over (its services, the search-path
 * NXDOMAINs, cached external names).
 *
 * Never stale: an answer is kept only when every plugin of the chain allows it
 * (enum tern_plugin_hot in plugin.h, req->hot in req.h). An answer a plugin vouches for
 * (TERN_HOT_PURE: kubernetes, file, hosts, local) is replayed only while the publish
 * epoch it was built under (lib/core/rcu.h) is the current one, so a zone or hosts
 * reload or a config reload retires it the moment it is published. Cluster snapshots
 * are republished up to every 2 ms under churn, without advancing the epoch: an answer
 * read from one is kept with the snapshot part it read (req->hot.scope: the service
 * table shard of the name, the PTR shard of the address, the namespace set, the pod
 * index; lib/cluster/snapshot.h) and replayed only while that part is the one
 * published now, with the SOA serial of now, so a change retires exactly the answers
 * it may alter. An answer allowed with limits (a cache hit, which the cache itself
 * would serve whatever is published meanwhile) is replayed until its limit and while
 * the view (config) it was built under is the current one, counting its TTLs down
 * exactly as the cache does.
 *
 * Only plain queries take the fast path: opcode QUERY, one question of class IN, no
 * other records than one OPT of version 0 (options are checked and ignored, as the
 * engine does), Z clear. The key is the listen address, the lowercased name, the type
 * and the DO and CD bits; the client's ID, RD, CD, the question's case and the OPT
 * record are set per query. An answer that would not fit what the client takes is
 * replayed in its truncated form (question only, TC) when the chain made that form for a
 * client like it, else it goes through the chain.
 *
 * Storage: a byte ring written in order (the oldest answers are overwritten first)
 * and a 4-way set-associative index over it; no allocation after tern_hot_new().
 * Thread: one table per worker, used only by it (no atomics but the epoch read).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>

#include "lib/core/stats.h"
#include "lib/engine/req.h"

struct tern_hot;

#define TERN_HOT_KEY_DO 0x01      /**< the query's EDNS DO bit */
#define TERN_HOT_KEY_CD 0x02      /**< the query's CD bit */

/** The question of one query as the table keys it, parsed once per query. */
struct tern_hot_key {
	uint64_t epoch;          /**< publish epoch the answer is built under */
	uint64_t view_gen;       /**< generation of the view it is built under */
	uint64_t name_hash;      /**< of the lowercased name */
	uint64_t hash;           /**< of the whole key */
	uint16_t name_len;       /**< 0: not a plain query, the fast path does not apply */
	uint16_t qsec_len;       /**< question section: name + type + class */
	uint16_t qtype;
	uint16_t limit;          /**< the largest answer the client takes */
	uint8_t listen;
	uint8_t flags;           /**< TERN_HOT_KEY_DO | TERN_HOT_KEY_CD (0x80 is the table's) */
	bool edns;
	uint8_t name[KNOT_DNAME_MAXLEN + 8];   /**< lowercased, zero-padded to 8 bytes */
};

/** A replayed answer. */
struct tern_hot_hit {
	size_t len;                         /**< answer length; 0: no hit */
	const struct tern_stats_loc *stats; /**< where it is counted (given to tern_hot_store) */
	bool truncated;                     /**< the truncated form (TC) */
};

/** Default number of answers per worker (config `hot_answers`). */
#define TERN_HOT_DEFAULT_ENTRIES 32768
#define TERN_HOT_MAX_ENTRIES     (1u << 22)

/** A table for about @p entries answers (ring of entries x 160 bytes). NULL: no memory. */
struct tern_hot *tern_hot_new(unsigned entries);
void tern_hot_free(struct tern_hot *hot);

/**
 * Parse @p in into @p key and answer it from the table into @p out when a valid answer
 * is kept. @p epoch: tern_rcu_epoch_read() from before the caller read any RCU root
 * it answers from (the worker reads it at the start of its loop turn); @p view_gen:
 * the generation of the view the caller answers with. @p tcp: the query came over TCP (no size limit but @p out_cap).
 * @return the hit (len 0 when the chain must run; key->name_len 0 when the query is
 * not plain, so the answer cannot be stored either).
 */
struct tern_hot_hit tern_hot_serve(struct tern_hot *hot, uint64_t epoch, uint64_t view_gen,
                                   unsigned listen_index,
                                   bool tcp, uint64_t now_ms, const uint8_t *in,
                                   size_t in_len, uint8_t *out, size_t out_cap,
                                   struct tern_hot_key *key);

/**
 * Keep the answer @p ans (@p len bytes, as sent, with our OPT record last when
 * key->edns) to the query keyed @p key, under the rules in req->hot, counted where
 * @p stats says (in this worker's row). The caller has checked that the chain allows
 * it. @p truncated_at: 0, or the answer is the truncated form (question only, TC)
 * the chain made because the whole answer did not fit this size; it is kept apart
 * and replayed to clients that take at most that much when the whole answer is not
 * kept or does not fit them. @return true when stored.
 */
bool tern_hot_store(struct tern_hot *hot, const struct tern_hot_key *key,
                    const struct tern_req *req, const uint8_t *ans, size_t len,
                    uint16_t truncated_at, const struct tern_stats_loc *stats);

/**
 * For a plugin whose hooks the replay skips (TERN_HOT_SKIP): bump @p ctr on every
 * replay of this answer, as the plugin did now. Counters must live as long as the
 * plugin instance (a reload retires every kept answer first) and be written by this
 * worker only (a replay adds with a relaxed load and store). false: no room (then the
 * answer is not kept).
 */
static inline bool tern_hot_count(struct tern_req *req, _Atomic uint64_t *ctr)
{
	if (req->hot.ncounters == TERN_HOT_MAX_COUNTERS) {
		req->hot.deny = true;
		return false;
	}
	req->hot.counters[req->hot.ncounters++] = ctr;
	return true;
}
