/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The yajl callbacks behind decode.h. The parser keeps a stack of the keys that lead
 * to the current value, as small tokens; a container whose path cannot lead to a field
 * we keep is skipped whole (only its depth is counted), and a scalar is stored only when
 * its path names a field of the decoder's kind. Paths are compared as integers: the
 * tokens of the path below the item's root, six bits each (P1..P4).
 *
 * Per-item storage is reused: fixed buffers for the names, and growable arrays (with
 * caps from the API's own validation limits) for ports, endpoints, addresses and the
 * short strings they point to. A watch event is delivered at the end of the event, so
 * "type" may come before or after "object".
 * Thread: the decoder's owner.
 */
#include "kube/decode.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <yajl/yajl_parse.h>

#include "lib/core/attr.h"
#include "lib/core/errcode.h"

/* Caps on one item, at or above what the API server's validation allows. */
#define MAX_PORTS      1000      /* EndpointSlice: 100; Services: no limit, be generous */
#define MAX_ENDPOINTS  1000      /* EndpointSlice validation */
#define MAX_ADDRS      8192      /* 1 per endpoint in practice, 100 allowed */
#define MAX_POOL       (1 << 20) /* port names, protocols, hostnames, pod names */
#define MAX_DEPTH      12        /* deepest path we keep is 6; room for skipped levels */
#define NONE           UINT32_MAX

enum tok {
	K_NONE = 0, K_OTHER, K_ARR,
	K_ITEMS, K_METADATA, K_RV, K_CONTINUE, K_TYPE, K_OBJECT, K_NAME, K_NAMESPACE,
	K_SPEC, K_CLUSTERIP, K_CLUSTERIPS, K_EXTERNALNAME, K_PORTS, K_PROTOCOL, K_PORT,
	K_LABELS, K_ANNOTATIONS, K_SVCNAME, K_TRIGGER, K_ADDRESSTYPE, K_ENDPOINTS,
	K_ADDRESSES, K_CONDITIONS, K_READY, K_HOSTNAME, K_TARGETREF, K_KIND, K_DELETIONTS,
	K_STATUS, K_PODIP, K_PODIPS, K_IP, K_PHASE, K_CODE, K_REASON, K_MESSAGE,
	K_COUNT,
};
_Static_assert(K_COUNT < 64, "tokens are packed six bits each");

#define P1(a)          ((uint64_t)(a))
#define P2(a, b)       (P1(a) << 6 | (b))
#define P3(a, b, c)    (P2(a, b) << 6 | (c))
#define P4(a, b, c, e) (P3(a, b, c) << 6 | (e))

static const struct {
	const char *s;
	enum tok t;
} keys[] = {
	{ "items", K_ITEMS }, { "metadata", K_METADATA }, { "resourceVersion", K_RV },
	{ "continue", K_CONTINUE }, { "type", K_TYPE }, { "object", K_OBJECT },
	{ "name", K_NAME }, { "namespace", K_NAMESPACE }, { "spec", K_SPEC },
	{ "clusterIP", K_CLUSTERIP }, { "clusterIPs", K_CLUSTERIPS },
	{ "externalName", K_EXTERNALNAME }, { "ports", K_PORTS }, { "protocol", K_PROTOCOL },
	{ "port", K_PORT }, { "labels", K_LABELS }, { "annotations", K_ANNOTATIONS },
	{ "kubernetes.io/service-name", K_SVCNAME },
	{ "endpoints.kubernetes.io/last-change-trigger-time", K_TRIGGER },
	{ "addressType", K_ADDRESSTYPE }, { "endpoints", K_ENDPOINTS },
	{ "addresses", K_ADDRESSES }, { "conditions", K_CONDITIONS }, { "ready", K_READY },
	{ "hostname", K_HOSTNAME }, { "targetRef", K_TARGETREF }, { "kind", K_KIND },
	{ "deletionTimestamp", K_DELETIONTS }, { "status", K_STATUS }, { "podIP", K_PODIP },
	{ "podIPs", K_PODIPS }, { "ip", K_IP }, { "phase", K_PHASE }, { "code", K_CODE },
	{ "reason", K_REASON }, { "message", K_MESSAGE },
};

enum vtype { V_NONE = 0, V_NULL, V_BOOL, V_INT, V_DOUBLE, V_STR };

struct port_acc {
	uint32_t name, proto;    /* pool offsets or NONE */
	long long port;          /* -1: absent */
};

struct ep_acc {
	uint32_t addr0, naddrs;
	uint32_t hostname, tr_name;  /* pool offsets or NONE */
	bool ready;
	bool tr_pod;
};

/* A growable array with a hard cap. */
struct vec {
	void *p;
	size_t n, cap, size, max;
};

struct kube_decoder {
	enum tern_k8s_kind kind;
	kube_decode_item_fn fn;
	void *ctx;

	enum kube_decode_mode mode;
	yajl_handle h;
	char err[256];
	bool broken;
	int stop_rc;               /* what the callback returned to stop us */

	/* Where we are. */
	uint8_t path[MAX_DEPTH];
	bool is_map[MAX_DEPTH];
	int depth;
	int skip;                  /* >0: inside a container being skipped */

	/* The response. */
	char list_rv[128];
	char *list_cont;           /* up to MAX_POOL */
	size_t list_cont_cap;
	bool top_done;             /* list: the one object closed */
	bool fed_nonspace;         /* anything but whitespace arrived */
	int ev_type;               /* watch: -1 until "type" */
	bool have_object;

	/* The item. */
	const char *bad;           /* why this item is unusable, NULL if fine */
	char name[TERN_K8S_NAME_MAX + 1];
	char ns[TERN_K8S_NAME_MAX + 1];
	char rv[128];
	char svc_type[32];
	char ext_name[TERN_K8S_NAME_MAX + 1];
	char svc_label[TERN_K8S_NAME_MAX + 1];
	char addr_type[16];
	char reason[64];
	char message[256];
	long status_code;
	bool headless;
	bool deleting;
	bool finished_phase;
	double trigger;
	struct tern_ip cip_single;
	bool has_cip_single;
	struct tern_ip cips[2];
	unsigned ncips;
	struct tern_ip pod_ip;
	bool has_pod_ip;
	struct tern_ip pod_ips[2];
	unsigned npod_ips;
	unsigned nonip_addrs;

	struct vec pool;           /* char */
	struct vec ports;          /* struct port_acc */
	struct vec eps;            /* struct ep_acc */
	struct vec addrs;          /* struct tern_ip */
	struct vec out_ports;      /* struct tern_k8s_port */
	struct vec out_eps;        /* struct tern_k8s_endpoint */
};

/* ---- small helpers ---------------------------------------------------------------- */

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		if (v->cap >= v->max)
			return NULL;
		size_t cap = v->cap ? v->cap * 2 : 8;
		if (cap > v->max)
			cap = v->max;
		void *p = realloc(v->p, cap * v->size);
		if (!p)
			return NULL;
		v->p = p;
		v->cap = cap;
	}
	return (char *)v->p + v->size * v->n++;
}

/* Make room for @p n more elements at once (out_* arrays). */
static bool vec_reserve(struct vec *v, size_t n)
{
	if (n <= v->cap)
		return true;
	void *p = realloc(v->p, n * v->size);
	if (!p)
		return false;
	v->p = p;
	v->cap = n;
	return true;
}

static int fail(struct kube_decoder *d, const char *why)
{
	if (!d->broken) {
		d->broken = true;
		snprintf(d->err, sizeof(d->err), "%s", why);
	}
	return 0;  /* yajl: cancel */
}

static void item_bad(struct kube_decoder *d, const char *why)
{
	if (!d->bad)
		d->bad = why;
}

/* Copy a JSON string into a fixed buffer; too long or with a NUL makes the item bad. */
static void set_str(struct kube_decoder *d, char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap || memchr(s, 0, len)) {
		item_bad(d, "string too long or with a NUL");
		return;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Copy, cutting what does not fit (log text only). */
static void set_trunc(char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

static uint32_t pool_add(struct kube_decoder *d, const char *s, size_t len)
{
	struct vec *v = &d->pool;
	if (memchr(s, 0, len) || v->n + len + 1 > v->max) {
		item_bad(d, "string with a NUL, or the item's strings are too long");
		return NONE;
	}
	if (v->n + len + 1 > v->cap) {
		size_t cap = v->cap ? v->cap : 256;
		while (cap < v->n + len + 1)
			cap *= 2;
		if (cap > v->max)
			cap = v->max;
		char *p = realloc(v->p, cap);
		if (!p) {
			item_bad(d, "out of memory");
			return NONE;
		}
		v->p = p;
		v->cap = cap;
	}
	uint32_t off = (uint32_t)v->n;
	memcpy((char *)v->p + off, s, len);
	((char *)v->p)[off + len] = '\0';
	v->n += len + 1;
	return off;
}

static const char *pool_str(const struct kube_decoder *d, uint32_t off)
{
	return off == NONE ? NULL : (const char *)d->pool.p + off;
}

static bool parse_ip(const char *s, size_t len, struct tern_ip *ip)
{
	char buf[INET6_ADDRSTRLEN + 1];
	if (len == 0 || len >= sizeof(buf) || memchr(s, 0, len))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*ip = (struct tern_ip){ 0 };
	if (inet_pton(AF_INET, buf, ip->addr) == 1) {
		ip->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, ip->addr) == 1) {
		ip->family = AF_INET6;
		return true;
	}
	return false;
}

static bool str_is(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* RFC 3339 as the API writes it ("2024-05-01T10:00:00Z", maybe with a fraction or an
 * offset) to unix seconds; 0 when it does not parse (the metric is then skipped). */
static double parse_time(const char *s, size_t len)
{
	char buf[64];
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	struct tm tm = { 0 };
	const char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return 0;
	double frac = 0;
	if (*p == '.') {
		double scale = 0.1;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	long off = 0;
	if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return 0;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else if (*p == 'Z' || *p == 'z') {
		p++;
	} else {
		return 0;
	}
	if (*p != '\0')
		return 0;
	return (double)(timegm(&tm) - off) + frac;
}

/* ---- paths ------------------------------------------------------------------------ */

static enum tok key_token(const unsigned char *k, size_t len)
{
	for (size_t i = 0; i < TERN_ARRAY_LEN(keys); i++)
		if (str_is((const char *)k, len, keys[i].s))
			return keys[i].t;
	return K_OTHER;
}

static unsigned root_len(const struct kube_decoder *d)
{
	return d->mode == KUBE_DECODE_LIST ? 2 : 1;
}

/* The path of the value about to start (or of the container about to close): true and
 * the code below the item root if it is inside an item (0: the root itself), false and
 * the absolute code if not. */
static bool where(const struct kube_decoder *d, uint64_t *code)
{
	unsigned rl = root_len(d);
	bool in = (unsigned)d->depth >= rl &&
		(d->mode == KUBE_DECODE_LIST ? d->path[0] == K_ITEMS && d->path[1] == K_ARR
		                             : d->path[0] == K_OBJECT);
	unsigned from = in ? rl : 0;
	uint64_t c = 0;
	for (int i = (int)from; i < d->depth; i++) {
		if ((unsigned)(i - (int)from) >= 10) {
			*code = UINT64_MAX;  /* deeper than anything we keep */
			return in;
		}
		c = c << 6 | d->path[i];
	}
	*code = c;
	return in;
}

enum want { W_SKIP = 0, W_MAP, W_ARRAY };

/* Which containers lead to something we keep, by kind. */
static enum want item_container(const struct kube_decoder *d, uint64_t c)
{
	enum tern_k8s_kind k = d->kind;
	switch (c) {
	case 0:
	case P1(K_METADATA):
		return W_MAP;
	case P2(K_METADATA, K_LABELS):
	case P2(K_METADATA, K_ANNOTATIONS):
		return k == TERN_K8S_SLICE ? W_MAP : W_SKIP;
	case P1(K_SPEC):
	case P3(K_SPEC, K_PORTS, K_ARR):
		return k == TERN_K8S_SERVICE ? W_MAP : W_SKIP;
	case P2(K_SPEC, K_CLUSTERIPS):
	case P2(K_SPEC, K_PORTS):
		return k == TERN_K8S_SERVICE ? W_ARRAY : W_SKIP;
	case P1(K_ENDPOINTS):
	case P3(K_ENDPOINTS, K_ARR, K_ADDRESSES):
	case P1(K_PORTS):
		return k == TERN_K8S_SLICE ? W_ARRAY : W_SKIP;
	case P2(K_ENDPOINTS, K_ARR):
	case P3(K_ENDPOINTS, K_ARR, K_CONDITIONS):
	case P3(K_ENDPOINTS, K_ARR, K_TARGETREF):
	case P2(K_PORTS, K_ARR):
		return k == TERN_K8S_SLICE ? W_MAP : W_SKIP;
	case P1(K_STATUS):
	case P3(K_STATUS, K_PODIPS, K_ARR):
		return k == TERN_K8S_POD ? W_MAP : W_SKIP;
	case P2(K_STATUS, K_PODIPS):
		return k == TERN_K8S_POD ? W_ARRAY : W_SKIP;
	default:
		return W_SKIP;
	}
}

static enum want top_container(const struct kube_decoder *d, uint64_t c)
{
	if (d->depth == 0)
		return W_MAP;
	if (d->mode == KUBE_DECODE_LIST) {
		if (c == P1(K_METADATA))
			return W_MAP;
		if (c == P1(K_ITEMS))
			return W_ARRAY;
	}
	return W_SKIP;
}

/* The scalar type a path holds, V_NONE if it is not a field we keep. */
static enum vtype item_scalar(const struct kube_decoder *d, uint64_t c)
{
	enum tern_k8s_kind k = d->kind;
	switch (c) {
	case P2(K_METADATA, K_NAME):
	case P2(K_METADATA, K_NAMESPACE):
	case P2(K_METADATA, K_RV):
	case P1(K_REASON):
	case P1(K_MESSAGE):
		return V_STR;
	case P1(K_CODE):
		return V_INT;
	case P2(K_SPEC, K_TYPE):
	case P2(K_SPEC, K_CLUSTERIP):
	case P3(K_SPEC, K_CLUSTERIPS, K_ARR):
	case P2(K_SPEC, K_EXTERNALNAME):
	case P4(K_SPEC, K_PORTS, K_ARR, K_NAME):
	case P4(K_SPEC, K_PORTS, K_ARR, K_PROTOCOL):
		return k == TERN_K8S_SERVICE ? V_STR : V_NONE;
	case P4(K_SPEC, K_PORTS, K_ARR, K_PORT):
		return k == TERN_K8S_SERVICE ? V_INT : V_NONE;
	case P3(K_METADATA, K_LABELS, K_SVCNAME):
	case P3(K_METADATA, K_ANNOTATIONS, K_TRIGGER):
	case P1(K_ADDRESSTYPE):
	case P4(K_ENDPOINTS, K_ARR, K_ADDRESSES, K_ARR):
	case P3(K_ENDPOINTS, K_ARR, K_HOSTNAME):
	case P4(K_ENDPOINTS, K_ARR, K_TARGETREF, K_KIND):
	case P4(K_ENDPOINTS, K_ARR, K_TARGETREF, K_NAME):
	case P3(K_PORTS, K_ARR, K_NAME):
	case P3(K_PORTS, K_ARR, K_PROTOCOL):
		return k == TERN_K8S_SLICE ? V_STR : V_NONE;
	case P4(K_ENDPOINTS, K_ARR, K_CONDITIONS, K_READY):
		return k == TERN_K8S_SLICE ? V_BOOL : V_NONE;
	case P3(K_PORTS, K_ARR, K_PORT):
		return k == TERN_K8S_SLICE ? V_INT : V_NONE;
	case P2(K_METADATA, K_DELETIONTS):
	case P2(K_STATUS, K_PODIP):
	case P4(K_STATUS, K_PODIPS, K_ARR, K_IP):
	case P2(K_STATUS, K_PHASE):
		return k == TERN_K8S_POD ? V_STR : V_NONE;
	default:
		return V_NONE;
	}
}

static enum vtype top_scalar(const struct kube_decoder *d, uint64_t c)
{
	if (d->mode == KUBE_DECODE_LIST)
		return c == P2(K_METADATA, K_RV) || c == P2(K_METADATA, K_CONTINUE) ? V_STR : V_NONE;
	return c == P1(K_TYPE) ? V_STR : V_NONE;
}

/* ---- item life -------------------------------------------------------------------- */

static void item_reset(struct kube_decoder *d)
{
	d->bad = NULL;
	d->name[0] = d->ns[0] = d->rv[0] = d->svc_type[0] = d->ext_name[0] = '\0';
	d->svc_label[0] = d->addr_type[0] = d->reason[0] = d->message[0] = '\0';
	d->status_code = 0;
	d->headless = d->deleting = d->finished_phase = false;
	d->trigger = 0;
	d->has_cip_single = d->has_pod_ip = false;
	d->ncips = d->npod_ips = d->nonip_addrs = 0;
	d->pool.n = d->ports.n = d->eps.n = d->addrs.n = 0;
}

static void store_ip(struct kube_decoder *d, struct tern_ip *arr, unsigned *n, unsigned max,
                     const char *s, size_t len)
{
	struct tern_ip ip;
	if (!parse_ip(s, len, &ip)) {
		item_bad(d, "not an IP address");
		return;
	}
	if (*n >= max) {
		item_bad(d, "too many IP addresses");
		return;
	}
	arr[(*n)++] = ip;
}

static struct port_acc *cur_port(struct kube_decoder *d)
{
	return d->ports.n ? (struct port_acc *)d->ports.p + d->ports.n - 1 : NULL;
}

static struct ep_acc *cur_ep(struct kube_decoder *d)
{
	return d->eps.n ? (struct ep_acc *)d->eps.p + d->eps.n - 1 : NULL;
}

static void open_item_container(struct kube_decoder *d, uint64_t c)
{
	if (c == 0) {
		item_reset(d);
	} else if (c == P3(K_SPEC, K_PORTS, K_ARR) || c == P2(K_PORTS, K_ARR)) {
		struct port_acc *p = vec_push(&d->ports);
		if (!p) {
			item_bad(d, "too many ports");
			return;
		}
		*p = (struct port_acc){ .name = NONE, .proto = NONE, .port = -1 };
	} else if (c == P2(K_ENDPOINTS, K_ARR)) {
		struct ep_acc *e = vec_push(&d->eps);
		if (!e) {
			item_bad(d, "too many endpoints");
			return;
		}
		*e = (struct ep_acc){ .addr0 = (uint32_t)d->addrs.n, .hostname = NONE,
		                      .tr_name = NONE, .ready = true };
	}
}

static void item_string(struct kube_decoder *d, uint64_t c, const char *s, size_t len)
{
	struct port_acc *p;
	struct ep_acc *e;

	switch (c) {
	case P2(K_METADATA, K_NAME):
		set_str(d, d->name, sizeof(d->name), s, len);
		break;
	case P2(K_METADATA, K_NAMESPACE):
		set_str(d, d->ns, sizeof(d->ns), s, len);
		break;
	case P2(K_METADATA, K_RV):
		set_str(d, d->rv, sizeof(d->rv), s, len);
		break;
	case P1(K_REASON):
		set_trunc(d->reason, sizeof(d->reason), s, len);
		break;
	case P1(K_MESSAGE):
		set_trunc(d->message, sizeof(d->message), s, len);
		break;
	case P2(K_SPEC, K_TYPE):
		set_str(d, d->svc_type, sizeof(d->svc_type), s, len);
		break;
	case P2(K_SPEC, K_CLUSTERIP):
		if (str_is(s, len, "None"))
			d->headless = true;
		else if (len > 0)
			d->has_cip_single = parse_ip(s, len, &d->cip_single) ||
			                    (item_bad(d, "clusterIP is not an IP"), false);
		break;
	case P3(K_SPEC, K_CLUSTERIPS, K_ARR):
		if (str_is(s, len, "None"))
			d->headless = true;
		else
			store_ip(d, d->cips, &d->ncips, 2, s, len);
		break;
	case P2(K_SPEC, K_EXTERNALNAME):
		set_str(d, d->ext_name, sizeof(d->ext_name), s, len);
		break;
	case P4(K_SPEC, K_PORTS, K_ARR, K_NAME):
	case P3(K_PORTS, K_ARR, K_NAME):
		if ((p = cur_port(d)))
			p->name = pool_add(d, s, len);
		break;
	case P4(K_SPEC, K_PORTS, K_ARR, K_PROTOCOL):
	case P3(K_PORTS, K_ARR, K_PROTOCOL):
		if ((p = cur_port(d)))
			p->proto = pool_add(d, s, len);
		break;
	case P3(K_METADATA, K_LABELS, K_SVCNAME):
		set_str(d, d->svc_label, sizeof(d->svc_label), s, len);
		break;
	case P3(K_METADATA, K_ANNOTATIONS, K_TRIGGER):
		d->trigger = parse_time(s, len);
		break;
	case P1(K_ADDRESSTYPE):
		set_str(d, d->addr_type, sizeof(d->addr_type), s, len);
		break;
	case P4(K_ENDPOINTS, K_ARR, K_ADDRESSES, K_ARR): {
		struct tern_ip ip;
		if (!(e = cur_ep(d)))
			break;
		if (!parse_ip(s, len, &ip)) {
			d->nonip_addrs++;  /* fine in an FQDN slice, bad otherwise */
			break;
		}
		struct tern_ip *slot = vec_push(&d->addrs);
		if (!slot) {
			item_bad(d, "too many addresses");
			break;
		}
		*slot = ip;
		e->naddrs++;
		break;
	}
	case P3(K_ENDPOINTS, K_ARR, K_HOSTNAME):
		if ((e = cur_ep(d)))
			e->hostname = pool_add(d, s, len);
		break;
	case P4(K_ENDPOINTS, K_ARR, K_TARGETREF, K_KIND):
		if ((e = cur_ep(d)))
			e->tr_pod = str_is(s, len, "Pod");
		break;
	case P4(K_ENDPOINTS, K_ARR, K_TARGETREF, K_NAME):
		if ((e = cur_ep(d)))
			e->tr_name = pool_add(d, s, len);
		break;
	case P2(K_METADATA, K_DELETIONTS):
		d->deleting = true;
		break;
	case P2(K_STATUS, K_PODIP):
		d->has_pod_ip = parse_ip(s, len, &d->pod_ip) ||
		                (item_bad(d, "podIP is not an IP"), false);
		break;
	case P4(K_STATUS, K_PODIPS, K_ARR, K_IP):
		store_ip(d, d->pod_ips, &d->npod_ips, 2, s, len);
		break;
	case P2(K_STATUS, K_PHASE):
		d->finished_phase = str_is(s, len, "Succeeded") || str_is(s, len, "Failed");
		break;
	}
}

static void item_number(struct kube_decoder *d, uint64_t c, long long v)
{
	struct port_acc *p;
	switch (c) {
	case P1(K_CODE):
		d->status_code = (long)v;
		break;
	case P4(K_SPEC, K_PORTS, K_ARR, K_PORT):
	case P3(K_PORTS, K_ARR, K_PORT):
		if (v < 1 || v > 65535)
			item_bad(d, "port out of range");
		else if ((p = cur_port(d)))
			p->port = v;
		break;
	}
}

static void item_bool(struct kube_decoder *d, uint64_t c, bool v)
{
	struct ep_acc *e;
	if (c == P4(K_ENDPOINTS, K_ARR, K_CONDITIONS, K_READY) && (e = cur_ep(d)))
		e->ready = v;
}

/* Turn the accumulated ports into tern_k8s_port (Service ports must have a number;
 * an EndpointSlice port without one means "all ports" and names no SRV target). */
static bool build_ports(struct kube_decoder *d, const struct tern_k8s_port **out, unsigned *n)
{
	if (!vec_reserve(&d->out_ports, d->ports.n))
		return false;
	struct tern_k8s_port *o = d->out_ports.p;
	unsigned k = 0;
	for (size_t i = 0; i < d->ports.n; i++) {
		const struct port_acc *p = (const struct port_acc *)d->ports.p + i;
		if (p->port < 0) {
			if (d->kind == TERN_K8S_SERVICE)
				item_bad(d, "service port without a number");
			continue;
		}
		const char *name = pool_str(d, p->name);
		const char *proto = pool_str(d, p->proto);
		o[k++] = (struct tern_k8s_port){
			.name = name ? name : "",
			.protocol = proto ? proto : "TCP",
			.port = (uint16_t)p->port,
		};
	}
	*out = o;
	*n = k;
	return true;
}

static void build_service(struct kube_decoder *d, struct kube_item *it)
{
	struct tern_k8s_service *s = &it->service;
	s->ns = d->ns;
	s->name = d->name;
	if (strcmp(d->svc_type, "ExternalName") == 0)
		s->kind = TERN_SVC_EXTERNAL_NAME;
	else if (d->headless)
		s->kind = TERN_SVC_HEADLESS;
	else
		s->kind = TERN_SVC_CLUSTER_IP;
	if (s->kind == TERN_SVC_CLUSTER_IP) {
		if (d->ncips) {
			memcpy(s->cluster_ips, d->cips, sizeof(d->cips));
			s->ncluster_ips = d->ncips;
		} else if (d->has_cip_single) {
			s->cluster_ips[0] = d->cip_single;
			s->ncluster_ips = 1;
		}
	}
	s->external_name = s->kind == TERN_SVC_EXTERNAL_NAME ? d->ext_name : NULL;
	if (!build_ports(d, &s->ports, &s->nports))
		item_bad(d, "out of memory");
}

static void build_slice(struct kube_decoder *d, struct kube_item *it)
{
	struct tern_k8s_slice *s = &it->slice;
	bool fqdn = strcmp(d->addr_type, "FQDN") == 0;
	s->ns = d->ns;
	s->name = d->name;
	s->service = d->svc_label;
	s->trigger_time = d->trigger;
	if (!fqdn && d->nonip_addrs)
		item_bad(d, "endpoint address is not an IP");
	if (!build_ports(d, &s->ports, &s->nports) || !vec_reserve(&d->out_eps, d->eps.n)) {
		item_bad(d, "out of memory");
		return;
	}
	struct tern_k8s_endpoint *o = d->out_eps.p;
	unsigned k = 0;
	for (size_t i = 0; i < d->eps.n && !fqdn; i++) {
		const struct ep_acc *e = (const struct ep_acc *)d->eps.p + i;
		if (e->naddrs == 0)
			continue;
		o[k++] = (struct tern_k8s_endpoint){
			.addrs = (const struct tern_ip *)d->addrs.p + e->addr0,
			.naddrs = e->naddrs,
			.hostname = pool_str(d, e->hostname),
			.pod_name = e->tr_pod ? pool_str(d, e->tr_name) : NULL,
			.ready = e->ready,
		};
	}
	s->endpoints = o;
	s->nendpoints = k;
}

static void build_pod(struct kube_decoder *d, struct kube_item *it)
{
	struct tern_k8s_pod *p = &it->pod;
	p->ns = d->ns;
	p->name = d->name;
	if (d->npod_ips) {
		p->ips = d->pod_ips;
		p->nips = d->npod_ips;
	} else if (d->has_pod_ip) {
		p->ips = &d->pod_ip;
		p->nips = 1;
	}
	it->pod_finished = d->finished_phase || d->deleting;
}

/* Deliver the item; @return what yajl wants (1 go on, 0 cancel). */
static int emit(struct kube_decoder *d, enum kube_event ev)
{
	struct kube_item it = {
		.event = ev,
		.kind = d->kind,
		.resource_version = d->rv,
		.status_code = d->status_code,
		.reason = d->reason,
		.message = d->message,
	};
	if (ev != KUBE_EVENT_BOOKMARK && ev != KUBE_EVENT_ERROR) {
		switch (d->kind) {
		case TERN_K8S_SERVICE:
			build_service(d, &it);
			break;
		case TERN_K8S_SLICE:
			build_slice(d, &it);
			break;
		case TERN_K8S_POD:
			build_pod(d, &it);
			break;
		case TERN_K8S_NAMESPACE:
		case TERN_K8S_KIND_COUNT:
			it.namespace_name = d->name;
			break;
		}
		/* A deletion needs the names only. */
		if (ev == KUBE_EVENT_DELETED)
			d->bad = NULL;
		if (!d->name[0])
			item_bad(d, "no metadata.name");
		else if (!d->ns[0] && d->kind != TERN_K8S_NAMESPACE)
			item_bad(d, "no metadata.namespace");
	}
	it.valid = d->bad == NULL;
	it.invalid_reason = d->bad;
	int rc = d->fn(d->ctx, &it);
	if (rc) {
		d->stop_rc = rc;
		return 0;
	}
	return 1;
}

/* ---- yajl callbacks --------------------------------------------------------------- */

static int scalar(struct kube_decoder *d, enum vtype t, const char *s, size_t len,
                  long long num, bool b)
{
	if (d->skip)
		return 1;
	uint64_t c = 0;
	bool in = where(d, &c);
	if (d->depth == 0)
		return fail(d, "the response is not a JSON object");
	enum vtype want = in ? item_scalar(d, c) : top_scalar(d, c);
	if (want == V_NONE) {
		/* A scalar where we expect a container: only null (absent) is fine, and the
		 * string "status" of a Status object. */
		enum want w = in ? item_container(d, c) : top_container(d, c);
		if (w != W_SKIP && t != V_NULL && !(in && c == P1(K_STATUS) && t == V_STR))
			return fail(d, "a value where an object or array belongs");
		if (in && c == 0 && t != V_NULL)
			return fail(d, "the object is not a JSON object");
		return 1;
	}
	if (t == V_NULL)
		return 1;
	if (t != want)
		return fail(d, "a field has the wrong JSON type");

	if (in) {
		if (t == V_STR)
			item_string(d, c, s, len);
		else if (t == V_INT)
			item_number(d, c, num);
		else
			item_bool(d, c, b);
		return 1;
	}
	if (c == P2(K_METADATA, K_RV)) {
		if (len >= sizeof(d->list_rv) || memchr(s, 0, len))
			return fail(d, "list resourceVersion too long");
		memcpy(d->list_rv, s, len);
		d->list_rv[len] = '\0';
	} else if (c == P2(K_METADATA, K_CONTINUE)) {
		if (len + 1 > MAX_POOL || memchr(s, 0, len))
			return fail(d, "list continue token too long");
		if (len + 1 > d->list_cont_cap) {
			char *p = realloc(d->list_cont, len + 1);
			if (!p)
				return fail(d, "out of memory");
			d->list_cont = p;
			d->list_cont_cap = len + 1;
		}
		memcpy(d->list_cont, s, len);
		d->list_cont[len] = '\0';
	} else if (c == P1(K_TYPE)) {
		static const char *const types[] = {
			[KUBE_EVENT_ADDED] = "ADDED", [KUBE_EVENT_MODIFIED] = "MODIFIED",
			[KUBE_EVENT_DELETED] = "DELETED", [KUBE_EVENT_BOOKMARK] = "BOOKMARK",
			[KUBE_EVENT_ERROR] = "ERROR",
		};
		for (size_t i = 0; i < TERN_ARRAY_LEN(types); i++)
			if (str_is(s, len, types[i]))
				d->ev_type = (int)i;
		if (d->ev_type < 0)
			return fail(d, "unknown watch event type");
	}
	return 1;
}

static int cb_null(void *ctx)
{
	return scalar(ctx, V_NULL, NULL, 0, 0, false);
}

static int cb_bool(void *ctx, int v)
{
	return scalar(ctx, V_BOOL, NULL, 0, 0, v != 0);
}

static int cb_int(void *ctx, long long v)
{
	return scalar(ctx, V_INT, NULL, 0, v, false);
}

static int cb_double(void *ctx, double v)
{
	(void)v;
	return scalar(ctx, V_DOUBLE, NULL, 0, 0, false);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	return scalar(ctx, V_STR, (const char *)s, len, 0, false);
}

static int open_container(struct kube_decoder *d, bool is_map)
{
	if (d->skip) {
		d->skip++;
		return 1;
	}
	if (d->depth == 0 && (d->top_done || !is_map))
		return fail(d, d->top_done ? "more than one JSON value" :
		                             "the response is not a JSON object");
	uint64_t c = 0;
	bool in = where(d, &c);
	enum want w = in ? item_container(d, c) : top_container(d, c);
	if (w == W_SKIP) {
		if (in && item_scalar(d, c) != V_NONE)
			return fail(d, "an object or array where a value belongs");
		if (!in && top_scalar(d, c) != V_NONE)
			return fail(d, "an object or array where a value belongs");
		d->skip = 1;
		return 1;
	}
	if ((w == W_MAP) != is_map)
		return fail(d, is_map ? "an object where an array belongs" :
		                        "an array where an object belongs");
	if (d->depth >= MAX_DEPTH) {
		d->skip = 1;
		return 1;
	}
	if (d->depth == 0) {
		d->ev_type = -1;
		d->have_object = false;
	}
	if (in)
		open_item_container(d, c);
	d->is_map[d->depth] = is_map;
	d->path[d->depth] = is_map ? K_NONE : K_ARR;
	d->depth++;
	return 1;
}

static int close_container(struct kube_decoder *d)
{
	if (d->skip) {
		d->skip--;
		return 1;
	}
	d->depth--;
	uint64_t c = 0;
	bool in = where(d, &c);
	if (in && c == 0) {
		if (d->mode == KUBE_DECODE_LIST)
			return emit(d, KUBE_EVENT_ADDED);
		d->have_object = true;
		return 1;
	}
	if (d->depth > 0)
		return 1;
	if (d->mode == KUBE_DECODE_LIST) {
		d->top_done = true;
		return 1;
	}
	if (d->ev_type < 0)
		return fail(d, "watch event without a type");
	if (!d->have_object)
		return fail(d, "watch event without an object");
	return emit(d, (enum kube_event)d->ev_type);
}

static int cb_start_map(void *ctx)
{
	return open_container(ctx, true);
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t len)
{
	struct kube_decoder *d = ctx;
	if (!d->skip)
		d->path[d->depth - 1] = (uint8_t)key_token(k, len);
	return 1;
}

static int cb_end_map(void *ctx)
{
	return close_container(ctx);
}

static int cb_start_array(void *ctx)
{
	return open_container(ctx, false);
}

static int cb_end_array(void *ctx)
{
	return close_container(ctx);
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_integer = cb_int,
	.yajl_double = cb_double,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_map_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

/* ---- API -------------------------------------------------------------------------- */

struct kube_decoder *kube_decode_new(enum tern_k8s_kind kind, kube_decode_item_fn fn, void *ctx)
{
	struct kube_decoder *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->kind = kind;
	d->fn = fn;
	d->ctx = ctx;
	d->pool = (struct vec){ .size = 1, .max = MAX_POOL };
	d->ports = (struct vec){ .size = sizeof(struct port_acc), .max = MAX_PORTS };
	d->eps = (struct vec){ .size = sizeof(struct ep_acc), .max = MAX_ENDPOINTS };
	d->addrs = (struct vec){ .size = sizeof(struct tern_ip), .max = MAX_ADDRS };
	d->out_ports = (struct vec){ .size = sizeof(struct tern_k8s_port), .max = MAX_PORTS };
	d->out_eps = (struct vec){ .size = sizeof(struct tern_k8s_endpoint), .max = MAX_ENDPOINTS };
	return d;
}

void kube_decode_free(struct kube_decoder *d)
{
	if (!d)
		return;
	if (d->h)
		yajl_free(d->h);
	free(d->pool.p);
	free(d->ports.p);
	free(d->eps.p);
	free(d->addrs.p);
	free(d->out_ports.p);
	free(d->out_eps.p);
	free(d->list_cont);
	free(d);
}

int kube_decode_begin(struct kube_decoder *d, enum kube_decode_mode mode)
{
	if (d->h)
		yajl_free(d->h);
	d->h = yajl_alloc(&callbacks, NULL, d);
	if (!d->h)
		return TERN_ENOMEM;
	if (mode == KUBE_DECODE_WATCH)
		yajl_config(d->h, yajl_allow_multiple_values, 1);
	d->mode = mode;
	d->err[0] = '\0';
	d->broken = false;
	d->stop_rc = 0;
	d->depth = 0;
	d->skip = 0;
	d->list_rv[0] = '\0';
	if (d->list_cont)
		d->list_cont[0] = '\0';
	d->top_done = false;
	d->fed_nonspace = false;
	d->ev_type = -1;
	d->have_object = false;
	item_reset(d);
	return 0;
}

static int parse_status(struct kube_decoder *d, yajl_status st, const unsigned char *buf,
                        size_t len)
{
	if (st == yajl_status_ok)
		return 0;
	if (d->stop_rc)
		return d->stop_rc;
	if (!d->broken) {
		unsigned char *msg = yajl_get_error(d->h, 0, buf, len);
		d->broken = true;
		snprintf(d->err, sizeof(d->err), "invalid JSON: %s",
		         msg ? (const char *)msg : "?");
		if (msg)
			yajl_free_error(d->h, msg);
		for (char *p = d->err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		size_t n = strlen(d->err);
		while (n > 0 && d->err[n - 1] == ' ')
			d->err[--n] = '\0';
	}
	return TERN_EINVAL;
}

int kube_decode_feed(struct kube_decoder *d, const void *buf, size_t len)
{
	if (!d->h || d->broken)
		return TERN_EINVAL;
	if (d->stop_rc)
		return d->stop_rc;
	for (size_t i = 0; i < len && !d->fed_nonspace; i++)
		d->fed_nonspace = !memchr(" \t\r\n", ((const char *)buf)[i], 4);
	return parse_status(d, yajl_parse(d->h, buf, len), buf, len);
}

int kube_decode_finish(struct kube_decoder *d)
{
	if (!d->h || d->broken)
		return TERN_EINVAL;
	if (d->stop_rc)
		return d->stop_rc;
	/* yajl calls an empty multi-value stream premature; an empty watch is fine. */
	if (d->mode == KUBE_DECODE_WATCH && !d->fed_nonspace)
		return 0;
	int rc = parse_status(d, yajl_complete_parse(d->h), NULL, 0);
	if (rc)
		return rc;
	if (d->mode == KUBE_DECODE_LIST && !d->top_done)
		return fail(d, "truncated list"), TERN_EINVAL;
	return 0;
}

const char *kube_decode_error(const struct kube_decoder *d)
{
	return d->err;
}

const char *kube_decode_list_rv(const struct kube_decoder *d)
{
	return d->list_rv;
}

const char *kube_decode_list_continue(const struct kube_decoder *d)
{
	return d->list_cont ? d->list_cont : "";
}

size_t kube_decode_footprint(const struct kube_decoder *d)
{
	return sizeof(*d) + d->pool.cap + d->list_cont_cap +
	       d->ports.cap * d->ports.size + d->eps.cap * d->eps.size +
	       d->addrs.cap * d->addrs.size + d->out_ports.cap * d->out_ports.size +
	       d->out_eps.cap * d->out_eps.size;
}
