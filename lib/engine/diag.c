/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration diagnostics; see diag.h. The position map is a flat array searched
 * linearly: it is only read when an error is reported, which is rare and cheap next
 * to parsing the file.
 */
#include "lib/engine/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"

void tern_diag_init(struct tern_diag *d, const char *file)
{
	*d = (struct tern_diag){ .file = file ? file : "<string>" };
}

void tern_diag_deinit(struct tern_diag *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->npos; i++)
		free(d->pos[i].path);
	free(d->pos);
	for (size_t i = 0; i < d->nmsgs; i++)
		free(d->msgs[i]);
	free(d->msgs);
	*d = (struct tern_diag){ .file = d->file };
}

/* Make room for one more element in *arr; @return 0 or TERN_ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return TERN_ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

int tern_diag_add_pos(struct tern_diag *d, const char *path, unsigned line, unsigned column)
{
	if (grow((void **)&d->pos, &d->cap_pos, d->npos, sizeof(*d->pos)) != 0)
		return TERN_ENOMEM;
	char *copy = strdup(path);
	if (copy == NULL)
		return TERN_ENOMEM;
	d->pos[d->npos++] = (struct tern_diag_pos){ .path = copy, .line = line, .column = column };
	return 0;
}

void tern_diag_set_prefix(struct tern_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->prefix, sizeof(d->prefix), fmt, ap);
	va_end(ap);
}

/* Store an already formatted message; on allocation failure it still reaches stderr. */
static void add_msg(struct tern_diag *d, char *msg, const char *fallback)
{
	if (msg == NULL || grow((void **)&d->msgs, &d->cap_msgs, d->nmsgs, sizeof(*d->msgs)) != 0) {
		tern_err("config, %s (out of memory while recording it)", msg ? msg : fallback);
		free(msg);
		return;
	}
	d->msgs[d->nmsgs++] = msg;
}

static const struct tern_diag_pos *find_pos(const struct tern_diag *d, const char *path, size_t len)
{
	for (size_t i = 0; i < d->npos; i++) {
		const char *p = d->pos[i].path;
		if (strncmp(p, path, len) == 0 && p[len] == '\0')
			return &d->pos[i];
	}
	return NULL;
}

/*
 * The position of @p path or of its closest recorded ancestor: drop the last ".key"
 * or "[i]" until something is known. The root ("") is a valid last resort.
 */
static const struct tern_diag_pos *lookup(const struct tern_diag *d, const char *path)
{
	size_t len = strlen(path);
	for (;;) {
		const struct tern_diag_pos *pos = find_pos(d, path, len);
		if (pos != NULL || len == 0)
			return pos;
		size_t cut = len;
		while (cut > 0 && path[cut - 1] != '.' && path[cut - 1] != '[')
			cut--;
		len = cut > 0 ? cut - 1 : 0;
	}
}

void tern_diag_error(struct tern_diag *d, const char *key, const char *fmt, ...)
{
	char path[512], text[768];
	if (key == NULL)
		key = "";
	const char *sep = (d->prefix[0] != '\0' && key[0] != '\0' && key[0] != '[') ? "." : "";
	snprintf(path, sizeof(path), "%s%s%s", d->prefix, sep, key);

	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);

	const struct tern_diag_pos *pos = lookup(d, path);
	char loc[64] = "";
	if (pos != NULL)
		snprintf(loc, sizeof(loc), ":%u:%u", pos->line, pos->column);
	char *msg = NULL;
	int ret;
	if (path[0] != '\0')
		ret = asprintf(&msg, "%s%s: %s: %s", d->file, loc, path, text);
	else
		ret = asprintf(&msg, "%s%s: %s", d->file, loc, text);
	add_msg(d, ret < 0 ? NULL : msg, text);
}

void tern_diag_raw(struct tern_diag *d, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int ret = vasprintf(&msg, fmt, ap);
	va_end(ap);
	add_msg(d, ret < 0 ? NULL : msg, fmt);
}
