/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one clock Tern measures with: CLOCK_MONOTONIC (through the vDSO, no syscall),
 * in nanoseconds or milliseconds. Every deadline, age and duration uses it, so values
 * taken on different threads compare. tern_thread_cpu_ns() is the calling thread's
 * CPU time, for work budgets that must not grow when the thread is preempted.
 */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t tern_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tern_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tern_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
