/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log plugin (CoreDNS's log): one line per answered query on stderr in CoreDNS's
 * common log format, filtered by response class (success, denial, error). Its answer
 * hook runs on the worker after the plugins below it have answered, so it sees the
 * final RCODE and size. This header is the plugin's config, wired into the
 * `plugins:` mapping by lib/engine/plugins.def.
 * Thread: loader (config).
 */
#pragma once

#include <cyaml/cyaml.h>

/** `log:` as loaded by libcyaml (README.md documents every key). */
struct tern_log_conf {
	char **classes;          /**< YAML `class`: success, denial, error, all; none = all */
	unsigned classes_count;
};

extern const cyaml_schema_field_t tern_log_conf_fields[];
