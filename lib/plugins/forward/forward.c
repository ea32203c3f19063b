/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forward plugin: queries inside the block's zones (and not under `except`) go to
 * an upstream picked by the policy among those the io layer does not consider down;
 * the plugin calls tern_io_forward() and parks. When the worker re-runs the request
 * with req->resume set, the plugin either copies the upstream's reply into the answer
 * (record by record, through tern_answer_put, so compression, truncation and the
 * engine's OPT handling stay uniform), or tries again: over TCP on a truncated UDP
 * reply, on the next untried upstream after a timeout, an error, an unusable reply or
 * a `failover` RCODE. A tls:// upstream hands the io layer its TLS parameters (server
 * name, CA and client certificate files, owned by the instance) with every attempt;
 * the io layer speaks DNS over TLS to it (always over TCP, so a TC reply is final).
 * What a parked request must remember travels in the io layer's
 * `tried` word: a bitmask of the upstreams tried, the time slot the attempt was
 * counted in for max_concurrent, and a tag naming the instance that parked it, so a
 * reply that comes back after a reload is not mistaken for one of the new instance's
 * attempts.
 *
 * max_concurrent counts attempts in flight in a ring of time slots (see conc_*): an
 * attempt is added to the current slot when it parks and removed when its re-run
 * reaches this plugin. A re-run may never reach it (a cache before it answers from an
 * identical query's answer, a reload), so slots expire once every attempt counted in
 * them must have timed out: a lost decrement costs a few seconds of one slot, never
 * a permanent leak that would end in refusing everything.
 *
 * init (loader) checks the options, reads resolv.conf files and builds the instance,
 * read-only afterwards except for its atomics: the max_concurrent ring and the
 * round-robin counters. Metrics live in a process-wide table
 * keyed by upstream address (interned by the loader, never freed), so counts survive
 * reloads and two blocks forwarding to the same server share one label set, as
 * CoreDNS's metric vectors do; workers add to their stripe with relaxed atomics and a
 * scrape sums the stripes.
 * Hot path (forward_query): no malloc (req->mm only), no locks, no blocking.
 */
#include "lib/plugins/forward/forward.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <libknot/libknot.h>

#include "lib/core/attr.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"
#include "lib/dns/answer.h"
#include "lib/dns/name.h"
#include "lib/engine/diag.h"
#include "lib/engine/io.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"

#define FWD_DEFAULT_MAX_FAILS   2
#define FWD_DEFAULT_TIMEOUT_MS  2000
#define FWD_MAX_TIMEOUT_MS      60000
#define FWD_DEFAULT_EXPIRE_MS   10000
#define FWD_DEFAULT_HEALTH_MS   500    /* the period the io layer probes with */
#define FWD_DNS_PORT            53
#define FWD_DOT_PORT            853
#define FWD_NAME_MAX            253    /* a TLS server name, without the final dot */

/*
 * The `tried` word: upstream bitmask in bits 0-14, the max_concurrent slot epoch (low
 * 8 bits) in bits 15-22, the instance tag in bits 23-31.
 */
#define FWD_TRIED_MASK          0x7fffu
#define FWD_EPOCH_SHIFT         15
#define FWD_EPOCH_MASK          0xffu
#define FWD_TAG_SHIFT           23
#define FWD_TAG_MASK            0x1ffu

/* max_concurrent ring: FWD_SLOTS slots, each (timeout + slack) / 8 wide. */
#define FWD_SLOTS               16
#define FWD_SLOT_SLACK_MS       1000

/* Metrics: stripes of counters (worker_id % stripes), histogram as CoreDNS's. */
#define FWD_STRIPES             16
#define FWD_MAX_TARGETS         256    /* distinct upstream addresses over the process */
#define FWD_RCODES              16     /* header RCODEs */
#define FWD_BUCKETS             16     /* 0.25 ms * 2^k, k = 0..15 (plugin.TimeBuckets) */
#define FWD_BUCKET_BASE_US      250

_Static_assert(TERN_FORWARD_MAX_UPSTREAMS <= 15, "upstream bitmask is 15 bits");

static const cyaml_schema_value_t string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t tls_fields[] = {
	CYAML_FIELD_STRING_PTR("ca", CYAML_FLAG_OPTIONAL, struct tern_forward_tls_conf, ca,
	                       1, 4095),
	CYAML_FIELD_STRING_PTR("cert", CYAML_FLAG_OPTIONAL, struct tern_forward_tls_conf, cert,
	                       1, 4095),
	CYAML_FIELD_STRING_PTR("key", CYAML_FLAG_OPTIONAL, struct tern_forward_tls_conf, key,
	                       1, 4095),
	CYAML_FIELD_END
};

const cyaml_schema_field_t tern_forward_conf_fields[] = {
	CYAML_FIELD_SEQUENCE("to", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_forward_conf, to, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("except", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_forward_conf, except, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("policy", CYAML_FLAG_OPTIONAL, struct tern_forward_conf, policy,
	                       1, 32),
	CYAML_FIELD_BOOL("force_tcp", CYAML_FLAG_OPTIONAL, struct tern_forward_conf, force_tcp),
	CYAML_FIELD_BOOL("prefer_udp", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                 prefer_udp),
	CYAML_FIELD_UINT_PTR("max_fails", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                     max_fails),
	CYAML_FIELD_STRING_PTR("expire", CYAML_FLAG_OPTIONAL, struct tern_forward_conf, expire,
	                       1, 32),
	CYAML_FIELD_STRING_PTR("read_timeout", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                       read_timeout, 1, 32),
	CYAML_FIELD_UINT_PTR("max_concurrent", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                     max_concurrent),
	CYAML_FIELD_BOOL("failfast_all_unhealthy_upstreams", CYAML_FLAG_OPTIONAL,
	                 struct tern_forward_conf, failfast_all_unhealthy_upstreams),
	CYAML_FIELD_SEQUENCE("next", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_forward_conf, next, &string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("failover", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
	                     struct tern_forward_conf, failover, &string_entry, 0,
	                     CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("health_check", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                       health_check, 1, 32),
	CYAML_FIELD_STRING_PTR("tls_servername", CYAML_FLAG_OPTIONAL, struct tern_forward_conf,
	                       tls_servername, 0, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING_PTR("tls", CYAML_FLAG_OPTIONAL, struct tern_forward_conf, tls,
	                        tls_fields),
	CYAML_FIELD_END
};

/* ---- metrics: process-wide, per upstream address ------------------------------------ */

/* One stripe of one upstream's counters; workers sharing a stripe add atomically. */
struct fwd_cell {
	_Atomic uint64_t bucket[FWD_RCODES][FWD_BUCKETS + 1]; /* last: above every bound */
	_Atomic uint64_t sum_us[FWD_RCODES];
	_Atomic uint64_t failures;     /* attempts that timed out or failed on the network */
	_Atomic uint64_t bad_replies;  /* replies that did not parse or did not match */
} __attribute__((aligned(64)));

struct fwd_target {
	struct sockaddr_storage addr;
	char to[TERN_ADDR_STRLEN];     /* the "to" label */
	struct fwd_cell stripe[FWD_STRIPES];
};

struct fwd_global_cell {
	_Atomic uint64_t broken;       /* all upstreams down when a query came */
	_Atomic uint64_t rejects;      /* max_concurrent refusals */
} __attribute__((aligned(64)));

/* Interned by the loader (init) only; read by workers through their instance's pointers
 * and by scrapes through this table (acquire on the count). */
static struct fwd_target *targets[FWD_MAX_TARGETS];
static _Atomic unsigned ntargets;
static struct fwd_global_cell global_stripe[FWD_STRIPES];

/* The instance tag; 0 is never used, so an all-zero `tried` is never ours. */
static _Atomic unsigned next_tag;

static const char *const rcode_names[FWD_RCODES] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
	"YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", NULL, NULL, NULL, NULL, NULL,
};

static inline void ctr_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ctr_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Loader: the counters of @addr, created on first use. NULL when the table is full. */
static struct fwd_target *target_intern(const struct sockaddr_storage *addr)
{
	unsigned n = atomic_load_explicit(&ntargets, memory_order_relaxed);
	socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	                                              sizeof(struct sockaddr_in);
	for (unsigned i = 0; i < n; i++) {
		if (memcmp(&targets[i]->addr, addr, len) == 0)
			return targets[i];
	}
	if (n == FWD_MAX_TARGETS) {
		tern_warn("forward: more than %u distinct upstreams, not counting new ones",
		          FWD_MAX_TARGETS);
		return NULL;
	}
	struct fwd_target *t = aligned_alloc(64, sizeof(*t));
	if (t == NULL)
		return NULL;
	memset(t, 0, sizeof(*t));
	memcpy(&t->addr, addr, sizeof(*addr));
	if (tern_addr_str(addr, t->to, sizeof(t->to)) != 0)
		snprintf(t->to, sizeof(t->to), "?");
	targets[n] = t;
	atomic_store_explicit(&ntargets, n + 1, memory_order_release);
	return t;
}

static struct fwd_cell *cell_of(struct fwd_target *t, const struct tern_req *req)
{
	return &t->stripe[req->worker_id % FWD_STRIPES];
}

static struct fwd_global_cell *global_of(const struct tern_req *req)
{
	return &global_stripe[req->worker_id % FWD_STRIPES];
}

/* ---- the instance ------------------------------------------------------------------ */

enum fwd_policy {
	FWD_POLICY_RANDOM = 0,
	FWD_POLICY_ROUND_ROBIN,
	FWD_POLICY_SEQUENTIAL,
};

struct fwd_upstream {
	struct sockaddr_storage addr;
	struct fwd_target *stats;      /* NULL: not counted (table full) */
	bool tls;                      /* DNS over TLS: tls_conf is what the io layer gets */
	char *sni;                     /* owned: tls://IP%name, else NULL */
	struct tern_upstream_tls tls_conf;   /* borrows sni or the instance's strings */
};

struct fwd_rr {
	_Atomic unsigned next;
} __attribute__((aligned(64)));

/* One max_concurrent slot: epoch (now / slot width) in the high 32 bits, count low. */
struct fwd_slot {
	_Atomic uint64_t v;
};

/* One configured instance, owned by the view. */
struct forward {
	struct fwd_upstream up[TERN_FORWARD_MAX_UPSTREAMS];
	unsigned nup;
	knot_dname_t **zones;          /* the block's zones, lowercase wire */
	size_t nzones;
	knot_dname_t **except;
	size_t nexcept;
	enum fwd_policy policy;
	bool force_tcp;
	bool prefer_udp;
	bool failfast;
	unsigned max_fails;
	uint32_t timeout_ms;
	uint32_t max_concurrent;       /* 0: no limit (and no counting) */
	uint16_t next_rcodes;          /* bit n: RCODE n */
	uint16_t failover_rcodes;
	uint16_t tag;                  /* 1..FWD_TAG_MASK */
	char *servername;              /* owned: tls_servername without the final dot */
	char *tls_files[3];            /* owned: tls.ca, tls.cert, tls.key, resolved paths */
	uint64_t expire_ms;            /* idle pooled connections close (io) */
	uint64_t health_check_ms;
	uint64_t slot_ms;              /* width of a max_concurrent slot */
	struct fwd_slot slots[FWD_SLOTS] __attribute__((aligned(64)));
	struct fwd_rr rr[FWD_STRIPES]; /* round_robin position, one per stripe of workers */
};

/* ---- config ------------------------------------------------------------------------ */

static void forward_free(struct forward *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nzones; i++)
		knot_dname_free(f->zones[i], NULL);
	free(f->zones);
	for (size_t i = 0; i < f->nexcept; i++)
		knot_dname_free(f->except[i], NULL);
	free(f->except);
	for (unsigned i = 0; i < f->nup; i++)
		free(f->up[i].sni);
	free(f->servername);
	for (unsigned i = 0; i < TERN_ARRAY_LEN(f->tls_files); i++)
		free(f->tls_files[i]);
	free(f);
}

static bool is_unspecified(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/*
 * Add one upstream address; @what names it in messages. @tls: DNS over TLS, with
 * @sni (copied; NULL: none) as its own server name.
 */
static bool add_upstream_tls(struct forward *f, const struct sockaddr_storage *addr, bool tls,
                             const char *sni, const char *key, const char *what,
                             struct tern_diag *diag)
{
	if (is_unspecified(addr)) {
		tern_diag_error(diag, key, "upstream \"%s\": unspecified address", what);
		return false;
	}
	if (f->nup == TERN_FORWARD_MAX_UPSTREAMS) {
		tern_diag_error(diag, key, "at most %u upstreams (\"%s\" is one too many)",
		                TERN_FORWARD_MAX_UPSTREAMS, what);
		return false;
	}
	struct fwd_upstream *up = &f->up[f->nup];
	memcpy(&up->addr, addr, sizeof(*addr));
	up->tls = tls;
	if (sni != NULL && (up->sni = strdup(sni)) == NULL)
		return false;
	f->nup++;
	return true;
}

/* Add one upstream address; @what names it in messages. */
static bool add_upstream(struct forward *f, const struct sockaddr_storage *addr,
                         const char *key, const char *what, struct tern_diag *diag)
{
	return add_upstream_tls(f, addr, false, NULL, key, what, diag);
}

/*
 * Read the `nameserver` lines of a resolv.conf(5) file. Other lines are ignored; a
 * nameserver that is not a numeric address (or a link-local one with a scope, which
 * cannot be used without an interface) is skipped with a warning.
 */
static bool add_resolv_conf(struct forward *f, const char *path, const char *key,
                            struct tern_diag *diag)
{
	FILE *in = fopen(path, "re");
	if (in == NULL) {
		tern_diag_error(diag, key, "cannot read %s (%s)", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0, found = 0;
	bool ok = true;
	while (ok && getline(&line, &cap, in) >= 0) {
		lineno++;
		char *save = NULL;
		char *word = strtok_r(line, " \t\r\n", &save);
		if (word == NULL || strcmp(word, "nameserver") != 0)
			continue;
		char *addr_str = strtok_r(NULL, " \t\r\n", &save);
		struct sockaddr_storage addr;
		if (addr_str == NULL || strchr(addr_str, '%') != NULL ||
		    tern_parse_addr(addr_str, FWD_DNS_PORT, &addr) != 0 ||
		    strchr(addr_str, ']') != NULL ||
		    (addr.ss_family == AF_INET && strchr(addr_str, ':') != NULL)) {
			tern_warn("forward: %s:%u: unusable nameserver \"%s\", skipped", path,
			          lineno, addr_str ? addr_str : "");
			continue;
		}
		ok = add_upstream(f, &addr, key, addr_str, diag);
		found++;
	}
	free(line);
	fclose(in);
	if (ok && found == 0) {
		tern_diag_error(diag, key, "%s has no usable nameserver line", path);
		ok = false;
	}
	return ok;
}

/*
 * A TLS server name: host name syntax (letters, digits, '-', '_' and dots), at most
 * 253 characters without the final dot, which is dropped. @return an owned copy, or
 * NULL (reported).
 */
static char *server_name(const char *name, size_t len, const char *key, const char *what,
                         struct tern_diag *diag)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	bool ok = len > 0 && len <= FWD_NAME_MAX && name[0] != '.' && name[0] != '-';
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '-' || c == '_' || (c == '.' && name[i + 1] != '.');
	}
	if (!ok) {
		tern_diag_error(diag, key, "\"%s\": invalid TLS server name \"%.*s\"", what,
		                (int)len, name);
		return NULL;
	}
	return strndup(name, len);
}

/* tls://IP[%name][:port] (CoreDNS's form; IPv6 in brackets), port 853 by default. */
static bool add_tls(struct forward *f, const char *entry, const char *key,
                    struct tern_diag *diag)
{
	const char *rest = entry + 6;
	const char *pct = rest[0] == '[' ? strchr(rest, ']') : rest;
	pct = pct != NULL ? strchr(pct, '%') : NULL;
	char addr_str[TERN_ADDR_STRLEN + 8];
	char *sni = NULL;
	if (pct == NULL) {
		snprintf(addr_str, sizeof(addr_str), "%s", rest);
	} else {
		const char *name = pct + 1;
		const char *colon = strchr(name, ':');
		size_t name_len = colon != NULL ? (size_t)(colon - name) : strlen(name);
		snprintf(addr_str, sizeof(addr_str), "%.*s%s", (int)(pct - rest), rest,
		         colon != NULL ? colon : "");
		if ((sni = server_name(name, name_len, key, entry, diag)) == NULL)
			return false;
	}
	struct sockaddr_storage addr;
	int ret = tern_parse_addr(addr_str, FWD_DOT_PORT, &addr);
	if (ret != 0) {
		tern_diag_error(diag, key, "\"%s\": %s", entry, ret == TERN_ERANGE ?
		                "port out of range" : "want tls://IP[%name][:port] (host names "
		                "are not resolved)");
		free(sni);
		return false;
	}
	bool ok = add_upstream_tls(f, &addr, true, sni, key, entry, diag);
	free(sni);
	return ok;
}

/* One `to` entry: an address (optionally dns:// or tls://) or a resolv.conf file. */
static bool add_to(struct forward *f, const char *entry, const char *dir, const char *key,
                   struct tern_diag *diag)
{
	if (strncasecmp(entry, "tls://", 6) == 0)
		return add_tls(f, entry, key, diag);
	if (strncasecmp(entry, "https://", 8) == 0 || strncasecmp(entry, "grpc://", 7) == 0) {
		tern_diag_error(diag, key, "\"%s\": only plain DNS and DNS-over-TLS upstreams "
		                "are supported", entry);
		return false;
	}
	bool scheme = strncasecmp(entry, "dns://", 6) == 0;
	const char *addr_str = scheme ? entry + 6 : entry;
	struct sockaddr_storage addr;
	int ret = tern_parse_addr(addr_str, FWD_DNS_PORT, &addr);
	if (ret == 0)
		return add_upstream(f, &addr, key, entry, diag);
	if (ret == TERN_ERANGE) {
		tern_diag_error(diag, key, "\"%s\": port out of range", entry);
		return false;
	}

	/* Not an address: a resolv.conf file, if it is one. */
	char path[4096];
	if (!scheme && entry[0] != '\0') {
		if (entry[0] == '/' || dir == NULL || dir[0] == '\0')
			snprintf(path, sizeof(path), "%s", entry);
		else
			snprintf(path, sizeof(path), "%s/%s", dir, entry);
		struct stat st;
		int st_ret = stat(path, &st);
		if (st_ret == 0 && S_ISREG(st.st_mode))
			return add_resolv_conf(f, path, key, diag);
		if (strchr(entry, '/') != NULL) {
			tern_diag_error(diag, key, "cannot read %s (%s)", path,
			                st_ret != 0 ? strerror(errno) : "not a regular file");
			return false;
		}
	}
	tern_diag_error(diag, key, "\"%s\" is neither IP[:port] (host names are not "
	                "resolved) nor a resolv.conf file", entry);
	return false;
}

static int rcode_by_name(const char *name)
{
	for (int i = 0; i < FWD_RCODES; i++) {
		if (rcode_names[i] != NULL && strcasecmp(rcode_names[i], name) == 0)
			return i;
	}
	if (strcasecmp(name, "NOTIMPL") == 0)
		return KNOT_RCODE_NOTIMPL;
	return -1;
}

static bool parse_rcodes(char **names, unsigned n, const char *key, bool allow_noerror,
                         uint16_t *mask, struct tern_diag *diag)
{
	bool ok = true;
	for (unsigned i = 0; i < n; i++) {
		int rc = rcode_by_name(names[i]);
		if (rc < 0) {
			tern_diag_error(diag, key, "unknown RCODE \"%s\" (want e.g. NXDOMAIN, "
			                "SERVFAIL, REFUSED)", names[i]);
			ok = false;
		} else if (rc == KNOT_RCODE_NOERROR && !allow_noerror) {
			tern_diag_error(diag, key, "NOERROR cannot be used here");
			ok = false;
		} else {
			*mask |= (uint16_t)(1u << rc);
		}
	}
	return ok;
}

static bool parse_ms(const char *text, uint64_t def, uint64_t min, uint64_t max,
                     const char *key, uint64_t *out, struct tern_diag *diag)
{
	*out = def;
	if (text == NULL)
		return true;
	if (tern_parse_duration(text, out) != 0 || *out < min || *out > max) {
		tern_diag_error(diag, key, "invalid duration \"%s\" (want %" PRIu64 "ms..%"
		                PRIu64 "s, e.g. \"2s\", \"500ms\")", text, min, max / 1000);
		*out = def;
		return false;
	}
	return true;
}

static bool parse_names(char **names, size_t n, knot_dname_t ***out, size_t *nout,
                        const char *key, struct tern_diag *diag)
{
	*out = calloc(n ? n : 1, sizeof(**out));
	if (*out == NULL)
		return false;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		knot_dname_t *name = knot_dname_from_str_alloc(names[i]);
		if (name == NULL) {
			tern_diag_error(diag, key, "invalid name \"%s\"", names[i]);
			ok = false;
			continue;
		}
		knot_dname_to_lower(name);
		(*out)[(*nout)++] = name;
	}
	return ok;
}

/* A file named in `tls:`, relative to the config's directory, that must be readable. */
static bool tls_file(const char *name, const char *dir, const char *key, char **out,
                     struct tern_diag *diag)
{
	char path[4096];
	if (name[0] == '/' || dir == NULL || dir[0] == '\0')
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *in = fopen(path, "re");
	if (in == NULL) {
		tern_diag_error(diag, key, "cannot read %s (%s)", path, strerror(errno));
		return false;
	}
	fclose(in);
	*out = strdup(path);
	return *out != NULL;
}

/* tls_servername, tls: {ca, cert, key}, and each tls:// upstream's view of them. */
static bool configure_tls(struct forward *f, const struct tern_forward_conf *conf,
                          const char *dir, struct tern_diag *diag)
{
	bool ok = true;
	unsigned ntls = 0, nsni = 0;
	for (unsigned i = 0; i < f->nup; i++) {
		ntls += f->up[i].tls;
		nsni += f->up[i].sni != NULL;
	}
	if (conf->tls_servername != NULL) {
		f->servername = server_name(conf->tls_servername, strlen(conf->tls_servername),
		                            "tls_servername", conf->tls_servername, diag);
		ok &= f->servername != NULL;
		if (nsni > 0) {
			/* CoreDNS: the two ways to name the server must not clash. */
			tern_diag_error(diag, "tls_servername", "not allowed with per-upstream "
			                "names (tls://IP%%name)");
			ok = false;
		}
	}
	const struct tern_forward_tls_conf *t = conf->tls;
	if (t != NULL) {
		if ((t->cert == NULL) != (t->key == NULL)) {
			tern_diag_error(diag, "tls", "cert and key go together");
			ok = false;
		}
		if (t->ca != NULL)
			ok &= tls_file(t->ca, dir, "tls.ca", &f->tls_files[0], diag);
		if (t->cert != NULL)
			ok &= tls_file(t->cert, dir, "tls.cert", &f->tls_files[1], diag);
		if (t->key != NULL)
			ok &= tls_file(t->key, dir, "tls.key", &f->tls_files[2], diag);
	}
	if (ntls == 0 && (conf->tls_servername != NULL || t != NULL))
		tern_warn("forward: tls_servername and tls apply to tls:// upstreams only; "
		          "there are none");
	for (unsigned i = 0; i < f->nup; i++) {
		struct fwd_upstream *up = &f->up[i];
		if (!up->tls)
			continue;
		up->tls_conf = (struct tern_upstream_tls) {
			.servername = up->sni != NULL ? up->sni : f->servername,
			.ca_file = f->tls_files[0],
			.cert_file = f->tls_files[1],
			.key_file = f->tls_files[2],
		};
	}
	return ok;
}

/* Check the options and fill @f. Every problem goes to @diag. */
static int configure(struct forward *f, const struct tern_forward_conf *conf,
                     const struct tern_plugin_env *env, struct tern_diag *diag)
{
	bool ok = true;

	if (conf->to_count == 0) {
		tern_diag_error(diag, "to", "needs at least one upstream");
		ok = false;
	}
	for (unsigned i = 0; i < conf->to_count; i++) {
		char key[32];
		snprintf(key, sizeof(key), "to[%u]", i);
		if (!add_to(f, conf->to[i], env->config_dir, key, diag)) {
			ok = false;
			if (f->nup == TERN_FORWARD_MAX_UPSTREAMS)
				break;
		}
	}
	ok &= configure_tls(f, conf, env->config_dir, diag);

	f->policy = FWD_POLICY_RANDOM;
	if (conf->policy != NULL) {
		if (strcmp(conf->policy, "random") == 0) {
			f->policy = FWD_POLICY_RANDOM;
		} else if (strcmp(conf->policy, "round_robin") == 0) {
			f->policy = FWD_POLICY_ROUND_ROBIN;
		} else if (strcmp(conf->policy, "sequential") == 0) {
			f->policy = FWD_POLICY_SEQUENTIAL;
		} else {
			tern_diag_error(diag, "policy", "unknown policy \"%s\" (want random, "
			                "round_robin or sequential)", conf->policy);
			ok = false;
		}
	}
	f->force_tcp = conf->force_tcp;
	f->prefer_udp = conf->prefer_udp;
	f->failfast = conf->failfast_all_unhealthy_upstreams;
	f->max_fails = conf->max_fails != NULL ? *conf->max_fails : FWD_DEFAULT_MAX_FAILS;
	f->max_concurrent = conf->max_concurrent != NULL ? *conf->max_concurrent : 0;

	uint64_t timeout_ms;
	ok &= parse_ms(conf->read_timeout, FWD_DEFAULT_TIMEOUT_MS, 1, FWD_MAX_TIMEOUT_MS,
	               "read_timeout", &timeout_ms, diag);
	f->timeout_ms = (uint32_t)timeout_ms;
	ok &= parse_ms(conf->expire, FWD_DEFAULT_EXPIRE_MS, 1, 24 * 3600 * 1000ull, "expire",
	               &f->expire_ms, diag);
	ok &= parse_ms(conf->health_check, FWD_DEFAULT_HEALTH_MS, 1, 3600 * 1000ull,
	               "health_check", &f->health_check_ms, diag);

	ok &= parse_rcodes(conf->next, conf->next_count, "next", true, &f->next_rcodes, diag);
	ok &= parse_rcodes(conf->failover, conf->failover_count, "failover", false,
	                   &f->failover_rcodes, diag);

	const char *const *zones = env->zones;
	ok &= parse_names((char **)zones, env->nzones, &f->zones, &f->nzones, "", diag);
	ok &= parse_names(conf->except, conf->except_count, &f->except, &f->nexcept, "except",
	                  diag);
	if (f->zones == NULL || f->except == NULL)
		return TERN_ENOMEM;
	return ok ? 0 : TERN_ECONFIG;
}

static int forward_init(struct tern_plugin_inst *pi, const void *conf_ptr,
                        const struct tern_plugin_env *env, struct tern_diag *diag)
{
	const struct tern_forward_conf *conf = conf_ptr;
	struct forward *f = aligned_alloc(64, sizeof(*f));
	if (f == NULL)
		return TERN_ENOMEM;
	memset(f, 0, sizeof(*f));
	int ret = configure(f, conf, env, diag);
	if (ret != 0) {
		forward_free(f);
		return ret;
	}
	for (unsigned i = 0; i < f->nup; i++)
		f->up[i].stats = target_intern(&f->up[i].addr);
	unsigned tag;
	do {
		tag = atomic_fetch_add_explicit(&next_tag, 1, memory_order_relaxed) + 1;
	} while ((tag & FWD_TAG_MASK) == 0);
	f->tag = (uint16_t)(tag & FWD_TAG_MASK);
	f->slot_ms = (f->timeout_ms + FWD_SLOT_SLACK_MS) / 8 + 1;
	pi->data = f;
	return 0;
}

static void forward_deinit(struct tern_plugin_inst *pi)
{
	forward_free(pi->data);
	pi->data = NULL;
}

/* ---- data plane -------------------------------------------------------------------- */

/* Load spreading only: a per-thread splitmix64, seeded from the thread and the clock. */
static uint64_t fwd_random(const struct tern_req *req)
{
	static _Thread_local uint64_t state;
	if (state == 0)
		state = (uint64_t)(uintptr_t)&state ^ (req->now_ms << 20) ^ req->worker_id;
	uint64_t z = (state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool wanted(const struct forward *f, const knot_dname_t *qname)
{
	bool inside = false;
	for (size_t i = 0; i < f->nzones && !inside; i++)
		inside = tern_name_is_under(qname, f->zones[i]);
	if (!inside)
		return false;
	for (size_t i = 0; i < f->nexcept; i++) {
		if (tern_name_is_under(qname, f->except[i]))
			return false;
	}
	return true;
}

static bool is_down(const struct forward *f, struct tern_req *req, unsigned i)
{
	return tern_io_upstream_down(req, &f->up[i].addr, f->max_fails);
}

/*
 * The next upstream to try: not in @tried and not down, in policy order (@last is the
 * previous attempt's index, -1 on the first). @return its index, or -1 if none.
 */
static int pick(const struct forward *f, struct tern_req *req, uint32_t tried, int last)
{
	unsigned n = f->nup;
	switch (f->policy) {
	case FWD_POLICY_SEQUENTIAL:
		for (unsigned i = 0; i < n; i++) {
			if (!(tried & (1u << i)) && !is_down(f, req, i))
				return (int)i;
		}
		return -1;
	case FWD_POLICY_ROUND_ROBIN: {
		unsigned start;
		if (last < 0) {
			struct fwd_rr *rr = (struct fwd_rr *)&f->rr[req->worker_id % FWD_STRIPES];
			start = atomic_fetch_add_explicit(&rr->next, 1, memory_order_relaxed) % n;
		} else {
			start = ((unsigned)last + 1) % n;
		}
		for (unsigned k = 0; k < n; k++) {
			unsigned i = (start + k) % n;
			if (!(tried & (1u << i)) && !is_down(f, req, i))
				return (int)i;
		}
		return -1;
	}
	case FWD_POLICY_RANDOM:
	default: {
		uint8_t cand[TERN_FORWARD_MAX_UPSTREAMS];
		unsigned nc = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!(tried & (1u << i)) && !is_down(f, req, i))
				cand[nc++] = (uint8_t)i;
		}
		return nc ? cand[fwd_random(req) % nc] : -1;
	}
	}
}

/* ---- max_concurrent: attempts in flight, in a ring of expiring time slots ---------- */

static uint64_t conc_epoch(const struct forward *f, const struct tern_req *req)
{
	return req->now_ms / f->slot_ms;
}

/* Attempts in flight: the counts of the slots of the last FWD_SLOTS epochs. */
static uint64_t conc_current(const struct forward *f, const struct tern_req *req)
{
	uint32_t now = (uint32_t)conc_epoch(f, req);
	uint64_t sum = 0;
	for (unsigned i = 0; i < FWD_SLOTS; i++) {
		uint64_t v = atomic_load_explicit(&f->slots[i].v, memory_order_relaxed);
		if ((uint32_t)(now - (uint32_t)(v >> 32)) < FWD_SLOTS)
			sum += (uint32_t)v;
	}
	return sum;
}

/* Count one attempt in the current slot. @return the epoch bits for `tried`. */
static uint32_t conc_take(struct forward *f, const struct tern_req *req)
{
	uint64_t e = conc_epoch(f, req);
	struct fwd_slot *slot = &f->slots[e % FWD_SLOTS];
	uint64_t old = atomic_load_explicit(&slot->v, memory_order_relaxed), v;
	do {
		/* A slot of an older epoch is reused: its counts have expired. (A worker whose
		 * turn began a little earlier than another's counts in the newer epoch.) */
		if ((int32_t)((uint32_t)e - (uint32_t)(old >> 32)) > 0)
			v = (uint64_t)(uint32_t)e << 32 | 1u;
		else
			v = old + 1;
	} while (!atomic_compare_exchange_weak_explicit(&slot->v, &old, v,
	                                                memory_order_relaxed,
	                                                memory_order_relaxed));
	return (uint32_t)(v >> 32) & FWD_EPOCH_MASK;
}

/* Uncount an attempt counted in epoch bits @epoch, unless its slot has moved on. */
static void conc_release(struct forward *f, uint32_t epoch)
{
	struct fwd_slot *slot = &f->slots[epoch % FWD_SLOTS];
	uint64_t old = atomic_load_explicit(&slot->v, memory_order_relaxed);
	do {
		if (((uint32_t)(old >> 32) & FWD_EPOCH_MASK) != epoch || (uint32_t)old == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&slot->v, &old, old - 1,
	                                                memory_order_relaxed,
	                                                memory_order_relaxed));
}

/* UDP first (a truncated reply is asked again over TCP) unless force_tcp. */
static bool want_tcp(const struct forward *f, const struct tern_req *req)
{
	(void)req;
	return f->force_tcp;
}

/* An answer of our own (SERVFAIL, REFUSED): no records, RA clear as CoreDNS sends it. */
static enum tern_verdict answer_rcode(struct tern_req *req, const struct tern_plugin_inst *pi,
                                      uint8_t rcode)
{
	tern_answer_rcode(req, rcode);
	tern_answer_by(req, pi->plugin_id);
	return TERN_DONE;
}

static enum tern_verdict send_to(struct tern_req *req, const struct tern_plugin_inst *pi,
                                 struct forward *f, unsigned idx, bool tcp, uint32_t tried)
{
	uint32_t epoch = f->max_concurrent ? conc_take(f, req) : 0;
	const struct fwd_upstream *up = &f->up[idx];
	struct tern_upstream_req u = {
		.tcp = tcp || up->tls,
		.tls = up->tls ? &up->tls_conf : NULL,
		.timeout_ms = f->timeout_ms,
		.expire_ms = (uint32_t)f->expire_ms,
		.probe_ms = (uint32_t)f->health_check_ms,
		.tried = (uint32_t)f->tag << FWD_TAG_SHIFT | epoch << FWD_EPOCH_SHIFT |
		         ((tried | 1u << idx) & FWD_TRIED_MASK),
	};
	memcpy(&u.addr, &up->addr, sizeof(u.addr));
	if (tern_io_forward(req, pi->plugin_id, &u) != 0) {
		if (f->max_concurrent)
			conc_release(f, epoch);
		return answer_rcode(req, pi, KNOT_RCODE_SERVFAIL);
	}
	return TERN_PARK;
}

/* The first attempt of a query. */
static enum tern_verdict start(struct tern_req *req, const struct tern_plugin_inst *pi,
                               struct forward *f)
{
	int idx = pick(f, req, 0, -1);
	if (idx < 0) {
		/* Every upstream is down: health checking is assumed broken (CoreDNS). */
		ctr_add(&global_of(req)->broken, 1);
		if (f->failfast)
			return answer_rcode(req, pi, KNOT_RCODE_SERVFAIL);
		idx = (int)(fwd_random(req) % f->nup);
	}
	return send_to(req, pi, f, (unsigned)idx, want_tcp(f, req), 0);
}

/* After a failed or unusable attempt: the next untried upstream, or SERVFAIL. */
static enum tern_verdict try_next(struct tern_req *req, const struct tern_plugin_inst *pi,
                                  struct forward *f, uint32_t tried, int last)
{
	int idx = pick(f, req, tried, last);
	if (idx < 0)
		return answer_rcode(req, pi, KNOT_RCODE_SERVFAIL);
	return send_to(req, pi, f, (unsigned)idx, want_tcp(f, req), tried);
}

static int index_of(const struct forward *f, const struct sockaddr_storage *addr)
{
	socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	                                              sizeof(struct sockaddr_in);
	for (unsigned i = 0; i < f->nup; i++) {
		if (f->up[i].addr.ss_family == addr->ss_family &&
		    memcmp(&f->up[i].addr, addr, len) == 0)
			return (int)i;
	}
	return -1;
}

static void observe(struct fwd_target *t, const struct tern_req *req, uint8_t rcode,
                    uint64_t rtt_us)
{
	struct fwd_cell *c = cell_of(t, req);
	unsigned b = 0;
	while (b < FWD_BUCKETS && rtt_us > ((uint64_t)FWD_BUCKET_BASE_US << b))
		b++;
	ctr_add(&c->bucket[rcode][b], 1);
	ctr_add(&c->sum_us[rcode], rtt_us);
}

/* Parse the upstream reply into @out, and check it answers this question. */
static bool reply_usable(struct tern_req *req, const struct tern_resume *r, knot_pkt_t **out)
{
	if (r->wire == NULL || r->len < KNOT_WIRE_HEADER_SIZE)
		return false;
	/* libknot parses in place without writing to the wire. */
	knot_pkt_t *pkt = knot_pkt_new((uint8_t *)r->wire, r->len, req->mm);
	if (pkt == NULL || knot_pkt_parse(pkt, 0) != KNOT_EOK)
		return false;
	if (!knot_wire_get_qr(pkt->wire) || knot_wire_get_opcode(pkt->wire) != KNOT_OPCODE_QUERY ||
	    knot_wire_get_qdcount(pkt->wire) != 1)
		return false;
	if (!knot_dname_is_equal(knot_pkt_qname(pkt), req->qname) ||
	    knot_pkt_qtype(pkt) != req->qtype || knot_pkt_qclass(pkt) != req->qclass)
		return false;
	*out = pkt;
	return true;
}

/* Copy the upstream's records, RCODE and flags into the answer. */
static enum tern_verdict copy_reply(struct tern_req *req, const struct tern_plugin_inst *pi,
                                    const knot_pkt_t *pkt)
{
	uint8_t *w = req->answer->wire;
	const uint8_t *u = pkt->wire;
	tern_answer_rcode(req, knot_wire_get_rcode(u));
	if (knot_wire_get_aa(u))
		knot_wire_set_aa(w);
	else
		knot_wire_clear_aa(w);
	if (knot_wire_get_ra(u))
		knot_wire_set_ra(w);
	else
		knot_wire_clear_ra(w);
	if (knot_wire_get_ad(u))
		knot_wire_set_ad(w);
	else
		knot_wire_clear_ad(w);
	tern_answer_by(req, pi->plugin_id);

	static const knot_section_t sections[] = { KNOT_ANSWER, KNOT_AUTHORITY, KNOT_ADDITIONAL };
	for (size_t s = 0; s < TERN_ARRAY_LEN(sections); s++) {
		const knot_pktsection_t *sec = knot_pkt_section(pkt, sections[s]);
		for (uint16_t i = 0; i < sec->count; i++) {
			const knot_rrset_t *rr = knot_pkt_rr(sec, i);
			if (rr->type == KNOT_RRTYPE_OPT || rr->type == KNOT_RRTYPE_TSIG)
				continue;
			int ret = tern_answer_put(req, sections[s], rr);
			if (ret == KNOT_ESPACE)
				return TERN_DONE; /* truncated (engine sends TC) or additional cut */
			if (ret != 0)
				return TERN_FAIL;
		}
	}
	return TERN_DONE;
}

/* A re-run of a request this instance parked. */
static enum tern_verdict resumed(struct tern_req *req, const struct tern_plugin_inst *pi,
                                 struct forward *f, const struct tern_resume *r)
{
	uint32_t tried = r->tried & FWD_TRIED_MASK;
	int last = index_of(f, &r->upstream);
	struct fwd_target *t = last >= 0 ? f->up[last].stats : NULL;

	if (r->status != TERN_RESUME_ANSWER) {
		if (t != NULL)
			ctr_add(&cell_of(t, req)->failures, 1);
		return try_next(req, pi, f, tried, last);
	}
	knot_pkt_t *pkt = NULL;
	if (!reply_usable(req, r, &pkt)) {
		if (t != NULL)
			ctr_add(&cell_of(t, req)->bad_replies, 1);
		return try_next(req, pi, f, tried, last);
	}
	uint8_t rcode = knot_wire_get_rcode(pkt->wire);
	if (t != NULL)
		observe(t, req, rcode, r->rtt_us);

	if (knot_wire_get_tc(pkt->wire) && !r->over_tcp && last >= 0) {
		if (!f->prefer_udp || req->proto == TERN_PROTO_TCP)
			return send_to(req, pi, f, (unsigned)last, true, tried);
		/* prefer_udp: a UDP client gets the truncation and retries over TCP itself. */
		enum tern_verdict v = copy_reply(req, pi, pkt);
		req->truncated = true;
		return v;
	}
	if (f->failover_rcodes & (1u << rcode)) {
		int idx = pick(f, req, tried, last);
		if (idx >= 0)
			return send_to(req, pi, f, (unsigned)idx, want_tcp(f, req), tried);
		/* Every upstream tried: the last response is the answer (CoreDNS). */
	}
	if (f->next_rcodes & (1u << rcode))
		return TERN_NEXT;
	return copy_reply(req, pi, pkt);
}

static enum tern_verdict forward_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	struct forward *f = pi->data;
	if (!wanted(f, req->qname))
		return TERN_NEXT;

	const struct tern_resume *r = req->resume;
	if (r != NULL && r->plugin_id == pi->plugin_id &&
	    (r->tried >> FWD_TAG_SHIFT & FWD_TAG_MASK) == f->tag) {
		if (f->max_concurrent)
			conc_release(f, r->tried >> FWD_EPOCH_SHIFT & FWD_EPOCH_MASK);
		return resumed(req, pi, f, r);
	}
	/* A new query (or one parked by an instance a reload replaced: start afresh). */
	if (f->max_concurrent && conc_current(f, req) >= f->max_concurrent) {
		ctr_add(&global_of(req)->rejects, 1);
		return answer_rcode(req, pi, KNOT_RCODE_REFUSED);
	}
	return start(req, pi, f);
}

/* ---- metrics scrape ------------------------------------------------------------------ */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void rcode_label(char *buf, size_t len, unsigned rcode)
{
	if (rcode_names[rcode] != NULL)
		snprintf(buf, len, "%s", rcode_names[rcode]);
	else
		snprintf(buf, len, "%u", rcode);
}

static void render_duration(FILE *out, struct fwd_target *const *ts, unsigned n)
{
	static const char name[] = "coredns_proxy_request_duration_seconds";
	bool head = false;
	for (unsigned k = 0; k < n; k++) {
		for (unsigned rc = 0; rc < FWD_RCODES; rc++) {
			uint64_t b[FWD_BUCKETS + 1] = { 0 }, sum_us = 0, count = 0;
			for (unsigned s = 0; s < FWD_STRIPES; s++) {
				struct fwd_cell *c = &ts[k]->stripe[s];
				for (unsigned i = 0; i <= FWD_BUCKETS; i++)
					b[i] += ctr_get(&c->bucket[rc][i]);
				sum_us += ctr_get(&c->sum_us[rc]);
			}
			for (unsigned i = 0; i <= FWD_BUCKETS; i++)
				count += b[i];
			if (count == 0)
				continue;
			if (!head) {
				family(out, name, "histogram",
				       "Histogram of the time each request took.");
				head = true;
			}
			char rcs[16];
			rcode_label(rcs, sizeof(rcs), rc);
			uint64_t cum = 0;
			for (unsigned i = 0; i < FWD_BUCKETS; i++) {
				cum += b[i];
				fprintf(out, "%s_bucket{proxy_name=\"forward\",to=\"%s\",rcode=\"%s\","
				        "le=\"%g\"} %" PRIu64 "\n", name, ts[k]->to, rcs,
				        (double)((uint64_t)FWD_BUCKET_BASE_US << i) / 1e6, cum);
			}
			fprintf(out, "%s_bucket{proxy_name=\"forward\",to=\"%s\",rcode=\"%s\","
			        "le=\"+Inf\"} %" PRIu64 "\n", name, ts[k]->to, rcs, count);
			fprintf(out, "%s_sum{proxy_name=\"forward\",to=\"%s\",rcode=\"%s\"} %.6f\n",
			        name, ts[k]->to, rcs, (double)sum_us / 1e6);
			fprintf(out, "%s_count{proxy_name=\"forward\",to=\"%s\",rcode=\"%s\"} %"
			        PRIu64 "\n", name, ts[k]->to, rcs, count);
		}
	}
}

/* A per-upstream counter family; @off is the counter's offset in struct fwd_cell. */
static void render_per_target(FILE *out, struct fwd_target *const *ts, unsigned n,
                              const char *name, const char *help, bool proxy_name,
                              size_t off)
{
	bool head = false;
	for (unsigned k = 0; k < n; k++) {
		uint64_t v = 0;
		for (unsigned s = 0; s < FWD_STRIPES; s++)
			v += ctr_get((_Atomic uint64_t *)((char *)&ts[k]->stripe[s] + off));
		if (v == 0)
			continue;
		if (!head) {
			family(out, name, "counter", help);
			head = true;
		}
		fprintf(out, "%s{%sto=\"%s\"} %" PRIu64 "\n", name,
		        proxy_name ? "proxy_name=\"forward\"," : "", ts[k]->to, v);
	}
}

static void forward_metrics(FILE *out, const struct tern_view *view, unsigned plugin_id)
{
	(void)view;
	(void)plugin_id;
	unsigned n = atomic_load_explicit(&ntargets, memory_order_acquire);
	if (n == 0)
		return; /* forward was never configured in this process */

	uint64_t broken = 0, rejects = 0;
	for (unsigned s = 0; s < FWD_STRIPES; s++) {
		broken += ctr_get(&global_stripe[s].broken);
		rejects += ctr_get(&global_stripe[s].rejects);
	}
	family(out, "coredns_forward_healthcheck_broken_total", "counter",
	       "Counter of the number of complete failures of the healthchecks.");
	fprintf(out, "coredns_forward_healthcheck_broken_total %" PRIu64 "\n", broken);
	family(out, "coredns_forward_max_concurrent_rejects_total", "counter",
	       "Counter of the number of queries rejected because the concurrent queries "
	       "were at maximum.");
	fprintf(out, "coredns_forward_max_concurrent_rejects_total %" PRIu64 "\n", rejects);

	render_duration(out, targets, n);
	render_per_target(out, targets, n, "coredns_proxy_healthcheck_failures_total",
	                  "Counter of the number of failed healthchecks.", true,
	                  offsetof(struct fwd_cell, failures));
	render_per_target(out, targets, n, "tern_forward_bad_replies_total",
	                  "Upstream replies dropped because they did not parse or did not "
	                  "answer the question.", false,
	                  offsetof(struct fwd_cell, bad_replies));
}

TERN_PLUGIN_DEFINE(forward,
	.hot = TERN_HOT_SKIP,
	.init = forward_init,
	.deinit = forward_deinit,
	.metrics = forward_metrics,
	.query = forward_query);
