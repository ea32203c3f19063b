/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kubernetes plugin's query-name grammar: which schema a lowercase question name
 * follows inside one of the plugin's zones (Kubernetes DNS spec §2 plus CoreDNS's
 * parse.go: `<svc>.<ns>.svc`, `<hostname>.<svc>.<ns>.svc`, `_<port>._<proto>.<svc>.
 * <ns>.svc`, `<ip>.<ns>.pod`, `dns-version`, `ns.dns`, the zone apex) and the two
 * address encodings (reverse names, dashed pod IPs). Syntax only: existence is
 * decided against the snapshot by records.c.
 * Thread: worker (called from the query hook); no malloc, no locks, no syscalls.
 */
#include "lib/plugins/kubernetes/internal.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/dns/name.h"

/* The longest forward schema: _port._proto.svc.ns.svc */
#define K8S_MAX_REL_LABELS 5

/* The first @n labels of @name, leftmost first. */
static void labels_of(const knot_dname_t *name, struct k8s_label *out, size_t n)
{
	const uint8_t *p = name;
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct k8s_label){ .s = (const char *)p + 1, .len = p[0] };
		p += 1 + p[0];
	}
}

/* CoreDNS strips one leading underscore from the port and protocol labels. */
static struct k8s_label strip_underscore(struct k8s_label l)
{
	if (l.len > 0 && l.s[0] == '_') {
		l.s++;
		l.len--;
	}
	return l;
}

static bool parse_octet(struct k8s_label l, uint8_t *out)
{
	if (l.len == 0 || l.len > 3 || (l.len > 1 && l.s[0] == '0'))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < l.len; i++) {
		if (l.s[i] < '0' || l.s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(l.s[i] - '0');
	}
	if (v > 255)
		return false;
	*out = (uint8_t)v;
	return true;
}

static int nibble(struct k8s_label l)
{
	if (l.len != 1)
		return -1;
	char c = l.s[0];
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool k8s_name_parse_reverse(const knot_dname_t *name, struct tern_ip *ip)
{
	const knot_dname_t *v4 = (const knot_dname_t *)K8S_IN_ADDR_ARPA;
	const knot_dname_t *v6 = (const knot_dname_t *)K8S_IP6_ARPA;
	int labels = knot_dname_labels(name, NULL);
	struct k8s_label l[32];

	*ip = (struct tern_ip){ 0 };
	if (tern_name_is_under(name, v4)) {
		if (labels != 4 + 2)
			return false;
		labels_of(name, l, 4);
		ip->family = AF_INET;
		for (int i = 0; i < 4; i++) {
			if (!parse_octet(l[i], &ip->addr[3 - i]))
				return false;
		}
		return true;
	}
	if (tern_name_is_under(name, v6)) {
		if (labels != 32 + 2)
			return false;
		labels_of(name, l, 32);
		ip->family = AF_INET6;
		for (int i = 0; i < 32; i++) {
			int v = nibble(l[i]);
			if (v < 0)
				return false;
			/* l[0] is the low nibble of the last byte. */
			ip->addr[15 - i / 2] |= (uint8_t)(i % 2 == 0 ? v : v << 4);
		}
		return true;
	}
	return false;
}

bool k8s_name_parse_dashed_ip(const char *s, size_t len, struct tern_ip *ip)
{
	char buf[64];
	if (len == 0 || len >= sizeof(buf))
		return false;
	size_t dashes = 0;
	bool double_dash = false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '-') {
			dashes++;
			double_dash = double_dash || (i > 0 && s[i - 1] == '-');
		}
	}
	bool v4 = dashes == 3 && !double_dash;
	for (size_t i = 0; i < len; i++)
		buf[i] = s[i] == '-' ? (v4 ? '.' : ':') : s[i];
	buf[len] = '\0';
	*ip = (struct tern_ip){ .family = v4 ? AF_INET : AF_INET6 };
	return inet_pton(ip->family, buf, ip->addr) == 1;
}

/* Names under <zone>'s `svc` label: rel[] leftmost first, rel[n-1] is "svc". */
static void parse_svc(const struct k8s_label *rel, size_t n, struct k8s_name *out)
{
	switch (n) {
	case 1:
		out->kind = K8S_NAME_EMPTY;
		return;
	case 2:
		out->kind = K8S_NAME_NAMESPACE;
		out->ns = rel[0];
		return;
	case 3:
		out->kind = K8S_NAME_SERVICE;
		break;
	case 4:
		out->kind = K8S_NAME_ENDPOINT;
		out->ep = rel[0];
		break;
	case 5:
		out->kind = K8S_NAME_PORT;
		out->port = strip_underscore(rel[0]);
		out->proto = strip_underscore(rel[1]);
		if (out->port.len == 0 || out->proto.len == 0)
			out->kind = K8S_NAME_NONE;
		break;
	default:
		out->kind = K8S_NAME_NONE;
		return;
	}
	out->svc = rel[n - 3];
	out->ns = rel[n - 2];
}

static void parse_pod(const struct k8s_label *rel, size_t n, struct k8s_name *out)
{
	switch (n) {
	case 1:
		out->kind = K8S_NAME_EMPTY;
		return;
	case 2:
		out->kind = K8S_NAME_NAMESPACE;
		out->ns = rel[0];
		out->pod = true;
		return;
	case 3:
		out->kind = K8S_NAME_POD;
		out->ns = rel[1];
		out->ip_ok = k8s_name_parse_dashed_ip(rel[0].s, rel[0].len, &out->ip);
		return;
	default:
		out->kind = K8S_NAME_NONE;
		return;
	}
}

void k8s_name_parse(const struct k8s_zone *zone, const knot_dname_t *name,
                    struct k8s_name *out)
{
	*out = (struct k8s_name){ .kind = K8S_NAME_NONE };
	size_t labels = 0, len = 1;
	for (const uint8_t *p = name; *p != 0; p += *p + 1) {
		labels++;
		len += *p + 1u;
	}
	size_t rel = labels > zone->labels ? labels - zone->labels : 0;
	if (rel == 0) {
		out->kind = K8S_NAME_APEX;
		return;
	}
	/* Reverse names follow the address grammar whatever zone holds them. */
	if (zone->reverse ||
	    tern_name_is_under_n(name, len, (const knot_dname_t *)K8S_IN_ADDR_ARPA,
	                         sizeof(K8S_IN_ADDR_ARPA)) ||
	    tern_name_is_under_n(name, len, (const knot_dname_t *)K8S_IP6_ARPA,
	                         sizeof(K8S_IP6_ARPA))) {
		if (k8s_name_parse_reverse(name, &out->ip))
			out->kind = K8S_NAME_REVERSE;
		return;
	}
	if (rel > K8S_MAX_REL_LABELS)
		return; /* too long for any schema */

	struct k8s_label l[K8S_MAX_REL_LABELS];
	labels_of(name, l, rel);
	struct k8s_label last = l[rel - 1];
	if (k8s_label_is(last, "svc")) {
		parse_svc(l, rel, out);
	} else if (k8s_label_is(last, "pod")) {
		parse_pod(l, rel, out);
	} else if (rel == 1 && k8s_label_is(last, "dns-version")) {
		out->kind = K8S_NAME_VERSION;
	} else if (k8s_label_is(last, "dns")) {
		/* dns.<zone> only exists as the parent of ns.dns.<zone>. */
		if (rel == 1)
			out->kind = K8S_NAME_EMPTY;
		else if (rel == 2 && k8s_label_is(l[0], "ns"))
			out->kind = K8S_NAME_NS;
	}
}
