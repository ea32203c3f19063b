/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests that check counters: the Prometheus text of lib/core/stats.h rendered to
 * memory, and samples read back from it.
 */
#pragma once

/** tern_stats_render() into a malloc'd string (the caller frees it). */
char *t_metrics_render(void);

/** Value of the sample named exactly @p series ("name{labels}"), or -1 if absent. */
double t_metrics_sample(const char *text, const char *series);

/** Sum of every sample whose line starts with @p prefix (0 when none). */
double t_metrics_sum(const char *text, const char *prefix);

/** How many lines start with @p prefix. */
unsigned t_metrics_count_lines(const char *text, const char *prefix);
