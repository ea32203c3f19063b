/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers that plugins use to fill req->answer: put RRsets section by section (a
 * record that does not fit sets req->truncated and stops), set the RCODE and flags,
 * and synthesise the RFC 8482 answer to ANY.
 * Hot path: no malloc, no locks, no blocking.
 */
#pragma once

#include <stdint.h>
#include <libknot/libknot.h>
#include "lib/engine/req.h"

/**
 * Append @p rr to @p section of the answer (sections must come in order: ANSWER,
 * AUTHORITY, ADDITIONAL). The owner is compressed against the question name when it
 * equals it, so the answer echoes the client's case.
 * @return 0, or KNOT_ESPACE after marking the request truncated (in the ANSWER and
 *         AUTHORITY sections; a full ADDITIONAL section is simply left short).
 */
int tern_answer_put(struct tern_req *req, knot_section_t section, const knot_rrset_t *rr);

/** Set the RCODE (values < 16; extended RCODEs are the engine's business). */
void tern_answer_rcode(struct tern_req *req, uint8_t rcode);

/** Mark the answer authoritative (AA) and record @p plugin_id as its source. */
void tern_answer_authoritative(struct tern_req *req, unsigned plugin_id);

/** Record @p plugin_id as the plugin that produced this answer (metrics label). */
void tern_answer_by(struct tern_req *req, unsigned plugin_id);

/**
 * RFC 8482: answer a qtype ANY query for an existing name with one synthesised
 * HINFO "RFC8482" "" record of @p ttl owned by the question name.
 */
int tern_answer_any_hinfo(struct tern_req *req, uint32_t ttl);
