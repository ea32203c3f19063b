/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log plugin: one query log line per answer, in CoreDNS's common log format
 *   [INFO] 127.0.0.1:55225 - 14155 "A IN example.org. udp 41 false 1232" NOERROR qr,aa,rd 56 0s
 * written to stderr by the answer hook (worker thread, after the plugins below it
 * answered). The line is built in a stack buffer and written with one write(2), so
 * lines from different workers never interleave (stderr is a pipe or a file in every
 * deployment; PIPE_BUF is 4096). Query logging is an opt-in I/O cost: the write and
 * one vDSO clock read are the only system work; there is no allocation and no lock.
 * The instance (the class filter) is read-only after init.
 */
#include "lib/plugins/log/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED),
};

const cyaml_schema_field_t tern_log_conf_fields[] = {
	CYAML_FIELD_SEQUENCE_COUNT("class", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                           struct tern_log_conf, classes, classes_count,
	                           &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_END
};

/* CoreDNS's response classes (plugin/pkg/response/classify.go). */
enum log_class {
	LOG_CLASS_SUCCESS = 0,
	LOG_CLASS_DENIAL,
	LOG_CLASS_ERROR,
	LOG_CLASS_COUNT,
};

struct log_inst {
	bool want[LOG_CLASS_COUNT];
};

/* miekg/dns RcodeToString, which CoreDNS prints; others print as a number. */
static const char *const rcode_names[] = {
	[KNOT_RCODE_NOERROR] = "NOERROR",   [KNOT_RCODE_FORMERR] = "FORMERR",
	[KNOT_RCODE_SERVFAIL] = "SERVFAIL", [KNOT_RCODE_NXDOMAIN] = "NXDOMAIN",
	[KNOT_RCODE_NOTIMPL] = "NOTIMP",    [KNOT_RCODE_REFUSED] = "REFUSED",
	[KNOT_RCODE_YXDOMAIN] = "YXDOMAIN", [KNOT_RCODE_YXRRSET] = "YXRRSET",
	[KNOT_RCODE_NXRRSET] = "NXRRSET",   [KNOT_RCODE_NOTAUTH] = "NOTAUTH",
	[KNOT_RCODE_NOTZONE] = "NOTZONE",   [KNOT_RCODE_BADVERS] = "BADVERS",
	[KNOT_RCODE_BADKEY] = "BADKEY",     [KNOT_RCODE_BADTIME] = "BADTIME",
	[KNOT_RCODE_BADMODE] = "BADMODE",   [KNOT_RCODE_BADNAME] = "BADNAME",
	[KNOT_RCODE_BADALG] = "BADALG",     [KNOT_RCODE_BADTRUNC] = "BADTRUNC",
	[KNOT_RCODE_BADCOOKIE] = "BADCOOKIE",
};

/* ---- control plane -------------------------------------------------------------- */

static int log_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                    const struct tern_plugin_env *env, struct tern_diag *diag)
{
	static const char *const names[LOG_CLASS_COUNT] = {
		[LOG_CLASS_SUCCESS] = "success",
		[LOG_CLASS_DENIAL] = "denial",
		[LOG_CLASS_ERROR] = "error",
	};
	const struct tern_log_conf *conf = conf_ptr;
	(void)env;
	struct log_inst *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return TERN_ENOMEM;

	bool bad = false;
	for (unsigned i = 0; i < conf->classes_count; i++) {
		const char *c = conf->classes[i];
		bool all = strcmp(c, "all") == 0;
		bool known = all;
		for (int k = 0; k < LOG_CLASS_COUNT; k++) {
			if (all || strcmp(c, names[k]) == 0) {
				l->want[k] = true;
				known = true;
			}
		}
		if (!known) {
			char key[32];
			snprintf(key, sizeof(key), "class[%u]", i);
			tern_diag_error(diag, key,
			                "unknown class \"%s\" (want success, denial, error or all)", c);
			bad = true;
		}
	}
	if (conf->classes_count == 0) {
		for (int k = 0; k < LOG_CLASS_COUNT; k++)
			l->want[k] = true;
	}
	if (bad) {
		free(l);
		return TERN_ECONFIG;
	}
	pi->data = l;
	return 0;
}

static void log_deinit(struct tern_plugin_inst *pi)
{
	free(pi->data);
	pi->data = NULL;
}

/* ---- data plane ------------------------------------------------------------------ */

static uint16_t full_rcode(const knot_pkt_t *ans)
{
	uint16_t rcode = knot_wire_get_rcode(ans->wire);
	if (ans->opt_rr != NULL)
		rcode |= (uint16_t)knot_edns_get_ext_rcode(ans->opt_rr) << 4;
	return rcode;
}

/*
 * NOERROR with answers, or a referral (NS and no SOA in AUTHORITY), is success;
 * NXDOMAIN and NODATA are denial; every other RCODE is an error. Unlike CoreDNS's
 * response.Typify this does not require an SOA to call NXDOMAIN/NODATA a denial:
 * answers from hosts-style plugins carry none, and they are still denials.
 */
static enum log_class classify(const knot_pkt_t *ans, uint16_t rcode)
{
	if (rcode == KNOT_RCODE_NXDOMAIN)
		return LOG_CLASS_DENIAL;
	if (rcode != KNOT_RCODE_NOERROR)
		return LOG_CLASS_ERROR;
	if (knot_wire_get_ancount(ans->wire) > 0)
		return LOG_CLASS_SUCCESS;
	bool soa = false, ns = false;
	if (ans->current >= KNOT_AUTHORITY) {
		const knot_pktsection_t *auth = knot_pkt_section(ans, KNOT_AUTHORITY);
		for (uint16_t i = 0; i < auth->count; i++) {
			uint16_t type = knot_pkt_rr(auth, i)->type;
			soa |= type == KNOT_RRTYPE_SOA;
			ns |= type == KNOT_RRTYPE_NS;
		}
	}
	return ns && !soa ? LOG_CLASS_SUCCESS : LOG_CLASS_DENIAL;
}

/* "127.0.0.1:53" or "[::1]:53" as CoreDNS's {remote}:{port}; "-:0" if unknown. */
static void remote_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	if (ss != NULL && ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss != NULL && ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "-:0");
	}
}

/* CoreDNS's {>rflags}: the set header bits in the order qr,aa,tc,rd,ra,z,ad,cd. */
static void flags_str(const uint8_t *wire, bool truncated, char *buf, size_t len)
{
	const struct { bool on; const char *name; } flags[] = {
		{ knot_wire_get_qr(wire), "qr" }, { knot_wire_get_aa(wire), "aa" },
		{ knot_wire_get_tc(wire) || truncated, "tc" }, { knot_wire_get_rd(wire), "rd" },
		{ knot_wire_get_ra(wire), "ra" }, { knot_wire_get_z(wire), "z" },
		{ knot_wire_get_ad(wire), "ad" }, { knot_wire_get_cd(wire), "cd" },
	};
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (!flags[i].on)
			continue;
		int n = snprintf(buf + o, len - o, "%s%s", o ? "," : "", flags[i].name);
		if (n < 0 || (size_t)n >= len - o)
			break;
		o += (size_t)n;
	}
}

/*
 * Seconds since the worker took this turn's clock, as Go's shortest 'f' format
 * ("0s", "0.003s", "1.5s"). The start is known to the millisecond only.
 */
static void duration_str(uint64_t start_ms, char *buf, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	uint64_t ms = now_ms > start_ms ? now_ms - start_ms : 0;
	unsigned frac = (unsigned)(ms % 1000);
	if (frac == 0) {
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
		return;
	}
	unsigned digits = 3;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, len, "%llu.%0*us", (unsigned long long)(ms / 1000), (int)digits, frac);
}

static uint16_t client_bufsize(const struct tern_req *req)
{
	if (req->proto == TERN_PROTO_TCP)
		return UINT16_MAX;
	if (req->query == NULL || req->query->opt_rr == NULL)
		return KNOT_WIRE_MIN_PKTSIZE;
	uint16_t size = knot_edns_get_payload(req->query->opt_rr);
	return size < KNOT_WIRE_MIN_PKTSIZE ? KNOT_WIRE_MIN_PKTSIZE : size;
}

static void log_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct log_inst *l = pi->data;
	const knot_pkt_t *ans = req->answer;
	if (ans == NULL)
		return;
	uint16_t rcode = full_rcode(ans);
	if (!l->want[classify(ans, rcode)])
		return;

	char remote[64], type[32], class[32], name[KNOT_DNAME_TXT_MAXLEN + 1];
	char rcode_num[8], flags[32], duration[32];
	remote_str(req->src, remote, sizeof(remote));
	if (knot_rrtype_to_string(req->qtype, type, sizeof(type)) < 0)
		snprintf(type, sizeof(type), "TYPE%u", req->qtype);
	if (knot_rrclass_to_string(req->qclass, class, sizeof(class)) < 0)
		snprintf(class, sizeof(class), "CLASS%u", req->qclass);
	/* The name as the client sent it (CoreDNS logs the original case). */
	const knot_dname_t *qname = req->query != NULL ? knot_pkt_wire_qname(req->query) : NULL;
	if (qname == NULL)
		qname = req->qname;
	if (qname == NULL || knot_dname_to_str(name, qname, sizeof(name)) == NULL)
		snprintf(name, sizeof(name), ".");
	const char *rcode_name = rcode < sizeof(rcode_names) / sizeof(rcode_names[0]) ?
	                         rcode_names[rcode] : NULL;
	if (rcode_name == NULL) {
		snprintf(rcode_num, sizeof(rcode_num), "%u", rcode);
		rcode_name = rcode_num;
	}
	flags_str(ans->wire, req->truncated, flags, sizeof(flags));
	duration_str(req->now_ms, duration, sizeof(duration));
	uint16_t id = req->query != NULL ? knot_wire_get_id(req->query->wire) :
	              knot_wire_get_id(ans->wire);

	char line[KNOT_DNAME_TXT_MAXLEN + 512];
	int n = snprintf(line, sizeof(line),
	                 "[INFO] %s - %u \"%s %s %s %s %u %s %u\" %s %s %zu %s\n",
	                 remote, id, type, class, name,
	                 req->proto == TERN_PROTO_TCP ? "tcp" : "udp", req->qsize,
	                 req->dnssec_ok ? "true" : "false", client_bufsize(req),
	                 rcode_name, flags, ans->size, duration);
	if (n <= 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	/* One write keeps the line whole; a short or failed write loses the line. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

TERN_PLUGIN_DEFINE(log,
	.init = log_init,
	.deinit = log_deinit,
	.answer = log_answer);
