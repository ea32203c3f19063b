/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forward plugin (CoreDNS's forward): sends queries inside the server block's
 * zones to up to 15 upstream servers through the worker's asynchronous io
 * (lib/engine/io.h: park and re-run) and copies their answers into the response.
 * This header is the plugin's config: the struct libcyaml fills and its schema, wired
 * into the `plugins:` mapping by lib/engine/plugins.def. README.md documents every key.
 * Thread: loader (config); the descriptor's hooks document their own threads.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <cyaml/cyaml.h>

/** At most this many upstreams per instance (CoreDNS's limit). */
#define TERN_FORWARD_MAX_UPSTREAMS 15

/** `forward.tls:` (CoreDNS's `tls CERT KEY CA`): files for DNS-over-TLS upstreams. */
struct tern_forward_tls_conf {
	char *ca;               /**< PEM CAs trusted besides the system store */
	char *cert;             /**< PEM client certificate (needs key) */
	char *key;              /**< its PEM private key (needs cert) */
};

/** `forward:` as loaded by libcyaml. Durations are strings ("2s", "500ms"). */
struct tern_forward_conf {
	char **to;              /**< IP[:port], dns://IP[:port], tls://IP[%name][:port] or a
	                             resolv.conf path */
	unsigned to_count;
	char **except;          /**< names under these zones are not forwarded */
	unsigned except_count;
	char *policy;           /**< random (default) | round_robin | sequential */
	bool force_tcp;         /**< always TCP to the upstreams */
	bool prefer_udp;        /**< UDP first even for TCP clients (TC: retry over TCP) */
	uint32_t *max_fails;    /**< failures before an upstream is down; NULL: 2; 0: never */
	char *expire;           /**< idle upstream connection lifetime; NULL: 10s */
	char *read_timeout;     /**< per attempt; NULL: 2s */
	uint32_t *max_concurrent; /**< queries in flight before REFUSED; NULL/0: no limit */
	bool failfast_all_unhealthy_upstreams; /**< all down: SERVFAIL at once */
	char **next;            /**< RCODEs that pass the query to the next plugin */
	unsigned next_count;
	char **failover;        /**< RCODEs that make forward try the next upstream */
	unsigned failover_count;
	char *health_check;     /**< probe period while down; NULL: 0.5s */
	char *tls_servername;   /**< tls:// upstreams: SNI and the name their certificate
	                             must carry (absent: it must carry their IP address) */
	struct tern_forward_tls_conf *tls;  /**< tls:// upstreams: CA and client cert files */
};

extern const cyaml_schema_field_t tern_forward_conf_fields[];
