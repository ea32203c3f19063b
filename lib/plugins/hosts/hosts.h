/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hosts plugin (CoreDNS's hosts): serves A, AAAA and PTR records from a file in
 * /etc/hosts format and from inline entries in the config. The loader builds an
 * immutable table at init; the maintain hook re-reads the file when its mtime or
 * size changes and publishes a new table through RCU. Workers only look names up.
 * This header is the plugin's config: the struct libcyaml fills and its schema,
 * wired into the `plugins:` mapping by lib/engine/plugins.def.
 * Thread: loader (config); the descriptor's hooks document their own threads.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <cyaml/cyaml.h>

/** `hosts:` as loaded by libcyaml (README.md documents every key). */
struct tern_hosts_conf {
	char *path;             /**< hosts file; NULL: /etc/hosts unless entries are given */
	char **entries;         /**< inline lines in hosts(5) format */
	unsigned entries_count;
	char **zones;           /**< names served; none: the server block's zones */
	unsigned zones_count;
	uint32_t *ttl;          /**< seconds, 1..65535; NULL: 3600 */
	char *reload;           /**< file check period ("5s", "500ms", "0" = off); NULL: 5s */
	bool no_reverse;        /**< do not synthesise PTR records */
	bool fallthrough;       /**< pass names it does not know to the next plugin */
};

extern const cyaml_schema_field_t tern_hosts_conf_fields[];
