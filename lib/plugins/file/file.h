/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration of the file plugin (serve one RFC 1035 zone file authoritatively).
 * The struct mirrors the YAML node `file:` of a server block; libcyaml fills it through
 * tern_file_conf_fields, which lib/engine/conf.c wires in via plugins.def, and the
 * plugin's init hook checks it and fills defaults. See README.md next to this file.
 * Thread: loader.
 */
#pragma once

#include <stdbool.h>
#include <cyaml/cyaml.h>

struct tern_file_conf {
	char *path;        /**< zone file; relative paths are under the config's directory */
	char *origin;      /**< zone origin; NULL = the server block's first zone */
	char *reload;      /**< change-check interval ("500ms", "5s", "1m"); NULL = 5s, "0" = off */
	bool fallthrough;  /**< on NXDOMAIN pass the query to the next plugin instead */
};

/** The libcyaml mapping fields of struct tern_file_conf. */
extern const cyaml_schema_field_t tern_file_conf_fields[];
