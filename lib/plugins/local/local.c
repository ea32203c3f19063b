/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local plugin: fixed answers for names that must never leave the host, as
 * CoreDNS's local plugin gives them (RFC 6761 localhost, RFC 6303 locally served
 * reverse zones). init (loader) builds the handful of rdatasets served (loopback A and
 * AAAA, the SOA and NS of every local zone, the loopback PTR) into the instance, which
 * is read-only once published. The query hook (worker) matches the question against a
 * short fixed list of zone apexes and answers with a stack knot_rrset_t that points at
 * those rdatasets: no malloc, no locks, no syscalls. The one counter,
 * coredns_local_localhost_requests_total, is process-wide (it has no server label in
 * CoreDNS either and must survive reloads), kept in per-worker padded slots.
 */
#include "lib/plugins/local/local.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/dns/answer.h"
#include "lib/dns/name.h"
#include "lib/engine/diag.h"
#include "lib/engine/hot.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"

/* CoreDNS's TTL for everything local answers (and the SOA minimum): one week. */
#define LOCAL_TTL      604800u
#define LOCAL_SLOTS    64u      /* counter slots; workers beyond share them atomically */

const cyaml_schema_field_t tern_local_conf_fields[] = {
	CYAML_FIELD_BOOL_PTR("localhost_prefix", CYAML_FLAG_OPTIONAL, struct tern_local_conf,
	                     localhost_prefix),
	CYAML_FIELD_END
};

/* The zones served, in presentation form; index 0 must stay localhost. */
enum local_zone {
	ZONE_LOCALHOST = 0,
	ZONE_V4_THIS,       /* 0.in-addr.arpa. */
	ZONE_V4_LOOPBACK,   /* 127.in-addr.arpa. */
	ZONE_V4_BROADCAST,  /* 255.in-addr.arpa. */
	ZONE_V6_LOOPBACK,   /* ::1, a zone of one name (RFC 6303 section 4.3) */
	ZONE_V6_UNSPEC,     /* ::, idem */
	ZONE_COUNT,
};

static const char *const zone_strs[ZONE_COUNT] = {
	[ZONE_LOCALHOST] = "localhost.",
	[ZONE_V4_THIS] = "0.in-addr.arpa.",
	[ZONE_V4_LOOPBACK] = "127.in-addr.arpa.",
	[ZONE_V4_BROADCAST] = "255.in-addr.arpa.",
	[ZONE_V6_LOOPBACK] = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	                     "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
	[ZONE_V6_UNSPEC] = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	                   "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
};

/* "localhost." in wire form: the RDATA of NS and PTR, and the SOA's MNAME. */
static const uint8_t localhost_wire[] = "\x09localhost";
/* 1.0.0.127.in-addr.arpa. in wire form: the one IPv4 name with a PTR. */
static const uint8_t loopback_ptr_name[] = "\x01" "1" "\x01" "0" "\x01" "0" "\x03" "127"
                                           "\x07" "in-addr" "\x04" "arpa";

/* One configured instance: read-only once the view is published. */
struct local {
	knot_dname_t *apex[ZONE_COUNT];  /* lowercase wire names of zone_strs */
	knot_rdataset_t a;               /* 127.0.0.1 */
	knot_rdataset_t aaaa;            /* ::1 */
	knot_rdataset_t soa;             /* localhost. root.localhost. 1 0 0 0 604800 */
	knot_rdataset_t ns;              /* localhost. */
	knot_rdataset_t ptr;             /* localhost. */
	bool localhost_prefix;
};

/* Queries under .localhost. and for localhost.<zone> (CoreDNS does not count localhost.). */
static struct {
	_Alignas(64) _Atomic uint64_t n;
} localhost_requests[LOCAL_SLOTS];

/* ---- control plane -------------------------------------------------------------- */

static void local_free(struct local *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < ZONE_COUNT; i++)
		knot_dname_free(l->apex[i], NULL);
	knot_rdataset_clear(&l->a, NULL);
	knot_rdataset_clear(&l->aaaa, NULL);
	knot_rdataset_clear(&l->soa, NULL);
	knot_rdataset_clear(&l->ns, NULL);
	knot_rdataset_clear(&l->ptr, NULL);
	free(l);
}

/* Add one record of @len bytes to @rs. */
static int add_rdata(knot_rdataset_t *rs, const uint8_t *data, uint16_t len)
{
	knot_rrset_t rr;
	knot_rrset_init(&rr, NULL, 0, KNOT_CLASS_IN, LOCAL_TTL);
	int ret = knot_rrset_add_rdata(&rr, data, len, NULL);
	if (ret != KNOT_EOK)
		return ret == KNOT_ENOMEM ? TERN_ENOMEM : ret;
	*rs = rr.rrs;
	return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int build_records(struct local *l)
{
	static const uint8_t v4[4] = { 127, 0, 0, 1 };
	static const uint8_t v6[16] = { [15] = 1 };
	const uint16_t name_len = sizeof(localhost_wire); /* with the root label */

	/* SOA: MNAME localhost., RNAME root.localhost., serial 1, timers 0, minimum. */
	uint8_t soa[64];
	size_t o = 0;
	memcpy(soa + o, localhost_wire, name_len);
	o += name_len;
	soa[o++] = 4;
	memcpy(soa + o, "root", 4);
	o += 4;
	memcpy(soa + o, localhost_wire, name_len);
	o += name_len;
	const uint32_t fields[5] = { 1, 0, 0, 0, LOCAL_TTL };
	for (size_t i = 0; i < 5; i++, o += 4)
		put_u32(soa + o, fields[i]);

	int ret = add_rdata(&l->a, v4, sizeof(v4));
	if (ret == 0)
		ret = add_rdata(&l->aaaa, v6, sizeof(v6));
	if (ret == 0)
		ret = add_rdata(&l->soa, soa, (uint16_t)o);
	if (ret == 0)
		ret = add_rdata(&l->ns, localhost_wire, name_len);
	if (ret == 0)
		ret = add_rdata(&l->ptr, localhost_wire, name_len);
	return ret;
}

static int local_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                      const struct tern_plugin_env *env, struct tern_diag *diag)
{
	(void)env;
	(void)diag; /* nothing to reject: the only option is a YAML bool */
	const struct tern_local_conf *conf = conf_ptr;
	struct local *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return TERN_ENOMEM;
	l->localhost_prefix = conf->localhost_prefix == NULL || *conf->localhost_prefix;
	for (size_t i = 0; i < ZONE_COUNT; i++) {
		l->apex[i] = knot_dname_from_str_alloc(zone_strs[i]);
		if (l->apex[i] == NULL) {
			local_free(l);
			return TERN_ENOMEM;
		}
	}
	int ret = build_records(l);
	if (ret != 0) {
		local_free(l);
		return ret;
	}
	pi->data = l;
	return 0;
}

static void local_deinit(struct tern_plugin_inst *pi)
{
	local_free(pi->data);
	pi->data = NULL;
}

static void local_metrics(FILE *out, const struct tern_view *view, unsigned plugin_id)
{
	bool enabled = false;
	for (size_t s = 0; s < view->nservers && !enabled; s++) {
		const struct tern_server *srv = &view->servers[s];
		for (size_t p = 0; p < srv->chain_len; p++)
			enabled = enabled || srv->chain[p].plugin_id == plugin_id;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < LOCAL_SLOTS; i++)
		total += atomic_load_explicit(&localhost_requests[i].n, memory_order_relaxed);
	if (!enabled && total == 0)
		return;
	fputs("# HELP coredns_local_localhost_requests_total Counter of localhost.<domain> "
	      "requests.\n# TYPE coredns_local_localhost_requests_total counter\n", out);
	fprintf(out, "coredns_local_localhost_requests_total %llu\n", (unsigned long long)total);
}

/* ---- data plane ------------------------------------------------------------------ */

/* Put @rs as an RRset of @type owned by @owner into @section. */
static int put(struct tern_req *req, knot_section_t section, const knot_dname_t *owner,
               uint16_t type, const knot_rdataset_t *rs)
{
	knot_rrset_t rr;
	knot_rrset_init(&rr, (knot_dname_t *)owner, type, KNOT_CLASS_IN, LOCAL_TTL);
	rr.rrs = *rs;
	return tern_answer_put(req, section, &rr);
}

/* KNOT_ESPACE: req->truncated is set and the engine sends TC; the answer is done too. */
static enum tern_verdict finish(int ret)
{
	return ret == 0 || ret == KNOT_ESPACE ? TERN_DONE : TERN_FAIL;
}

/* NODATA (or NXDOMAIN with @rcode) with the SOA of @apex in AUTHORITY. */
static enum tern_verdict negative(struct tern_req *req, const struct local *l,
                                  const knot_dname_t *apex, uint8_t rcode)
{
	tern_answer_rcode(req, rcode);
	return finish(put(req, KNOT_AUTHORITY, apex, KNOT_RRTYPE_SOA, &l->soa));
}

/*
 * A name that is all loopback: localhost. itself, a name under it (RFC 6761 section
 * 6.3), or "localhost.<zone>" with localhost_prefix. A and AAAA are the loopback
 * addresses; ANY gets both; other types are NODATA with the SOA of @apex.
 */
static enum tern_verdict loopback(struct tern_req *req, const struct local *l,
                                  const knot_dname_t *apex)
{
	uint16_t t = req->qtype;
	if (t != KNOT_RRTYPE_A && t != KNOT_RRTYPE_AAAA && t != KNOT_RRTYPE_ANY)
		return negative(req, l, apex, KNOT_RCODE_NOERROR);
	int ret = 0;
	if (t != KNOT_RRTYPE_AAAA)
		ret = put(req, KNOT_ANSWER, req->qname, KNOT_RRTYPE_A, &l->a);
	if (ret == 0 && t != KNOT_RRTYPE_A)
		ret = put(req, KNOT_ANSWER, req->qname, KNOT_RRTYPE_AAAA, &l->aaaa);
	return finish(ret);
}

/* The question is a zone apex: SOA and NS there, plus the data of localhost. and ::1. */
static enum tern_verdict at_apex(struct tern_req *req, const struct local *l, size_t z)
{
	uint16_t t = req->qtype;
	bool any = t == KNOT_RRTYPE_ANY;
	const struct {
		bool want;
		uint16_t type;
		const knot_rdataset_t *rs;
	} sets[] = {
		{ .want = t == KNOT_RRTYPE_SOA || any, .type = KNOT_RRTYPE_SOA, .rs = &l->soa },
		{ .want = t == KNOT_RRTYPE_NS || any, .type = KNOT_RRTYPE_NS, .rs = &l->ns },
		{ .want = z == ZONE_LOCALHOST && (t == KNOT_RRTYPE_A || any),
		  .type = KNOT_RRTYPE_A, .rs = &l->a },
		{ .want = z == ZONE_LOCALHOST && (t == KNOT_RRTYPE_AAAA || any),
		  .type = KNOT_RRTYPE_AAAA, .rs = &l->aaaa },
		{ .want = z == ZONE_V6_LOOPBACK && (t == KNOT_RRTYPE_PTR || any),
		  .type = KNOT_RRTYPE_PTR, .rs = &l->ptr },
	};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		if (!sets[i].want)
			continue;
		int ret = put(req, KNOT_ANSWER, req->qname, sets[i].type, sets[i].rs);
		if (ret != 0)
			return finish(ret);
		n++;
	}
	if (n == 0)
		return negative(req, l, l->apex[z], KNOT_RCODE_NOERROR);
	return TERN_DONE;
}

static bool has_localhost_prefix(const knot_dname_t *name)
{
	return name[0] == 9 && memcmp(name + 1, "localhost", 9) == 0 && name[10] != 0;
}

/*
 * A replay of this answer from the hot answers (lib/engine/hot.h) counts it too; their
 * increments are single-writer, so only a worker that owns its slot lets them.
 */
static void count_localhost(struct tern_req *req)
{
	_Atomic uint64_t *n = &localhost_requests[req->worker_id % LOCAL_SLOTS].n;
	atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
	if (req->worker_id < LOCAL_SLOTS)
		tern_hot_count(req, n);
	else
		req->hot.deny = true;
}

static enum tern_verdict local_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct local *l = pi->data;
	if (req->qclass != KNOT_CLASS_IN)
		return TERN_NEXT;
	const knot_dname_t *qname = req->qname;

	size_t z = 0;
	while (z < ZONE_COUNT && !tern_name_is_under(qname, l->apex[z]))
		z++;
	bool apex = z < ZONE_COUNT && knot_dname_is_equal(qname, l->apex[z]);

	if (z == ZONE_LOCALHOST && !apex) {
		count_localhost(req);
		tern_answer_authoritative(req, pi->plugin_id);
		return loopback(req, l, l->apex[ZONE_LOCALHOST]);
	}
	if (z == ZONE_COUNT && l->localhost_prefix && has_localhost_prefix(qname)) {
		/* Legacy "localhost.<zone>": no zone of ours, the name is its own apex. */
		count_localhost(req);
		tern_answer_authoritative(req, pi->plugin_id);
		return loopback(req, l, qname);
	}
	if (z == ZONE_COUNT)
		return TERN_NEXT;

	tern_answer_authoritative(req, pi->plugin_id);
	if (apex)
		return at_apex(req, l, z);
	if (z == ZONE_V4_LOOPBACK && knot_dname_is_equal(qname, loopback_ptr_name)) {
		if (req->qtype == KNOT_RRTYPE_PTR || req->qtype == KNOT_RRTYPE_ANY)
			return finish(put(req, KNOT_ANSWER, qname, KNOT_RRTYPE_PTR, &l->ptr));
		return negative(req, l, l->apex[z], KNOT_RCODE_NOERROR);
	}
	return negative(req, l, l->apex[z], KNOT_RCODE_NXDOMAIN);
}

TERN_PLUGIN_DEFINE(local,
	.hot = TERN_HOT_SKIP | TERN_HOT_PURE,
	.init = local_init,
	.deinit = local_deinit,
	.metrics = local_metrics,
	.query = local_query);
