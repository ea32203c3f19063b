/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kubernetes plugin's answers: a classified question name (names.c) is looked up
 * in the snapshot of this turn and its records are written to req->answer, with the
 * RCODE/SOA rules of the reference's §1.5 table: A/AAAA of ClusterIPs, ready
 * endpoints and pods, SRV with CoreDNS's weights and A/AAAA glue, PTR, ExternalName
 * CNAMEs chased through in-zone targets, the apex SOA/NS and dns-version TXT.
 * Records are owned by the question name (the answer echoes the client's case).
 * Work is bounded by the client's size limit: an answer that cannot fit stops early
 * and is sent truncated.
 * Thread: worker, RCU read side. RRsets live in req->mm; no malloc, locks, syscalls.
 */
#include "lib/plugins/kubernetes/internal.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/dns/answer.h"
#include "lib/dns/name.h"

/* ExternalName CNAMEs followed inside the plugin's zones, at most. */
#define K8S_CHASE_MAX 8
/* Least wire bytes per record besides its rdata: a compressed owner + fixed fields. */
#define K8S_RR_OVERHEAD 12

/* ---- arena RRsets ----------------------------------------------------------------- */

static void *arena_alloc(struct k8s_query *q, size_t len)
{
	knot_mm_t *mm = q->req->mm;
	return mm->alloc(mm->ctx, len);
}

/* An RRset whose rdata is appended in place (no per-record reallocation). */
struct rrb {
	knot_rrset_t rr;
	size_t cap;        /* bytes of rdata storage */
	bool additional;   /* glue: over budget means "leave it out", not truncation */
};

/* Room for @n records of at most @maxlen bytes each, capped by the answer budget. */
static bool rrb_init(struct k8s_query *q, struct rrb *b, const knot_dname_t *owner,
                     uint16_t type, uint32_t ttl, size_t n, size_t maxlen)
{
	knot_rrset_init(&b->rr, (knot_dname_t *)owner, type, KNOT_CLASS_IN, ttl);
	b->additional = false;
	size_t cap = n * knot_rdata_size((uint16_t)maxlen);
	if (cap > q->room + knot_rdata_size((uint16_t)maxlen))
		cap = q->room + knot_rdata_size((uint16_t)maxlen);
	b->cap = cap;
	if (cap == 0)
		return true;
	b->rr.rrs.rdata = arena_alloc(q, cap);
	return b->rr.rrs.rdata != NULL;
}

/*
 * Append one record. @return false when the answer would not fit: the request is
 * marked truncated (ANSWER) or the record is left out (glue).
 */
static bool rrb_add(struct k8s_query *q, struct rrb *b, const uint8_t *data, size_t len)
{
	size_t cost = K8S_RR_OVERHEAD + len;
	size_t size = knot_rdata_size((uint16_t)len);
	if (cost > q->room || b->rr.rrs.size + size > b->cap) {
		if (!b->additional)
			q->req->truncated = true;
		return false;
	}
	q->room -= cost;
	knot_rdata_t *rd = (knot_rdata_t *)((uint8_t *)b->rr.rrs.rdata + b->rr.rrs.size);
	knot_rdata_init(rd, (uint16_t)len, data);
	b->rr.rrs.size += (uint32_t)size;
	b->rr.rrs.count++;
	return true;
}

static bool rrb_has(const struct rrb *b, const uint8_t *data, size_t len)
{
	const knot_rdata_t *rd = b->rr.rrs.rdata;
	for (uint16_t i = 0; i < b->rr.rrs.count; i++, rd = knot_rdataset_next((knot_rdata_t *)rd)) {
		if (rd->len == len && memcmp(rd->data, data, len) == 0)
			return true;
	}
	return false;
}

/* Put a built RRset in ANSWER. Empty: NODATA. */
static enum k8s_res put_answer(struct k8s_query *q, const struct rrb *b)
{
	if (b->rr.rrs.count == 0)
		return q->req->truncated ? K8S_RES_ANSWER : K8S_RES_NODATA;
	int ret = tern_answer_put(q->req, KNOT_ANSWER, &b->rr);
	if (ret == KNOT_ESPACE)
		return K8S_RES_ANSWER; /* req->truncated is set: the engine sends TC */
	if (ret != 0)
		return K8S_RES_FAIL;
	q->written += b->rr.rrs.count;
	return K8S_RES_ANSWER;
}

/* One record of @type with @data at @owner. */
static enum k8s_res put_one(struct k8s_query *q, const knot_dname_t *owner, uint16_t type,
                            uint32_t ttl, const uint8_t *data, size_t len)
{
	struct rrb b;
	if (!rrb_init(q, &b, owner, type, ttl, 1, len))
		return K8S_RES_FAIL;
	rrb_add(q, &b, data, len);
	return put_answer(q, &b);
}

/* An existing name: RFC 8482 HINFO for ANY, else NODATA. */
static enum k8s_res exists(struct k8s_query *q)
{
	if (q->req->qtype != KNOT_RRTYPE_ANY)
		return K8S_RES_NODATA;
	int ret = tern_answer_any_hinfo(q->req, q->k->ttl);
	if (ret == KNOT_ESPACE)
		return K8S_RES_ANSWER;
	if (ret != 0)
		return K8S_RES_FAIL;
	q->written++;
	return K8S_RES_ANSWER;
}

/* ---- names built for targets ------------------------------------------------------- */

/* @label (lowercase C string) prepended to @suffix, in the arena; NULL if invalid. */
static knot_dname_t *name_prepend(struct k8s_query *q, const char *label,
                                  const knot_dname_t *suffix)
{
	size_t len = strlen(label);
	size_t slen = knot_dname_size(suffix);
	if (len == 0 || len > KNOT_DNAME_MAXLABELLEN || 1 + len + slen > KNOT_DNAME_MAXLEN)
		return NULL;
	uint8_t *out = arena_alloc(q, 1 + len + slen);
	if (out == NULL)
		return NULL;
	out[0] = (uint8_t)len;
	memcpy(out + 1, label, len);
	memcpy(out + 1 + len, suffix, slen);
	return out;
}

/* <svc>.<ns>.svc.<zone> */
static knot_dname_t *service_name(struct k8s_query *q, const struct tern_cluster_svc *s,
                                  const knot_dname_t *zone)
{
	knot_dname_t *n = name_prepend(q, "svc", zone);
	n = n ? name_prepend(q, s->ns, n) : NULL;
	return n ? name_prepend(q, s->name, n) : NULL;
}

/* ---- addresses ------------------------------------------------------------------- */

static int family_of(uint16_t qtype)
{
	return qtype == KNOT_RRTYPE_A ? AF_INET : AF_INET6;
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Beyond this many candidate addresses, duplicates are found with a hash set. */
#define K8S_DEDUP_LINEAR 16

/*
 * A set of the address records already in @b (A and AAAA rdata have a fixed size, so
 * record i sits at i * knot_rdata_size(len)). Lives in the arena, sized for @max.
 */
struct addr_set {
	uint16_t *slots;   /* record index + 1; 0 = empty */
	size_t mask;
};

static uint64_t addr_hash(const uint8_t *a, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ a[i]) * 0x100000001b3ULL;
	return h;
}

static bool addr_set_init(struct k8s_query *q, struct addr_set *set, size_t max)
{
	size_t slots = 32;
	while (slots < 2 * max)
		slots *= 2;
	set->slots = arena_alloc(q, slots * sizeof(*set->slots));
	if (set->slots == NULL)
		return false;
	memset(set->slots, 0, slots * sizeof(*set->slots));
	set->mask = slots - 1;
	return true;
}

/* True if @a is in @b already; otherwise remember that it will be record b->count. */
static bool addr_set_seen(struct addr_set *set, const struct rrb *b, const uint8_t *a,
                          size_t len)
{
	const uint8_t *rdata = (const uint8_t *)b->rr.rrs.rdata;
	size_t size = knot_rdata_size((uint16_t)len);
	for (size_t i = addr_hash(a, len) & set->mask;; i = (i + 1) & set->mask) {
		if (set->slots[i] == 0) {
			set->slots[i] = (uint16_t)(b->rr.rrs.count + 1);
			return false;
		}
		const knot_rdata_t *rd = (const void *)(rdata + (set->slots[i] - 1) * size);
		if (memcmp(rd->data, a, len) == 0)
			return true;
	}
}

/*
 * The addresses of @family among @n tern_ip found every @stride bytes from @base
 * (a ClusterIP array or the .ip of endpoints), duplicates removed, as one RRset. The
 * work is bounded by the answer's room, not by @n.
 */
static bool build_addrs(struct k8s_query *q, struct rrb *b, const knot_dname_t *owner,
                        int family, const void *base, size_t n, size_t stride,
                        bool additional)
{
	uint16_t type = family == AF_INET ? KNOT_RRTYPE_A : KNOT_RRTYPE_AAAA;
	size_t len = addr_len(family);
	if (!rrb_init(q, b, owner, type, q->k->ttl, n, len))
		return false;
	b->additional = additional;
	size_t max = q->room / (K8S_RR_OVERHEAD + len) + 1;
	struct addr_set set = { 0 };
	if (n > K8S_DEDUP_LINEAR && !addr_set_init(q, &set, n < max ? n : max))
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct tern_ip *ip = (const void *)((const uint8_t *)base + i * stride);
		if (ip->family != family)
			continue;
		bool dup = set.slots != NULL ? addr_set_seen(&set, b, ip->addr, len) :
		                               rrb_has(b, ip->addr, len);
		if (dup)
			continue;
		if (!rrb_add(q, b, ip->addr, len))
			break;
	}
	return true;
}

static enum k8s_res put_addrs(struct k8s_query *q, const knot_dname_t *owner,
                              const void *base, size_t n, size_t stride)
{
	struct rrb b;
	if (!build_addrs(q, &b, owner, family_of(q->req->qtype), base, n, stride, false))
		return K8S_RES_FAIL;
	return put_answer(q, &b);
}

/* Queue the A and AAAA glue of @target for the ADDITIONAL section. */
static void add_glue(struct k8s_query *q, const knot_dname_t *target, const void *base,
                     size_t n, size_t stride)
{
	static const int families[] = { AF_INET, AF_INET6 };
	for (size_t f = 0; f < 2 && q->nextra < q->cap_extra; f++) {
		struct rrb b;
		if (!build_addrs(q, &b, target, families[f], base, n, stride, true))
			return;
		if (b.rr.rrs.count > 0)
			q->extra[q->nextra++] = b.rr;
	}
}

/* ---- SRV ------------------------------------------------------------------------- */

static bool is_headless(const struct tern_cluster_svc *s)
{
	return s->kind == TERN_SVC_HEADLESS;
}

/* The ports an SRV question selects (named match for _port._proto, else all). */
static bool port_selected(const struct tern_cluster_port *p, const struct k8s_name *n)
{
	if (n->kind != K8S_NAME_PORT)
		return true;
	return p->name[0] != '\0' && k8s_label_is(n->port, p->name) &&
	       k8s_label_is(n->proto, p->proto);
}

/* Selected port numbers, deduplicated (targets are deduplicated on target + port). */
static size_t select_ports(const struct tern_cluster_svc *s, const struct k8s_name *n,
                           uint16_t *out)
{
	const struct tern_cluster_port *ports = is_headless(s) ? s->ep_ports : s->ports;
	size_t nports = is_headless(s) ? s->nep_ports : s->nports;
	size_t k = 0;
	for (size_t i = 0; i < nports; i++) {
		if (!port_selected(&ports[i], n))
			continue;
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = out[j] == ports[i].port;
		if (!dup)
			out[k++] = ports[i].port;
	}
	return k;
}

/* Endpoints [first, end) sharing eps[first].hostname (eps are sorted by hostname). */
static size_t host_end(const struct tern_cluster_svc *s, size_t first)
{
	size_t end = first + 1;
	while (end < s->neps && strcmp(s->eps[end].hostname, s->eps[first].hostname) == 0)
		end++;
	return end;
}

static size_t count_hosts(const struct tern_cluster_svc *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->neps; i = host_end(s, i))
		n++;
	return n;
}

static bool srv_add(struct k8s_query *q, struct rrb *b, uint16_t weight, uint16_t port,
                    const knot_dname_t *target)
{
	uint8_t rdata[6 + KNOT_DNAME_MAXLEN];
	size_t tlen = knot_dname_size(target);
	knot_wire_write_u16(rdata, 0);          /* priority */
	knot_wire_write_u16(rdata + 2, weight);
	knot_wire_write_u16(rdata + 4, port);
	memcpy(rdata + 6, target, tlen);
	return rrb_add(q, b, rdata, 6 + tlen);
}

/*
 * SRV records of @s (R4/R8 and CoreDNS's all-ports form): one per (target, port),
 * priority 0, weight floor(100 / n) (at least 1); targets are the service name
 * (ClusterIP) or each endpoint hostname (headless); their A/AAAA go to ADDITIONAL.
 */
static enum k8s_res put_srv(struct k8s_query *q, const knot_dname_t *owner,
                            const struct tern_cluster_svc *s, const struct k8s_name *n)
{
	size_t nports_max = is_headless(s) ? s->nep_ports : s->nports;
	if (nports_max == 0)
		return K8S_RES_NODATA;
	uint16_t *ports = arena_alloc(q, nports_max * sizeof(*ports));
	if (ports == NULL)
		return K8S_RES_FAIL;
	size_t nports = select_ports(s, n, ports);
	size_t ntargets = is_headless(s) ? count_hosts(s) : 1;
	size_t nrec = nports * ntargets;
	if (nrec == 0)
		return K8S_RES_NODATA;
	uint16_t weight = nrec >= 100 ? 1 : (uint16_t)(100 / nrec);

	knot_dname_t *svc_name = service_name(q, s, q->zone->name);
	if (svc_name == NULL)
		return K8S_RES_FAIL;
	q->cap_extra = 2 * ntargets;
	q->extra = arena_alloc(q, q->cap_extra * sizeof(*q->extra));
	struct rrb b;
	if (q->extra == NULL ||
	    !rrb_init(q, &b, owner, KNOT_RRTYPE_SRV, q->k->ttl, nrec, 6 + KNOT_DNAME_MAXLEN))
		return K8S_RES_FAIL;

	if (!is_headless(s)) {
		for (size_t p = 0; p < nports; p++) {
			if (!srv_add(q, &b, weight, ports[p], svc_name))
				return put_answer(q, &b);
		}
		enum k8s_res res = put_answer(q, &b);
		if (res == K8S_RES_ANSWER && !q->req->truncated)
			add_glue(q, svc_name, s->cluster_ips, s->ncluster_ips, sizeof(struct tern_ip));
		return res;
	}
	/* Glue is built after the SRV set so that it never takes the answer's room. */
	for (size_t i = 0; i < s->neps; i = host_end(s, i)) {
		knot_dname_t *target = name_prepend(q, s->eps[i].hostname, svc_name);
		if (target == NULL)
			continue; /* a hostname that cannot be a label */
		for (size_t p = 0; p < nports; p++) {
			if (!srv_add(q, &b, weight, ports[p], target))
				return put_answer(q, &b);
		}
	}
	enum k8s_res res = put_answer(q, &b);
	for (size_t i = 0; res == K8S_RES_ANSWER && !q->req->truncated && i < s->neps;) {
		size_t end = host_end(s, i);
		knot_dname_t *target = name_prepend(q, s->eps[i].hostname, svc_name);
		if (target != NULL)
			add_glue(q, target, &s->eps[i].ip, end - i, sizeof(s->eps[0]));
		i = end;
	}
	return res;
}

/* ---- services and endpoints ------------------------------------------------------ */

/* An ExternalName that is an IP address is not answered (CoreDNS). */
static bool name_is_ip(const knot_dname_t *name)
{
	char text[KNOT_DNAME_TXT_MAXLEN + 1];
	if (knot_dname_to_str(text, name, sizeof(text)) == NULL)
		return true;
	size_t len = strlen(text);
	if (len > 0 && text[len - 1] == '.')
		text[len - 1] = '\0';
	uint8_t addr[16];
	return inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1;
}

/* Endpoints of @s named @label: *first..*end, or false when none. */
static bool find_endpoint(const struct tern_cluster_svc *s, struct k8s_label label,
                          size_t *first, size_t *end)
{
	for (size_t i = 0; i < s->neps; i = host_end(s, i)) {
		if (k8s_label_is(label, s->eps[i].hostname)) {
			*first = i;
			*end = host_end(s, i);
			return true;
		}
	}
	return false;
}

static bool has_port(const struct tern_cluster_svc *s, const struct k8s_name *n)
{
	const struct tern_cluster_port *ports = is_headless(s) ? s->ep_ports : s->ports;
	size_t nports = is_headless(s) ? s->nep_ports : s->nports;
	for (size_t i = 0; i < nports; i++) {
		if (port_selected(&ports[i], n))
			return true;
	}
	return false;
}

static enum k8s_res answer_service(struct k8s_query *q, const knot_dname_t *owner,
                                   const struct k8s_name *n, const knot_dname_t **target)
{
	uint32_t part;
	const struct tern_cluster_svc *s = tern_cluster_find_service(q->c, n->ns.s, n->ns.len,
	                                                             n->svc.s, n->svc.len, &part);
	k8s_reads(q, part);
	if (s == NULL)
		return K8S_RES_NXDOMAIN;
	uint16_t qtype = q->req->qtype;

	switch (s->kind) {
	case TERN_SVC_EXTERNAL_NAME:
		if (n->kind != K8S_NAME_SERVICE || s->external_name == NULL ||
		    name_is_ip(s->external_name))
			return K8S_RES_NXDOMAIN;
		*target = s->external_name;
		return put_one(q, owner, KNOT_RRTYPE_CNAME, q->k->ttl, s->external_name,
		               knot_dname_size(s->external_name));
	case TERN_SVC_CLUSTER_IP:
		if (q->k->ignore_empty && !q->k->noendpoints && s->neps == 0)
			return K8S_RES_NXDOMAIN;
		break;
	case TERN_SVC_HEADLESS:
		if (s->neps == 0)
			return K8S_RES_NXDOMAIN; /* R6: no ready endpoint */
		break;
	}

	if (n->kind == K8S_NAME_ENDPOINT) {
		size_t first, end;
		if (!find_endpoint(s, n->ep, &first, &end))
			return K8S_RES_NXDOMAIN;
		if (qtype == KNOT_RRTYPE_A || qtype == KNOT_RRTYPE_AAAA)
			return put_addrs(q, owner, &s->eps[first].ip, end - first, sizeof(s->eps[0]));
		return exists(q);
	}
	if (n->kind == K8S_NAME_PORT && !has_port(s, n))
		return K8S_RES_NXDOMAIN;

	switch (qtype) {
	case KNOT_RRTYPE_A:
	case KNOT_RRTYPE_AAAA:
		if (is_headless(s))
			return put_addrs(q, owner, &s->eps[0].ip, s->neps, sizeof(s->eps[0]));
		return put_addrs(q, owner, s->cluster_ips, s->ncluster_ips, sizeof(struct tern_ip));
	case KNOT_RRTYPE_SRV:
		return put_srv(q, owner, s, n);
	default:
		return exists(q);
	}
}

/* ---- pods, reverse, apex ---------------------------------------------------------- */

static enum k8s_res answer_pod(struct k8s_query *q, const knot_dname_t *owner,
                               const struct k8s_name *n)
{
	const struct k8s *k = q->k;
	if (k->pods == TERN_KUBERNETES_PODS_DISABLED || !n->ip_ok)
		return K8S_RES_NXDOMAIN;
	k8s_reads(q, TERN_CLUSTER_PART_NAMESPACES);
	if (!tern_cluster_has_namespace(q->c, n->ns.s, n->ns.len))
		return K8S_RES_NXDOMAIN;
	if (k->pods == TERN_KUBERNETES_PODS_VERIFIED) {
		k8s_reads(q, TERN_CLUSTER_PART_PODS);
		if (!tern_cluster_has_pod(q->c, n->ns.s, n->ns.len, &n->ip))
			return K8S_RES_NXDOMAIN;
	}
	uint16_t qtype = q->req->qtype;
	if (qtype == KNOT_RRTYPE_A || qtype == KNOT_RRTYPE_AAAA)
		return put_addrs(q, owner, &n->ip, 1, sizeof(n->ip));
	return exists(q);
}

/* R5/R9: PTR of a ClusterIP or of ready endpoint addresses, into the primary zone. */
static enum k8s_res answer_ptr(struct k8s_query *q, const knot_dname_t *owner,
                               const struct k8s_name *n)
{
	const struct tern_cluster_ptr *hits = NULL;
	uint32_t part;
	size_t nhits = tern_cluster_find_ptr(q->c, &n->ip, &hits, &part);
	k8s_reads(q, part);
	if (nhits == 0)
		return K8S_RES_NXDOMAIN;
	if (q->req->qtype != KNOT_RRTYPE_PTR)
		return exists(q);
	const knot_dname_t *primary = q->k->zones[q->k->primary].name;
	struct rrb b;
	if (!rrb_init(q, &b, owner, KNOT_RRTYPE_PTR, q->k->ttl, nhits, KNOT_DNAME_MAXLEN))
		return K8S_RES_FAIL;
	for (size_t i = 0; i < nhits; i++) {
		knot_dname_t *target = service_name(q, hits[i].svc, primary);
		if (target != NULL && hits[i].ep != NULL)
			target = name_prepend(q, hits[i].ep->hostname, target);
		if (target == NULL)
			continue;
		size_t len = knot_dname_size(target);
		if (!rrb_has(&b, target, len) && !rrb_add(q, &b, target, len))
			break;
	}
	return put_answer(q, &b);
}

static enum k8s_res answer_apex(struct k8s_query *q, const knot_dname_t *owner)
{
	const struct k8s_zone *z = q->zone;
	switch (q->req->qtype) {
	case KNOT_RRTYPE_SOA: {
		uint8_t *rdata = arena_alloc(q, z->soa_len);
		if (rdata == NULL)
			return K8S_RES_FAIL;
		memcpy(rdata, z->soa_rdata, z->soa_len);
		knot_wire_write_u32(rdata + z->soa_len - 20, tern_cluster_serial(q->c));
		q->serial = true;
		uint32_t ttl = q->k->ttl < K8S_SOA_TTL_MAX ? q->k->ttl : K8S_SOA_TTL_MAX;
		return put_one(q, owner, KNOT_RRTYPE_SOA, ttl, rdata, z->soa_len);
	}
	case KNOT_RRTYPE_NS:
		return put_one(q, owner, KNOT_RRTYPE_NS, q->k->ttl, z->ns_name,
		               knot_dname_size(z->ns_name));
	default:
		return exists(q);
	}
}

static enum k8s_res answer_name(struct k8s_query *q, const knot_dname_t *owner,
                                const struct k8s_name *n, const knot_dname_t **target)
{
	static const uint8_t version_txt[] = { 5, '1', '.', '1', '.', '0' };
	switch (n->kind) {
	case K8S_NAME_APEX:
		return answer_apex(q, owner);
	case K8S_NAME_VERSION:
		if (q->req->qtype == KNOT_RRTYPE_TXT)
			return put_one(q, owner, KNOT_RRTYPE_TXT, K8S_VERSION_TTL, version_txt,
			               sizeof(version_txt));
		return exists(q);
	case K8S_NAME_NS:
	case K8S_NAME_EMPTY:
		return exists(q);
	case K8S_NAME_NAMESPACE:
		if (n->pod && q->k->pods == TERN_KUBERNETES_PODS_DISABLED)
			return K8S_RES_NXDOMAIN;
		k8s_reads(q, TERN_CLUSTER_PART_NAMESPACES);
		if (!tern_cluster_has_namespace(q->c, n->ns.s, n->ns.len))
			return K8S_RES_NXDOMAIN;
		return exists(q);
	case K8S_NAME_SERVICE:
	case K8S_NAME_ENDPOINT:
	case K8S_NAME_PORT:
		return answer_service(q, owner, n, target);
	case K8S_NAME_POD:
		return answer_pod(q, owner, n);
	case K8S_NAME_REVERSE:
		return answer_ptr(q, owner, n);
	case K8S_NAME_NONE:
		break;
	}
	return K8S_RES_NXDOMAIN;
}

/* ---- the query --------------------------------------------------------------------- */

const struct k8s_zone *k8s_find_zone(const struct k8s *k, const knot_dname_t *name,
                                     size_t len)
{
	const struct k8s_zone *best = NULL;
	for (size_t i = 0; i < k->nzones; i++) {
		const struct k8s_zone *z = &k->zones[i];
		if ((best == NULL || z->labels > best->labels) &&
		    tern_name_is_under_n(name, len, z->name, z->len))
			best = z;
	}
	return best;
}

void k8s_room_init(struct k8s_query *q)
{
	size_t used = q->req->answer->size;
	q->room = q->req->max_size > used ? q->req->max_size - used : 0;
}

enum k8s_res k8s_resolve(struct k8s_query *q, const struct k8s_zone *zone)
{
	const knot_dname_t *owner = q->req->qname;
	uint16_t qtype = q->req->qtype;
	for (unsigned depth = 0;; depth++) {
		q->zone = zone;
		struct k8s_name n;
		k8s_name_parse(zone, owner, &n);
		const knot_dname_t *target = NULL;
		enum k8s_res res = answer_name(q, owner, &n, &target);
		if (res != K8S_RES_ANSWER || target == NULL || q->req->truncated)
			return res;
		/* A CNAME was written: follow it while it stays in our zones (R10). */
		if (qtype == KNOT_RRTYPE_CNAME || qtype == KNOT_RRTYPE_ANY ||
		    depth + 1 >= K8S_CHASE_MAX)
			return res;
		zone = k8s_find_zone(q->k, target, tern_name_len(target));
		if (zone == NULL)
			return res;
		owner = target;
	}
}

/* The zone's SOA in AUTHORITY with TTL = the configured TTL (RFC 2308). */
static int put_negative_soa(struct k8s_query *q)
{
	const struct k8s_zone *z = q->zone;
	uint8_t *rdata = arena_alloc(q, z->soa_len);
	if (rdata == NULL)
		return KNOT_ENOMEM;
	memcpy(rdata, z->soa_rdata, z->soa_len);
	knot_wire_write_u32(rdata + z->soa_len - 20, tern_cluster_serial(q->c));
	q->serial = true;
	knot_rrset_t soa;
	knot_rrset_init(&soa, z->name, KNOT_RRTYPE_SOA, KNOT_CLASS_IN, q->k->ttl);
	knot_rdata_t *rd = arena_alloc(q, knot_rdata_size((uint16_t)z->soa_len));
	if (rd == NULL)
		return KNOT_ENOMEM;
	knot_rdata_init(rd, (uint16_t)z->soa_len, rdata);
	soa.rrs = (knot_rdataset_t){
		.count = 1,
		.size = (uint32_t)knot_rdata_size((uint16_t)z->soa_len),
		.rdata = rd,
	};
	int ret = tern_answer_put(q->req, KNOT_AUTHORITY, &soa);
	return ret == KNOT_ESPACE ? 0 : ret; /* ESPACE: truncated, the engine sends TC */
}

int k8s_finish(struct k8s_query *q, enum k8s_res res)
{
	struct tern_req *req = q->req;
	tern_answer_authoritative(req, q->plugin_id);
	tern_answer_rcode(req, res == K8S_RES_NXDOMAIN ? KNOT_RCODE_NXDOMAIN :
	                       KNOT_RCODE_NOERROR);
	if (req->truncated)
		return 0;
	if (res != K8S_RES_ANSWER)
		return put_negative_soa(q);
	for (size_t i = 0; i < q->nextra; i++) {
		int ret = tern_answer_put(req, KNOT_ADDITIONAL, &q->extra[i]);
		if (ret == KNOT_ESPACE)
			break; /* glue is optional: leave the rest out */
		if (ret != 0)
			return ret;
	}
	return 0;
}
