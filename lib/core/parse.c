/* SPDX-License-Identifier: Apache-2.0 */
/* Strict scalar parsers for config values; see parse.h. */
#include "lib/core/parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/core/errcode.h"

/* Read a run of decimal digits into *v. @return chars consumed, or a TERN_E* code. */
static int read_digits(const char *s, uint64_t *v)
{
	uint64_t acc = 0;
	int n = 0;
	while (s[n] >= '0' && s[n] <= '9') {
		unsigned d = (unsigned)(s[n] - '0');
		if (acc > (UINT64_MAX - d) / 10)
			return TERN_ERANGE;
		acc = acc * 10 + d;
		n++;
		if (n > 32) /* absurdly long even with leading zeros */
			return TERN_ERANGE;
	}
	*v = acc;
	return n;
}

int tern_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (s == NULL || out == NULL)
		return TERN_EINVAL;
	uint64_t v;
	int n = read_digits(s, &v);
	if (n < 0)
		return n;
	if (n == 0 || s[n] != '\0')
		return TERN_EINVAL;
	if (v < min || v > max)
		return TERN_ERANGE;
	*out = v;
	return 0;
}

int tern_parse_duration(const char *s, uint64_t *ms)
{
	/* Units largest first; a part must use a unit smaller than the previous one. */
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ .suffix = "h", .ms = 3600000 },
		{ .suffix = "ms", .ms = 1 },  /* before "m": longest match first */
		{ .suffix = "m", .ms = 60000 },
		{ .suffix = "s", .ms = 1000 },
	};
	if (s == NULL || ms == NULL || *s == '\0')
		return TERN_EINVAL;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	uint64_t total = 0, last_unit = UINT64_MAX;
	const char *p = s;
	while (*p != '\0') {
		uint64_t v;
		int n = read_digits(p, &v);
		if (n < 0)
			return n;
		if (n == 0)
			return TERN_EINVAL;
		p += n;
		uint64_t unit = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].suffix);
			if (strncmp(p, units[i].suffix, len) == 0) {
				unit = units[i].ms;
				p += len;
				break;
			}
		}
		if (unit == 0 || unit >= last_unit)
			return TERN_EINVAL;
		last_unit = unit;
		if (v > UINT64_MAX / unit || total > UINT64_MAX - v * unit)
			return TERN_ERANGE;
		total += v * unit;
	}
	*ms = total;
	return 0;
}

/* Parse "53" as a port: 1..65535. */
static int parse_port(const char *s, uint16_t *port)
{
	uint64_t v;
	int ret = tern_parse_uint(s, 0, UINT64_MAX, &v);
	if (ret != 0)
		return ret;
	if (v == 0)
		return TERN_EINVAL;
	if (v > 65535)
		return TERN_ERANGE;
	*port = (uint16_t)v;
	return 0;
}

int tern_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *out)
{
	if (s == NULL || out == NULL)
		return TERN_EINVAL;
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_str = NULL;
	bool v6;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || (size_t)(end - s - 1) >= sizeof(host))
			return TERN_EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':')
			port_str = end + 2;
		else if (end[1] != '\0')
			return TERN_EINVAL;
		v6 = true;
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Two or more colons without brackets: a bare IPv6 address. */
			if (strlen(s) >= sizeof(host))
				return TERN_EINVAL;
			strcpy(host, s);
			v6 = true;
		} else {
			size_t hlen = colon ? (size_t)(colon - s) : strlen(s);
			if (hlen >= sizeof(host))
				return TERN_EINVAL;
			memcpy(host, s, hlen);
			host[hlen] = '\0';
			if (hlen == 0) {
				if (colon == NULL)
					return TERN_EINVAL;
				strcpy(host, "0.0.0.0");
			}
			port_str = colon ? colon + 1 : NULL;
			v6 = false;
		}
	}

	uint16_t port = default_port;
	if (port_str != NULL) {
		int ret = parse_port(port_str, &port);
		if (ret != 0)
			return ret;
	}
	if (port == 0)
		return TERN_EINVAL;

	memset(out, 0, sizeof(*out));
	if (v6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)out;
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			return TERN_EINVAL;
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons(port);
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)out;
		if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
			return TERN_EINVAL;
		sa->sin_family = AF_INET;
		sa->sin_port = htons(port);
	}
	return 0;
}

int tern_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;
	if (ss == NULL || buf == NULL)
		return TERN_EINVAL;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sa = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "%s:%u", host, ntohs(sa->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "[%s]:%u", host, ntohs(sa->sin6_port));
	} else {
		return TERN_EINVAL;
	}
	if (n < 0 || (size_t)n >= len)
		return TERN_ENOSPC;
	return 0;
}

bool tern_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}
