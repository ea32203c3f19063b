/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict parsers for the scalar values found in the config: durations ("1m30s"),
 * listen addresses ("127.0.0.1:53", "[::1]:53", ":53") and bounded unsigned
 * integers, plus the inverse printer for addresses used in messages. They accept
 * exactly the documented forms (docs/CONFIG.md) and reject anything else, including
 * surrounding whitespace, signs and overflow. No allocation.
 * Thread: any.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/**
 * Parse a duration: "0", or one or more <digits><unit> parts with unit ms, s, m or h
 * ("500ms", "5s", "1m30s", "1h"). Each unit appears at most once, largest first.
 * @param[in]  s   NUL-terminated text
 * @param[out] ms  the duration in milliseconds (written only on success)
 * @return 0, TERN_EINVAL (syntax) or TERN_ERANGE (overflow)
 */
int tern_parse_duration(const char *s, uint64_t *ms);

/**
 * Parse a numeric socket address: "1.2.3.4:53", "1.2.3.4" (@p default_port),
 * "[::1]:53", "[::1]", "::1" (@p default_port), ":53" (0.0.0.0:53). Host names are
 * rejected (nothing here may block on DNS).
 * @param[out] out  AF_INET or AF_INET6 address (zeroed, then filled on success)
 * @return 0, TERN_EINVAL (syntax, host name, port 0) or TERN_ERANGE (port > 65535)
 */
int tern_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *out);

/**
 * Print @p ss as "1.2.3.4:53" or "[::1]:53".
 * @return 0, TERN_EINVAL (not AF_INET/AF_INET6) or TERN_ENOSPC (@p buf too small)
 */
int tern_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len);

/** Room for any tern_addr_str() result: "[" + INET6_ADDRSTRLEN + "]:65535". */
#define TERN_ADDR_STRLEN 56

/**
 * Parse a decimal unsigned integer in [@p min, @p max]: digits only, no sign, no
 * spaces.
 * @return 0, TERN_EINVAL (syntax) or TERN_ERANGE (out of range or overflow)
 */
int tern_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/** True if @p a and @p b are the same address family, address and port. */
bool tern_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
