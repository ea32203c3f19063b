/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Domain-name helpers over libknot's wire-format names: case-insensitive suffix tests,
 * label counting, and a hash for lowercased names used by in-memory tables.
 * Hot path: no malloc, no locks, no blocking.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>

/** True if lowercase @p name equals or lies under lowercase @p zone. */
bool tern_name_is_under(const knot_dname_t *name, const knot_dname_t *zone);

/** FNV-1a over a lowercased wire name (including the root label). */
static inline uint64_t tern_name_hash(const knot_dname_t *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t len = knot_dname_size(name);
	for (size_t i = 0; i < len; i++) {
		h ^= name[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
