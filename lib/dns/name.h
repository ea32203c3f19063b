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
#include <string.h>
#include <libknot/libknot.h>

/** Wire length of the uncompressed, valid name @p name (knot_dname_size, inline). */
static inline size_t tern_name_len(const knot_dname_t *name)
{
	const uint8_t *p = name;
	while (*p != 0)
		p += *p + 1;
	return (size_t)(p - name) + 1;
}

/**
 * True if lowercase @p name (@p name_len bytes on the wire) equals or lies under
 * lowercase @p zone (@p zone_len bytes): the zone is the name's last @p zone_len bytes
 * and they start at one of the name's labels. For callers that know both lengths
 * (the question's, a configured zone's): one partial label walk and one memcmp.
 */
static inline bool tern_name_is_under_n(const knot_dname_t *name, size_t name_len,
                                        const knot_dname_t *zone, size_t zone_len)
{
	if (zone_len <= 1)
		return true;   /* everything is under the root */
	if (name_len < zone_len)
		return false;
	size_t skip = name_len - zone_len, off = 0;
	while (off < skip)
		off += (size_t)name[off] + 1;
	return off == skip && memcmp(name + off, zone, zone_len) == 0;
}

/** True if lowercase @p name equals or lies under lowercase @p zone. */
static inline bool tern_name_is_under(const knot_dname_t *name, const knot_dname_t *zone)
{
	if (zone[0] == 0)
		return true;
	return tern_name_is_under_n(name, tern_name_len(name), zone, tern_name_len(zone));
}

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
