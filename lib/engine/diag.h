/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration diagnostics. Every problem found while loading or checking a config
 * is added here with the YAML path of the node it concerns (for example
 * "servers[0].plugins.file.path"); when the config came from a file, the path is
 * turned into file:line:column through the position map the loader recorded.
 * Loading goes on after an error so that one run reports every problem.
 * Thread: loader.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "lib/core/attr.h"

/** Where one YAML node starts in the source text. */
struct tern_diag_pos {
	char *path;      /**< "servers[0].listen[1]"; owned */
	unsigned line;   /**< 1-based */
	unsigned column; /**< 1-based */
};

struct tern_diag {
	const char *file;            /**< borrowed; "<string>" for in-memory configs */
	char prefix[256];            /**< path the next relative key is under */
	struct tern_diag_pos *pos;   /**< position map, owned */
	size_t npos, cap_pos;
	char **msgs;                 /**< formatted messages, owned */
	size_t nmsgs, cap_msgs;
};

void tern_diag_init(struct tern_diag *d, const char *file);
void tern_diag_deinit(struct tern_diag *d);

/** Record that YAML node @p path starts at @p line:@p column. */
int tern_diag_add_pos(struct tern_diag *d, const char *path, unsigned line, unsigned column);

/** Set the prefix for tern_diag_error() keys, printf-style ("servers[%u].plugins.%s"). */
void tern_diag_set_prefix(struct tern_diag *d, const char *fmt, ...) TERN_PRINTF(2);

/**
 * Report a problem with key @p key under the current prefix ("" for the prefix node
 * itself). The message is stored as "FILE:LINE:COL: PATH: MESSAGE" (the position is
 * that of the longest known path that @p key's full path starts with).
 */
void tern_diag_error(struct tern_diag *d, const char *key, const char *fmt, ...) TERN_PRINTF(3);

/** Report a message that already has its own location (e.g. from libcyaml). */
void tern_diag_raw(struct tern_diag *d, const char *fmt, ...) TERN_PRINTF(2);

static inline bool tern_diag_failed(const struct tern_diag *d) { return d->nmsgs > 0; }
