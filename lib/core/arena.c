/* SPDX-License-Identifier: Apache-2.0 */
/* Bump allocator; see arena.h. Hot path: no malloc, no locks, no blocking. */
#include "lib/core/arena.h"

void *tern_arena_alloc(struct tern_arena *a, size_t len)
{
	/* Align the address, not the offset: the buffer itself may start anywhere. */
	uintptr_t at = ((uintptr_t)(a->base + a->used) + 15) & ~(uintptr_t)15;
	size_t start = (size_t)(at - (uintptr_t)a->base);
	if (start > a->size || len > a->size - start)
		return NULL;
	a->used = start + len;
	return a->base + start;
}

static void *arena_mm_alloc(void *ctx, size_t len)
{
	return tern_arena_alloc(ctx, len);
}

static void arena_mm_free(void *ptr)
{
	(void)ptr;
}

void tern_arena_init(struct tern_arena *a, void *buf, size_t size, knot_mm_t *mm)
{
	a->base = buf;
	a->size = size;
	a->used = 0;
	mm->ctx = a;
	mm->alloc = arena_mm_alloc;
	mm->free = arena_mm_free;
}
