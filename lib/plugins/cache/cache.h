/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache plugin (CoreDNS's cache): a packet cache in front of every plugin after it
 * in the chain (hosts, kubernetes, file, forward). One cache per configured instance,
 * shared by all workers: lookups are lock-free RCU reads of a liburcu-cds hash table,
 * stores and evictions are done by the worker that saw the answer (store.h). This
 * header is the plugin's config: the struct libcyaml fills and its schema, wired into
 * the `plugins:` mapping by lib/engine/plugins.def. README.md documents every key.
 * Thread: loader (config); the descriptor's hooks document their own threads.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <cyaml/cyaml.h>

/** `success:` / `denial:` (CoreDNS's `success CAPACITY [TTL [MINTTL]]`). */
struct tern_cache_kind_conf {
	uint32_t *capacity;     /**< entries, 1..10000000; NULL: 9984 */
	uint32_t *ttl;          /**< maximum TTL served, seconds; NULL: 3600 / 1800 */
	uint32_t *min_ttl;      /**< minimum TTL, seconds; NULL: 1 (CoreDNS: 5) */
};

/** `prefetch:` (CoreDNS's `prefetch AMOUNT [DURATION [PERCENTAGE%]]`). */
struct tern_cache_prefetch_conf {
	uint32_t *amount;       /**< hits without a `duration` gap; NULL: 1 */
	char *duration;         /**< NULL: "1m" */
	uint32_t *percentage;   /**< prefetch when remaining TTL < this % of TTL; NULL: 10 */
};

/** `serve_stale:` (CoreDNS's `serve_stale [DURATION [immediate|verify]]`, RFC 8767). */
struct tern_cache_stale_conf {
	char *duration;         /**< how long past expiry; NULL: "1h" */
	char *refresh;          /**< "immediate" (default) or "verify" */
	uint32_t *ttl;          /**< TTL of stale answers, seconds; NULL: 30 (RFC 8767) */
	char *recheck;          /**< least time between refreshes of one entry; NULL: "30s" */
};

/** `disable:` (CoreDNS's `disable success|denial [ZONES...]`). */
struct tern_cache_disable_conf {
	char **success;
	unsigned success_count;
	char **denial;
	unsigned denial_count;
};

/** `cache:` as loaded by libcyaml. */
struct tern_cache_conf {
	uint32_t *ttl;                                /**< max TTL for both kinds */
	struct tern_cache_kind_conf *success;
	struct tern_cache_kind_conf *denial;
	struct tern_cache_prefetch_conf *prefetch;    /**< NULL: no prefetch */
	struct tern_cache_stale_conf *serve_stale;    /**< NULL: no stale answers */
	char *serve_stale_policy;                     /**< NULL or "prefer_positive" */
	char *servfail;                               /**< duration; NULL: "5s", max 5m */
	struct tern_cache_disable_conf *disable;
	bool keepttl;                                 /**< serve TTLs without ageing */
	char **zones;                                 /**< none: the server block's zones */
	unsigned zones_count;
};

extern const cyaml_schema_field_t tern_cache_conf_fields[];
