/* SPDX-License-Identifier: Apache-2.0 */
/* Compiler attributes and branch hints used across Tern. */
#pragma once

#define TERN_PRINTF(fmt_idx) __attribute__((format(printf, fmt_idx, fmt_idx + 1)))
#define TERN_COLD            __attribute__((cold))
#define TERN_NOINLINE        __attribute__((noinline))
#define TERN_UNUSED          __attribute__((unused))
#define likely(x)            __builtin_expect(!!(x), 1)
#define unlikely(x)          __builtin_expect(!!(x), 0)
#define TERN_ARRAY_LEN(a)    (sizeof(a) / sizeof((a)[0]))
