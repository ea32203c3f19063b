/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/core/parse.c: durations, listen addresses, their printed form
 * and bounded integers, each as a case table naming the failing input.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <criterion/criterion.h>

#include "lib/core/errcode.h"
#include "lib/core/parse.h"

Test(parse, duration_accepts_documented_forms)
{
	static const struct { const char *in; uint64_t ms; } cases[] = {
		{ "0", 0 }, { "500ms", 500 }, { "5s", 5000 }, { "1m", 60000 },
		{ "1h", 3600000 }, { "1m30s", 90000 }, { "90s", 90000 },
		{ "1h2m3s4ms", 3723004 }, { "0s", 0 }, { "007s", 7000 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		cr_assert_eq(tern_parse_duration(cases[i].in, &ms), 0, "\"%s\" rejected", cases[i].in);
		cr_assert_eq(ms, cases[i].ms, "\"%s\" gave %lu", cases[i].in, (unsigned long)ms);
	}
}

Test(parse, duration_rejects_garbage_negatives_and_overflow)
{
	static const struct { const char *in; int err; } cases[] = {
		{ "", TERN_EINVAL }, { "5", TERN_EINVAL }, { "-5s", TERN_EINVAL },
		{ "5x", TERN_EINVAL }, { "s", TERN_EINVAL }, { " 5s", TERN_EINVAL },
		{ "5s ", TERN_EINVAL }, { "1.5s", TERN_EINVAL }, { "30s1m", TERN_EINVAL },
		{ "1s1s", TERN_EINVAL }, { "5S", TERN_EINVAL }, { "+5s", TERN_EINVAL },
		{ "5sec", TERN_EINVAL }, { "99999999999999999999h", TERN_ERANGE },
		{ "5124095576030432h", TERN_ERANGE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 42;
		cr_assert_eq(tern_parse_duration(cases[i].in, &ms), cases[i].err,
		             "\"%s\" not rejected as expected", cases[i].in);
		cr_assert_eq(ms, 42, "\"%s\" wrote the output on failure", cases[i].in);
	}
}

Test(parse, addr_accepts_v4_v6_default_port_and_wildcard)
{
	static const struct { const char *in; const char *out; } cases[] = {
		{ "127.0.0.1:5300", "127.0.0.1:5300" }, { "[::1]:5300", "[::1]:5300" },
		{ "127.0.0.1", "127.0.0.1:53" }, { "[::]:53", "[::]:53" },
		{ ":53", "0.0.0.0:53" }, { "[::1]", "[::1]:53" }, { "::1", "[::1]:53" },
		{ "10.1.2.3:65535", "10.1.2.3:65535" }, { "[2001:db8::1]:1", "[2001:db8::1]:1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		char buf[TERN_ADDR_STRLEN];
		cr_assert_eq(tern_parse_addr(cases[i].in, 53, &ss), 0, "\"%s\" rejected", cases[i].in);
		cr_assert_eq(tern_addr_str(&ss, buf, sizeof(buf)), 0);
		cr_assert_str_eq(buf, cases[i].out, "\"%s\" printed as %s", cases[i].in, buf);
	}
}

Test(parse, addr_fills_sockaddr_fields)
{
	struct sockaddr_storage ss;
	cr_assert_eq(tern_parse_addr("192.0.2.7", 8080, &ss), 0);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	cr_assert_eq(sin->sin_family, AF_INET);
	cr_assert_eq(ntohs(sin->sin_port), 8080);
	cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0xc0000207u);

	cr_assert_eq(tern_parse_addr("[::1]:9", 53, &ss), 0);
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	cr_assert_eq(sin6->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(sin6->sin6_port), 9);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
}

Test(parse, addr_rejects_hostnames_garbage_and_bad_ports)
{
	static const struct { const char *in; int err; } cases[] = {
		{ "localhost:53", TERN_EINVAL }, { "example.org", TERN_EINVAL },
		{ "", TERN_EINVAL }, { ":", TERN_EINVAL }, { "1.2.3.4:", TERN_EINVAL },
		{ "1.2.3.4:0", TERN_EINVAL }, { "1.2.3.4:65536", TERN_ERANGE },
		{ "1.2.3.4:-1", TERN_EINVAL }, { "1.2.3.4:5x", TERN_EINVAL },
		{ "1.2.3:53", TERN_EINVAL }, { "[::1]53", TERN_EINVAL }, { "[::1", TERN_EINVAL },
		{ "[1.2.3.4]:53", TERN_EINVAL }, { "::g", TERN_EINVAL }, { " 1.2.3.4", TERN_EINVAL },
		{ "1.2.3.4:99999999999999999999999", TERN_ERANGE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		cr_assert_eq(tern_parse_addr(cases[i].in, 53, &ss), cases[i].err,
		             "\"%s\" not rejected as expected", cases[i].in);
	}
}

Test(parse, addr_default_port_zero_is_rejected)
{
	struct sockaddr_storage ss;
	cr_assert_eq(tern_parse_addr("127.0.0.1", 0, &ss), TERN_EINVAL);
	cr_assert_eq(tern_parse_addr("127.0.0.1:1", 0, &ss), 0);
}

Test(parse, addr_str_reports_small_buffer_and_bad_family)
{
	struct sockaddr_storage ss;
	char buf[8];
	cr_assert_eq(tern_parse_addr("127.0.0.1:5300", 53, &ss), 0);
	cr_assert_eq(tern_addr_str(&ss, buf, sizeof(buf)), TERN_ENOSPC);
	ss.ss_family = AF_UNIX;
	cr_assert_eq(tern_addr_str(&ss, buf, sizeof(buf)), TERN_EINVAL);
}

Test(parse, uint_checks_syntax_and_range)
{
	uint64_t v = 0;
	cr_assert_eq(tern_parse_uint("4", 1, 1024, &v), 0);
	cr_assert_eq(v, 4);
	cr_assert_eq(tern_parse_uint("1024", 1, 1024, &v), 0);
	cr_assert_eq(v, 1024);
	cr_assert_eq(tern_parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(tern_parse_uint("0", 1, 1024, &v), TERN_ERANGE);
	cr_assert_eq(tern_parse_uint("1025", 1, 1024, &v), TERN_ERANGE);
	cr_assert_eq(tern_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), TERN_ERANGE);
	cr_assert_eq(tern_parse_uint("", 0, 10, &v), TERN_EINVAL);
	cr_assert_eq(tern_parse_uint("-1", 0, 10, &v), TERN_EINVAL);
	cr_assert_eq(tern_parse_uint("+1", 0, 10, &v), TERN_EINVAL);
	cr_assert_eq(tern_parse_uint("1 ", 0, 10, &v), TERN_EINVAL);
	cr_assert_eq(tern_parse_uint("lots", 0, 10, &v), TERN_EINVAL);
	cr_assert_eq(v, UINT64_MAX, "failed parses must not write the output");
}
