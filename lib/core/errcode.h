/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error space for the whole of Tern: 0 is success, negative errno values are
 * system errors, libknot's codes (-1000..-500) pass through unchanged, and Tern's
 * own codes live below -2000. tern_strerror() names all three.
 */
#pragma once

#include <errno.h>

enum {
	TERN_EOK     = 0,
	TERN_ENOMEM  = -ENOMEM,
	TERN_EINVAL  = -EINVAL,
	TERN_ENOENT  = -ENOENT,
	TERN_EEXIST  = -EEXIST,
	TERN_ERANGE  = -ERANGE,
	TERN_ENOSPC  = -ENOSPC,

	TERN_ECONFIG = -2001, /**< the configuration is invalid (details in the diag) */
	TERN_EZONE   = -2002, /**< a zone file failed to parse or is semantically wrong */
	TERN_EBOOT   = -2003, /**< a reload tried to change a boot-only setting */
};

/** @return a static description of @p err (any of the three ranges). */
const char *tern_strerror(int err);
