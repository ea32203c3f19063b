/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/dns/name.h. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lib/core/attr.h"
#include "lib/dns/name.h"

/* tern_name_is_under agrees with libknot's bailiwick test on names and their suffixes. */
Test(name, is_under_agrees_with_libknot)
{
	static const char *const names[] = {
		".", "org.", "example.org.", "www.example.org.", "a.b.c.example.org.",
		"xexample.org.", "example.org.example.", "org.example.org.", "cluster.local.",
		"svc.cluster.local.", "my-svc.ns.svc.cluster.local.", "local.", "10.in-addr.arpa.",
		"1.0.96.10.in-addr.arpa.", "in-addr.arpa.", "arpa.", "ip6.arpa.", "a.",
	};
	for (size_t i = 0; i < TERN_ARRAY_LEN(names); i++) {
		knot_dname_t *n = knot_dname_from_str_alloc(names[i]);
		for (size_t j = 0; j < TERN_ARRAY_LEN(names); j++) {
			knot_dname_t *z = knot_dname_from_str_alloc(names[j]);
			cr_assert_eq(tern_name_is_under(n, z), knot_dname_in_bailiwick(n, z) >= 0,
			             "%s under %s", names[i], names[j]);
			free(z);
		}
		free(n);
	}
}

/* tern_name_len is knot_dname_size; tern_name_is_under_n agrees with the plain form. */
Test(name, lengths)
{
	static const char *const names[] = {
		".", "a.", "cluster.local.", "svc.cluster.local.", "x.svc.cluster.local.",
		"local.cluster.", "l.", "1.0.96.10.in-addr.arpa.", "in-addr.arpa.",
	};
	for (size_t i = 0; i < TERN_ARRAY_LEN(names); i++) {
		knot_dname_t *n = knot_dname_from_str_alloc(names[i]);
		size_t nl = tern_name_len(n);
		cr_assert_eq(nl, knot_dname_size(n), "%s", names[i]);
		for (size_t j = 0; j < TERN_ARRAY_LEN(names); j++) {
			knot_dname_t *z = knot_dname_from_str_alloc(names[j]);
			cr_assert_eq(tern_name_is_under_n(n, nl, z, tern_name_len(z)),
			             knot_dname_in_bailiwick(n, z) >= 0, "%s under %s",
			             names[i], names[j]);
			free(z);
		}
		free(n);
	}
}
