/* SPDX-License-Identifier: Apache-2.0 */
/* Answer-building helpers for plugins; see answer.h. Hot path: no malloc, no locks. */
#include "lib/dns/answer.h"

int tern_answer_put(struct tern_req *req, knot_section_t section, const knot_rrset_t *rr)
{
	knot_pkt_t *pkt = req->answer;
	if (pkt->current > section)
		return KNOT_EINVAL;
	if (pkt->current < section) {
		int ret = knot_pkt_begin(pkt, section);
		if (ret != KNOT_EOK)
			return ret;
	}
	/* Plugins that synthesise records own them by req->qname itself: skip the compare. */
	uint16_t hint = rr->owner == req->qname || knot_dname_is_equal(rr->owner, req->qname) ?
	                KNOT_COMPR_HINT_QNAME : KNOT_COMPR_HINT_NONE;
	int ret = knot_pkt_put(pkt, hint, rr, KNOT_PF_NOTRUNC);
	if (ret == KNOT_ESPACE && section != KNOT_ADDITIONAL)
		req->truncated = true;
	return ret;
}

void tern_answer_rcode(struct tern_req *req, uint8_t rcode)
{
	knot_wire_set_rcode(req->answer->wire, rcode);
}

void tern_answer_by(struct tern_req *req, unsigned plugin_id)
{
	req->plugin_id = plugin_id;
	req->answered = true;
}

void tern_answer_authoritative(struct tern_req *req, unsigned plugin_id)
{
	knot_wire_set_aa(req->answer->wire);
	tern_answer_by(req, plugin_id);
}

int tern_answer_any_hinfo(struct tern_req *req, uint32_t ttl)
{
	/* HINFO CPU="RFC8482" OS="" (RFC 8482 section 4.2). */
	static const uint8_t rdata[] = { 7, 'R', 'F', 'C', '8', '4', '8', '2', 0 };
	knot_rrset_t rr;
	knot_rrset_init(&rr, (knot_dname_t *)req->qname, KNOT_RRTYPE_HINFO, KNOT_CLASS_IN, ttl);
	int ret = knot_rrset_add_rdata(&rr, rdata, sizeof(rdata), req->mm);
	if (ret != KNOT_EOK)
		return ret;
	return tern_answer_put(req, KNOT_ANSWER, &rr);
}
