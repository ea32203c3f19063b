/* SPDX-License-Identifier: Apache-2.0 */
/* Domain-name helpers; see name.h. Hot path: no malloc, no locks, no blocking. */
#include "lib/dns/name.h"

bool tern_name_is_under(const knot_dname_t *name, const knot_dname_t *zone)
{
	return knot_dname_in_bailiwick(name, zone) >= 0;
}
