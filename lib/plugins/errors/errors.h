/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The errors plugin (CoreDNS's errors): logs every query whose final answer is
 * SERVFAIL, rate-limited, in CoreDNS's format so that existing log alerts match.
 * This header is the plugin's config, wired into the `plugins:` mapping by
 * lib/engine/plugins.def. `errors: {}` is the whole configuration today.
 * Thread: loader (config).
 */
#pragma once

#include <stdbool.h>
#include <cyaml/cyaml.h>

/** `errors:` as loaded by libcyaml: no keys yet (CoreDNS's consolidate is not supported). */
struct tern_errors_conf {
	bool unused; /**< not in the schema: a C struct needs a member for libcyaml to allocate */
};

extern const cyaml_schema_field_t tern_errors_conf_fields[];
