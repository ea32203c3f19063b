/* SPDX-License-Identifier: Apache-2.0 */
/* Logging and the shared error-string table; see log.h and errcode.h. */
#include "lib/core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <libknot/error.h>

#include "lib/core/errcode.h"

enum tern_log_level tern_log_level = TERN_LOG_INFO;

static const char *const level_names[] = {
	[TERN_LOG_ERR] = "error", [TERN_LOG_WARN] = "warning",
	[TERN_LOG_INFO] = "info", [TERN_LOG_DEBUG] = "debug",
};

void tern_log(enum tern_log_level lvl, const char *fmt, ...)
{
	if (lvl > tern_log_level)
		return;
	char line[1024];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s] ", level_names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines from different threads whole. */
	fprintf(stderr, "%s\n", line);
}

bool tern_log_ratelimited(unsigned *bucket_sec, unsigned *bucket_count)
{
	unsigned now = (unsigned)time(NULL);
	unsigned sec = __atomic_load_n(bucket_sec, __ATOMIC_RELAXED);
	if (sec != now) {
		__atomic_store_n(bucket_sec, now, __ATOMIC_RELAXED);
		__atomic_store_n(bucket_count, 0, __ATOMIC_RELAXED);
	}
	return __atomic_fetch_add(bucket_count, 1, __ATOMIC_RELAXED) < 5;
}

const char *tern_strerror(int err)
{
	switch (err) {
	case TERN_EOK:     return "success";
	case TERN_ECONFIG: return "invalid configuration";
	case TERN_EZONE:   return "invalid zone";
	case TERN_EBOOT:   return "boot-only setting changed";
	default: break;
	}
	if (err <= -500 && err > -1100)
		return knot_strerror(err);
	return strerror(-err);
}
