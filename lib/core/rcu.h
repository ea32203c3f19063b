/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only includer of liburcu (QSBR flavour). Workers are registered readers that
 * report a quiescent state once per loop turn; writers (the loader, a plugin's
 * reload) publish with TERN_RCU_XCHG, wait with tern_rcu_synchronize() and free.
 *
 * Every TERN_RCU_XCHG also advances the publish epoch (tern_rcu_epoch) after the new
 * pointer is visible. Whatever a worker derives from published data and keeps across
 * loop turns (the engine's hot answers, lib/engine/hot.h) records the epoch it read
 * *before* reading the roots, and is used only while the epoch is unchanged: a worker
 * that reads the new epoch also sees every pointer published before it.
 * TERN_RCU_XCHG_SCOPED publishes without advancing it, for data whose readers tell
 * the hot answers which part of it they read (struct tern_hot_scope in
 * lib/engine/req.h: the clusters' snapshots, republished up to every 2 ms under
 * churn, where one change must not retire every answer).
 *
 * Under ThreadSanitizer the publish/read macros become plain C11 atomics and the
 * quiescent/synchronize pair is annotated, because TSan sees neither liburcu's inline
 * asm nor QSBR's grace periods. Real use-after-free bugs stay visible.
 */
#pragma once

#include <stdint.h>

#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu/urcu-qsbr.h>
#include <urcu/rculist.h>

#if defined(__SANITIZE_THREAD__)
#define TERN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TERN_TSAN 1
#endif
#endif

/** Publishes so far (see above). Written by publishers, read by workers. */
extern uint64_t tern_rcu_epoch;

static inline uint64_t tern_rcu_epoch_read(void)
{
	return __atomic_load_n(&tern_rcu_epoch, __ATOMIC_ACQUIRE);
}

static inline void tern_rcu_epoch_advance(void)
{
	__atomic_fetch_add(&tern_rcu_epoch, 1, __ATOMIC_RELEASE);
}

#ifdef TERN_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char tern_rcu_tsan_token;
#define TERN_RCU_DEREF(p)        __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define TERN_RCU_XCHG(pp, v)     __extension__({ \
	__typeof__(*(pp)) old_ = __atomic_exchange_n((pp), (v), __ATOMIC_ACQ_REL); \
	tern_rcu_epoch_advance(); \
	old_; })
#define TERN_RCU_XCHG_SCOPED(pp, v) __atomic_exchange_n((pp), (v), __ATOMIC_ACQ_REL)
#define TERN_RCU_SET(pp, v)      __atomic_store_n((pp), (v), __ATOMIC_RELEASE)
static inline void tern_rcu_quiescent(void)
{
	__tsan_release(&tern_rcu_tsan_token);
	urcu_qsbr_quiescent_state();
}
static inline void tern_rcu_synchronize(void)
{
	urcu_qsbr_synchronize_rcu();
	__tsan_acquire(&tern_rcu_tsan_token);
}
/* Going offline is a quiescent state too (readers online only around a read). */
static inline void tern_rcu_offline(void)
{
	__tsan_release(&tern_rcu_tsan_token);
	urcu_qsbr_thread_offline();
}
/* Hand-overs TSan cannot see (an object passed through liburcu, a grace period). */
#define TERN_TSAN_RELEASE(p)     __tsan_release((void *)(p))
#define TERN_TSAN_ACQUIRE(p)     __tsan_acquire((void *)(p))
#define TERN_TSAN_GRACE()        __tsan_acquire(&tern_rcu_tsan_token)
#else
#define TERN_TSAN_RELEASE(p)     ((void)(p))
#define TERN_TSAN_ACQUIRE(p)     ((void)(p))
#define TERN_TSAN_GRACE()        ((void)0)
#define TERN_RCU_DEREF(p)        rcu_dereference(p)
#define TERN_RCU_XCHG(pp, v)     __extension__({ \
	__typeof__(*(pp)) old_ = rcu_xchg_pointer((pp), (v)); \
	tern_rcu_epoch_advance(); \
	old_; })
#define TERN_RCU_XCHG_SCOPED(pp, v) rcu_xchg_pointer((pp), (v))
#define TERN_RCU_SET(pp, v)      rcu_set_pointer((pp), (v))
static inline void tern_rcu_quiescent(void) { urcu_qsbr_quiescent_state(); }
static inline void tern_rcu_synchronize(void) { urcu_qsbr_synchronize_rcu(); }
static inline void tern_rcu_offline(void)    { urcu_qsbr_thread_offline(); }
#endif

static inline void tern_rcu_register(void)   { urcu_qsbr_register_thread(); }
static inline void tern_rcu_unregister(void) { urcu_qsbr_unregister_thread(); }
static inline void tern_rcu_online(void)     { urcu_qsbr_thread_online(); }
