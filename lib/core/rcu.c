/* SPDX-License-Identifier: Apache-2.0 */
/* Storage for the publish epoch and the TSan annotation token declared in rcu.h. */
#include "lib/core/rcu.h"

uint64_t tern_rcu_epoch = 1;

#ifdef TERN_TSAN
char tern_rcu_tsan_token;
#endif
