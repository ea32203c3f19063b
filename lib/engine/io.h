/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asynchronous services the daemon injects into the engine, for plugins that must ask
 * a remote server per query (forward) or refresh data in the background (cache
 * prefetch and serve-stale). Implemented per worker by daemon/upstream.c; unit tests
 * can provide a scripted fake.
 *
 * The model is park and re-run. A plugin that sends a query upstream calls
 * tern_io_forward() and returns TERN_PARK. The worker keeps a copy of the client's query
 * and how to reach the client. When the reply arrives (or the attempt times out), the
 * worker runs the whole chain again for that query with req->resume set; the plugin
 * that parked finds its result there and answers (or tries another upstream and parks
 * again). Plugins before it run again too: a cache misses again and then stores the
 * answer from its answer hook. Nothing from the first run (snapshot or view pointers)
 * is kept across the wait, so a reload in between is harmless.
 * Thread: the worker that runs the request.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct tern_req;
struct tern_io;   /* per worker, owned by the daemon */

/** How an attempt ended. */
enum tern_resume_status {
	TERN_RESUME_ANSWER = 0,  /**< a reply that matched ID and question */
	TERN_RESUME_TIMEOUT,     /**< no reply within the timeout */
	TERN_RESUME_ERROR,       /**< network error (refused, reset, unreachable) */
};

/** What a parked request finds when its chain is re-run. */
struct tern_resume {
	unsigned plugin_id;                      /**< the plugin that parked (registry index) */
	enum tern_resume_status status;
	const uint8_t *wire;                     /**< the upstream reply (ANSWER only) */
	uint16_t len;
	struct sockaddr_storage upstream;        /**< where the attempt went */
	bool over_tcp;                           /**< the attempt used TCP */
	uint32_t tried;                          /**< the parking plugin's own bookkeeping */
	unsigned attempts;                       /**< attempts so far for this request */
	uint64_t rtt_us;                         /**< attempt duration */
};

/**
 * How to reach a DNS-over-TLS upstream (RFC 7858). The strings are borrowed for the
 * duration of the tern_io_forward() call only: the io layer copies what it keeps.
 */
struct tern_upstream_tls {
	const char *servername;   /**< SNI and the name the certificate must carry; NULL or
	                               "": no SNI, the certificate must carry the IP address */
	const char *ca_file;      /**< PEM CAs trusted besides the system store, or NULL */
	const char *cert_file;    /**< PEM client certificate, or NULL */
	const char *key_file;     /**< its PEM private key (with cert_file), or NULL */
};

/** One attempt to ask an upstream. */
struct tern_upstream_req {
	struct sockaddr_storage addr;
	bool tcp;                 /**< TCP (force_tcp, or a retry after TC) */
	uint32_t timeout_ms;      /**< read timeout of this attempt */
	uint32_t tried;           /**< handed back in tern_resume.tried */
	const struct tern_upstream_tls *tls;  /**< DNS over TLS (implies TCP), NULL: plain */
	uint32_t expire_ms;       /**< pooled TCP/TLS connections to it close when idle this
	                               long (0: 10 s); the latest request's value wins */
	uint32_t probe_ms;        /**< health probe interval while it is down (0: 500 ms) */
};

/**
 * Send the request's question upstream (a new random ID, a random source port for
 * UDP or a pooled TCP connection, TLS on it when @p u->tls is set) and park the
 * request; the caller returns TERN_PARK. A TLS handshake or certificate failure ends
 * the attempt with TERN_RESUME_ERROR.
 * An identical question already in flight from this worker to the same upstream is
 * joined instead of sent again (coalescing).
 * @return 0, or a negative TERN_E* code (no io, no free slot): then answer another way.
 */
int tern_io_forward(struct tern_req *req, unsigned plugin_id, const struct tern_upstream_req *u);

/**
 * Run this question through the chain again in the background, with no client and
 * with req->refresh set (cache prefetch, serve-stale refresh). At most one refresh per
 * question is pending per worker. @return 0 or a negative TERN_E* code.
 */
int tern_io_refresh(struct tern_req *req);

/**
 * Per-worker health of an upstream, kept by the io layer from the attempts' results:
 * consecutive failures, and whether it is considered down (failures ≥ @p max_fails,
 * max_fails 0 = never). While down the io layer probes it with ". IN NS" every 500 ms
 * and marks it up again on any reply.
 */
bool tern_io_upstream_down(struct tern_req *req, const struct sockaddr_storage *addr,
                           unsigned max_fails);
