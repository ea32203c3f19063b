/* SPDX-License-Identifier: Apache-2.0 */
/* Domain-name helpers; see name.h. Hot path: no malloc, no locks, no blocking. */
#include "lib/dns/name.h"

#include <string.h>

/*
 * One walk over @p name's labels: at each label start, the rest of the name is the zone
 * when its bytes (root label included) equal the zone's. Both names are uncompressed
 * wire names of the same case, so this is knot_dname_in_bailiwick() >= 0 without its
 * two label counts and label-by-label comparison (it runs several times a query).
 */
bool tern_name_is_under(const knot_dname_t *name, const knot_dname_t *zone)
{
	if (zone[0] == 0)
		return true;   /* everything is under the root */
	size_t zlen = 0;   /* measured at the first label that could start the zone */
	for (const uint8_t *p = name; *p != 0; p += *p + 1) {
		if (*p != zone[0] || p[1] != zone[1])
			continue;
		if (zlen == 0)
			zlen = knot_dname_size(zone);
		if (memcmp(p, zone, zlen) == 0)
			return true;
	}
	return false;
}
