/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Query statistics with CoreDNS's metric names, kept as one row per worker thread:
 * the worker is the only writer of its row (relaxed atomic load + store, no lock,
 * no shared cache line), and a scrape sums the rows with relaxed loads.
 *
 * Labels that name a server and a zone ("dns://127.0.0.1:5300", "example.org.") are
 * interned once by the loader into a slot number; slots are never reused, so counters
 * survive reloads. The "plugin" label is the plugin registry index.
 * Thread: rows are written by their worker; slots interned by the loader; render: any.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/engine/req.h"

#define TERN_STATS_MAX_SLOTS   128   /**< distinct (server, zone) label pairs */
#define TERN_STATS_NO_PLUGIN   0xffu /**< answered by the engine itself (plugin="") */

/** Per-worker event counters (Tern's own metrics). */
enum tern_stats_event {
	TERN_STATS_DROPPED = 0,    /**< queries dropped without answer (QR=1, too short, ...) */
	TERN_STATS_FORMERR,        /**< malformed queries answered FORMERR */
	TERN_STATS_TRUNCATED,      /**< UDP answers sent with TC */
	TERN_STATS_TCP_ACCEPTED,   /**< TCP connections accepted */
	TERN_STATS_TCP_REFUSED,    /**< TCP connections closed at once: over a cap */
	TERN_STATS_TCP_TIMEOUT,    /**< TCP connections closed idle or slow */
	TERN_STATS_HOT_HIT,        /**< answers replayed from the hot answers (lib/engine/hot.h) */
	TERN_STATS_HOT_STORE,      /**< answers stored in the hot answers */
	TERN_STATS_UDP_POLLED,     /**< a busy UDP socket switched to polling (daemon/worker.c) */
	TERN_STATS_EVENT_COUNT,
};

struct tern_stats_row;

/** Create and register the row of worker @p worker_id. Loader/worker start. */
struct tern_stats_row *tern_stats_row_new(unsigned worker_id);
/** Unregister and free; its counts are kept in a retired total. */
void tern_stats_row_free(struct tern_stats_row *row);

/** Intern (server label, zone) and return its slot, or -1 when the table is full. */
int tern_stats_slot(const char *server, const char *zone);

/** Count a query routed to @p slot (-1: no block matched; zone label "dropped"). */
void tern_stats_request(struct tern_stats_row *row, int slot, enum tern_proto proto,
                        int family, uint16_t qtype, bool dnssec_ok, size_t qsize);

/** Count the answer to a query routed to @p slot. */
void tern_stats_response(struct tern_stats_row *row, int slot, enum tern_proto proto,
                         uint16_t rcode, unsigned plugin_id, size_t rsize,
                         uint64_t duration_ns);

/**
 * Where one kind of answer is counted in a row, found once (hot answers, which are
 * replayed many times on the same worker): the (server, zone) slot, the query type's
 * column and the response (rcode, plugin) entry.
 */
struct tern_stats_loc {
	uint16_t slot_index;
	uint16_t type_index;
	int32_t resp_index;        /**< -1: the response table was full */
};

/** Find (and create) the counters of an answer. Worker of @p row. */
void tern_stats_locate(struct tern_stats_row *row, int slot, uint16_t qtype, uint16_t rcode,
                       unsigned plugin_id, struct tern_stats_loc *loc);

/**
 * Count a replayed answer located by tern_stats_locate() on the same row: what
 * tern_stats_request() + tern_stats_response() + the TERN_STATS_HOT_HIT event count.
 */
void tern_stats_replayed(struct tern_stats_row *row, const struct tern_stats_loc *loc,
                         enum tern_proto proto, int family, bool dnssec_ok, size_t qsize,
                         size_t rsize, uint64_t duration_ns);

void tern_stats_event(struct tern_stats_row *row, enum tern_stats_event ev);
/** Open TCP connections gauge of this worker: @p delta is +1 or -1. */
void tern_stats_tcp_open(struct tern_stats_row *row, int delta);

/** Process-wide counter: a reload that was rejected. Loader. */
void tern_stats_reload_failed(void);

/**
 * Write @p v as a Prometheus label value (without the quotes), with the exposition
 * format's escapes for backslash, double quote and newline. For every metrics writer.
 */
void tern_stats_put_label(FILE *out, const char *v);

/**
 * Write the Prometheus text exposition of everything above (summed over workers),
 * plus coredns_build_info and coredns_panics_total, to @p out.
 */
void tern_stats_render(FILE *out);
