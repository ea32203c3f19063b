/* SPDX-License-Identifier: Apache-2.0 */
/* Domain-name helpers; see name.h. Hot path: no malloc, no locks, no blocking. */
#include "lib/dns/name.h"

#include <string.h>

/* @p p and @p z are the same name from here on: label by label, never past either end. */
static bool rest_equals(const uint8_t *p, const uint8_t *z)
{
	for (;;) {
		if (*p != *z)
			return false;
		if (*z == 0)
			return true;
		if (memcmp(p + 1, z + 1, *z) != 0)
			return false;
		p += *p + 1;
		z += *z + 1;
	}
}

/*
 * One walk over @p name's labels: the name is under the zone when the rest of it, from
 * some label on, is the zone. Both names are uncompressed wire names of the same case,
 * so this is knot_dname_in_bailiwick() >= 0 without its two label counts (it runs
 * several times a query).
 */
bool tern_name_is_under(const knot_dname_t *name, const knot_dname_t *zone)
{
	if (zone[0] == 0)
		return true;   /* everything is under the root */
	for (const uint8_t *p = name; *p != 0; p += *p + 1) {
		if (*p == zone[0] && p[1] == zone[1] && rest_equals(p, zone))
			return true;
	}
	return false;
}
