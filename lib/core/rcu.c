/* SPDX-License-Identifier: Apache-2.0 */
/* Storage for the TSan annotation token declared in rcu.h. */
#include "lib/core/rcu.h"

#ifdef TERN_TSAN
char tern_rcu_tsan_token;
#endif
