/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bump allocator over one caller-provided buffer, exposed as a knot_mm_t so that
 * libknot builds packets in it. The worker owns one per thread and resets it once per
 * packet; free is a no-op. When the buffer is exhausted allocation fails (NULL) and
 * the query is answered SERVFAIL: the hot path never falls back to malloc.
 * Thread: the owning worker only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <libknot/mm_ctx.h>

struct tern_arena {
	uint8_t *base;
	size_t size;
	size_t used;
};

/** Prepare @p a over @p buf (borrowed for the arena's life) and fill @p mm. */
void tern_arena_init(struct tern_arena *a, void *buf, size_t size, knot_mm_t *mm);
void *tern_arena_alloc(struct tern_arena *a, size_t len);
static inline void tern_arena_reset(struct tern_arena *a) { a->used = 0; }
