/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging for every thread. Lines go to stderr as "LEVEL subject: message". Debug
 * checks the level before formatting. Data-plane callers use tern_log_ratelimited()
 * so that a flood of bad packets cannot flood the log.
 * Thread: any.
 */
#pragma once

#include <stdbool.h>
#include "lib/core/attr.h"

enum tern_log_level {
	TERN_LOG_ERR = 0,
	TERN_LOG_WARN,
	TERN_LOG_INFO,
	TERN_LOG_DEBUG,
};

extern enum tern_log_level tern_log_level;

void tern_log(enum tern_log_level lvl, const char *fmt, ...) TERN_PRINTF(2);

/**
 * Allow at most a few lines per second through the token bucket @p bucket
 * (a static per call site). @return true if the caller may log now.
 */
bool tern_log_ratelimited(unsigned *bucket_sec, unsigned *bucket_count);

#define tern_err(...)   tern_log(TERN_LOG_ERR, __VA_ARGS__)
#define tern_warn(...)  tern_log(TERN_LOG_WARN, __VA_ARGS__)
#define tern_info(...)  tern_log(TERN_LOG_INFO, __VA_ARGS__)
#define tern_debug(...) do { if (tern_log_level >= TERN_LOG_DEBUG) \
	tern_log(TERN_LOG_DEBUG, __VA_ARGS__); } while (0)
