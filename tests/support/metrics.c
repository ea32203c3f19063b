/* SPDX-License-Identifier: Apache-2.0 */
/* Rendering the statistics to memory and reading samples back (metrics.h). */
#include "tests/support/metrics.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core/stats.h"

char *t_metrics_render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	tern_stats_render(f);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

/* The next line of @p text after @p line (NULL at the end); the first when line NULL. */
static const char *next_line(const char *text, const char *line)
{
	if (!line)
		return *text ? text : NULL;
	const char *eol = strchr(line, '\n');
	return eol && eol[1] ? eol + 1 : NULL;
}

double t_metrics_sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *line = next_line(text, NULL); line; line = next_line(text, line)) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	}
	return -1;
}

double t_metrics_sum(const char *text, const char *prefix)
{
	double sum = 0;
	size_t n = strlen(prefix);
	for (const char *line = next_line(text, NULL); line; line = next_line(text, line)) {
		if (strncmp(line, prefix, n) != 0)
			continue;
		const char *eol = strchr(line, '\n');
		const char *v = eol ? eol : line + strlen(line);
		while (v > line && v[-1] != ' ')
			v--;
		sum += strtod(v, NULL);
	}
	return sum;
}

unsigned t_metrics_count_lines(const char *text, const char *prefix)
{
	unsigned count = 0;
	size_t n = strlen(prefix);
	for (const char *line = next_line(text, NULL); line; line = next_line(text, line)) {
		if (strncmp(line, prefix, n) == 0)
			count++;
	}
	return count;
}
