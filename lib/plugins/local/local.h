/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local plugin (CoreDNS's local): answers names that must never leave the host
 * (localhost., names under it, "localhost.<zone>", the 0/127/255 in-addr.arpa. zones and
 * the IPv6 loopback and unspecified reverse names) with fixed data, so that they are
 * never forwarded upstream. init (loader) builds the few RRsets it serves; the query
 * hook (worker) only picks one. This header is the plugin's config: the struct
 * libcyaml fills and its schema, wired into the `plugins:` mapping by
 * lib/engine/plugins.def.
 * Thread: loader (config).
 */
#pragma once

#include <stdbool.h>
#include <cyaml/cyaml.h>

/** `local:` as loaded by libcyaml (README.md documents every key). */
struct tern_local_conf {
	bool *localhost_prefix; /**< answer "localhost.<anything>." too; NULL: true (CoreDNS on) */
};

extern const cyaml_schema_field_t tern_local_conf_fields[];
