/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A scripted lib/engine/io.h for unit tests (Unbound's fake_event idea): no sockets.
 * tern_io_forward() records each call (plugin, upstream, timeout, tried, the query as
 * sent) and keeps a copy of the parked query; tern_io_refresh() records refreshes;
 * tern_io_upstream_down() answers from a list the test sets. A test then "resumes"
 * the request: t_io_resume() re-runs tern_process() with ctx.resume built from the
 * last forward call and the reply (or timeout, or error) the test chooses, as the
 * daemon's upstream.c would. Plugin hook tests that do not go through the engine use
 * t_io_make_resume() and call the hook again with req->resume set.
 *
 * The struct is visible so tests can script and inspect it. Linked into every unit
 * test (tests/meson.build test_support); the daemon links daemon/upstream.c instead.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/engine/io.h"
#include "lib/engine/process.h"

#define T_IO_MAX_CALLS 32
#define T_IO_MAX_DOWN  8
#define T_IO_QUERY_MAX 4096

/** One recorded tern_io_forward() call. */
struct t_io_forward {
	unsigned plugin_id;
	struct tern_upstream_req u;
	unsigned attempts;              /**< attempts of the request so far, this one included */
	uint8_t query[T_IO_QUERY_MAX];  /**< the query as the plugin's request held it */
	uint16_t qlen;
};

/** One recorded tern_io_refresh() call. */
struct t_io_refresh {
	uint8_t query[T_IO_QUERY_MAX];
	uint16_t qlen;
};

struct tern_io {
	/* Script. */
	int forward_ret;                /**< what tern_io_forward returns (0: park) */
	int refresh_ret;                /**< what tern_io_refresh returns */
	struct sockaddr_storage down[T_IO_MAX_DOWN];   /**< upstreams reported down */
	unsigned ndown;

	/* Record. */
	struct t_io_forward calls[T_IO_MAX_CALLS];
	unsigned ncalls;                /**< every call (only the first T_IO_MAX_CALLS kept) */
	struct t_io_refresh refreshes[T_IO_MAX_CALLS];
	unsigned nrefreshes;
	unsigned down_queries;          /**< tern_io_upstream_down calls */
	unsigned last_max_fails;

	/* The parked request (the last successful forward). */
	bool parked;
	unsigned attempts;
	uint64_t start_ns;
	uint8_t query[T_IO_QUERY_MAX];
	uint16_t qlen;
	uint8_t reply[65535];           /**< the reply handed to the last resume */
};

struct tern_io *t_io_new(void);
void t_io_free(struct tern_io *io);

/** Report @p addr ("IP:port" or "IP", port 53) down from now on. */
void t_io_set_down(struct tern_io *io, const char *addr);

/** The last recorded forward call (asserts there is one). */
const struct t_io_forward *t_io_last(const struct tern_io *io);

/**
 * Fill @p r as the daemon would for the last forward call: its plugin, upstream,
 * transport and tried, the attempts so far, @p st and (for ANSWER) @p wire copied
 * into io->reply. Clears io->parked.
 */
void t_io_make_resume(struct tern_io *io, enum tern_resume_status st, const uint8_t *wire,
                      uint16_t len, struct tern_resume *r);

/**
 * Re-run the parked query through tern_process() with @p base (view, arena, stats...
 * of the original call; io and resume are set here) and the given result.
 * *parked (if given) tells whether it parked again. @return the answer length.
 */
size_t t_io_resume(struct tern_io *io, const struct tern_query_ctx *base,
                   enum tern_resume_status st, const uint8_t *wire, uint16_t len,
                   uint8_t *out, size_t cap, bool *parked);

/** Run recorded refresh @p i through tern_process() as a background refresh. */
size_t t_io_run_refresh(struct tern_io *io, const struct tern_query_ctx *base, unsigned i,
                        uint8_t *out, size_t cap, bool *parked);

/**
 * Build an upstream reply to the last forwarded query: its ID and question, QR and
 * RA set, @p rcode, and @p n A records (@p addrs, dotted quads) with @p ttl owned by
 * the question name. @return its length.
 */
size_t t_io_reply_a(const struct tern_io *io, uint8_t *buf, size_t cap, uint8_t rcode,
                    const char *const *addrs, size_t n, uint32_t ttl);
