/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file plugin: answer authoritatively from one RFC 1035 zone file, as CoreDNS's
 * `file` does. init (loader) parses the zone into an immutable struct tern_zone
 * (zone.h) and keeps it behind an RCU pointer in the instance; maintain (control
 * plane) re-checks the file's identity every `reload` interval, parses a changed file
 * and swaps it in, keeping the old zone when the new one does not parse. query
 * (worker, RCU read side) answers exact matches, follows CNAMEs inside the zone,
 * synthesises wildcard answers (RFC 4592), refers below zone cuts, and denies with
 * RFC 2308 NXDOMAIN/NODATA; everything it builds per query lives in req->mm.
 * Hot path (file_query and its helpers): no malloc, no locks, no blocking.
 */
#include "lib/plugins/file/file.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/rcu.h"
#include "lib/dns/answer.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/plugins/file/zone.h"

#define FILE_DEFAULT_RELOAD_MS 5000
#define FILE_MAX_CHAIN         8   /* CNAMEs followed inside the zone per query */
#define FILE_MAX_ADDITIONAL    16  /* targets whose A/AAAA go to ADDITIONAL */

const cyaml_schema_field_t tern_file_conf_fields[] = {
	CYAML_FIELD_STRING_PTR("path", CYAML_FLAG_OPTIONAL, struct tern_file_conf, path,
	                       0, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("origin", CYAML_FLAG_OPTIONAL, struct tern_file_conf, origin,
	                       0, CYAML_UNLIMITED),
	CYAML_FIELD_STRING_PTR("reload", CYAML_FLAG_OPTIONAL, struct tern_file_conf, reload,
	                       0, CYAML_UNLIMITED),
	CYAML_FIELD_BOOL("fallthrough", CYAML_FLAG_OPTIONAL, struct tern_file_conf,
	                 fallthrough),
	CYAML_FIELD_END
};

/* What identifies one version of the file on disk. */
struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct file_inst {
	struct tern_zone *zone;     /* RCU root: TERN_RCU_DEREF to read, XCHG to replace */
	char *path;                 /* resolved against the config directory */
	char *origin;               /* presentation form */
	uint64_t reload_ms;         /* 0 = never check */
	bool fallthrough;
	/* Control plane only (maintain): */
	uint64_t next_check_ms;
	struct file_sig sig;
	bool stat_failed;           /* logged once until the file is back */
};

/* ---- control plane ---- */

/* Parse "500ms", "5s", "1m", "1h", combinations like "1m30s", or "0". */
static int parse_duration_ms(const char *s, uint64_t *out)
{
	uint64_t total = 0;
	if (s == NULL || *s == '\0')
		return TERN_EINVAL;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*s != '\0') {
		if (!isdigit((unsigned char)*s))
			return TERN_EINVAL;
		uint64_t n = 0;
		while (isdigit((unsigned char)*s)) {
			n = n * 10 + (uint64_t)(*s++ - '0');
			if (n > UINT32_MAX)
				return TERN_ERANGE;
		}
		uint64_t unit;
		if (strncmp(s, "ms", 2) == 0) {
			unit = 1;
			s += 2;
		} else if (*s == 's') {
			unit = 1000;
			s++;
		} else if (*s == 'm') {
			unit = 60 * 1000;
			s++;
		} else if (*s == 'h') {
			unit = 3600 * 1000;
			s++;
		} else {
			return TERN_EINVAL;
		}
		total += n * unit;
	}
	*out = total;
	return 0;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int file_stat(const char *path, struct file_sig *sig)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	*sig = (struct file_sig){
		.dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim,
	};
	return 0;
}

static bool sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static uint32_t zone_serial(const struct tern_zone *z)
{
	return knot_soa_serial(z->soa->rrs.rdata);
}

static char *resolve_path(const char *dir, const char *path)
{
	if (path[0] == '/' || dir == NULL || dir[0] == '\0')
		return strdup(path);
	char *full = NULL;
	if (asprintf(&full, "%s/%s", dir, path) < 0)
		return NULL;
	return full;
}

static void inst_free(struct file_inst *fi)
{
	if (fi == NULL)
		return;
	tern_zone_free(fi->zone);
	free(fi->path);
	free(fi->origin);
	free(fi);
}

static int file_init(struct tern_plugin_inst *pi, const void *conf_,
                     const struct tern_plugin_env *env, struct tern_diag *diag)
{
	const struct tern_file_conf *conf = conf_;
	char err[512];
	uint64_t reload_ms = FILE_DEFAULT_RELOAD_MS;
	const char *origin = conf->origin;
	bool bad_zone = false, bad_reload = false;

	if (conf->path == NULL || conf->path[0] == '\0') {
		tern_diag_error(diag, "path", "a zone file path is required");
		bad_zone = true;
	}
	if (origin == NULL && env != NULL && env->nzones > 0)
		origin = env->zones[0];
	if (origin == NULL) {
		tern_diag_error(diag, "origin", "no origin given and the server block has no zone");
		bad_zone = true;
	} else {
		knot_dname_storage_t wire;
		if (knot_dname_from_str(wire, origin, sizeof(wire)) == NULL) {
			tern_diag_error(diag, "origin", "\"%s\" is not a valid domain name", origin);
			bad_zone = true;
		}
	}
	if (conf->reload != NULL && parse_duration_ms(conf->reload, &reload_ms) != 0) {
		tern_diag_error(diag, "reload",
		                "\"%s\" is not a duration (use e.g. 500ms, 5s, 1m; 0 disables)",
		                conf->reload);
		bad_reload = true;
	}
	if (bad_zone)
		return TERN_ECONFIG;

	struct file_inst *fi = calloc(1, sizeof(*fi));
	if (fi == NULL)
		return TERN_ENOMEM;
	fi->path = resolve_path(env ? env->config_dir : NULL, conf->path);
	fi->origin = strdup(origin);
	if (fi->path == NULL || fi->origin == NULL) {
		inst_free(fi);
		return TERN_ENOMEM;
	}
	fi->reload_ms = reload_ms;
	fi->fallthrough = conf->fallthrough;

	/* Stat first: a file replaced while we parse is noticed by the next check. */
	if (file_stat(fi->path, &fi->sig) != 0)
		fi->stat_failed = true;
	/* Load even after a bad reload value so that one run reports both problems. */
	int ret = tern_zone_load(fi->path, fi->origin, &fi->zone, err, sizeof(err));
	if (ret != 0 && ret != TERN_ENOMEM)
		tern_diag_error(diag, "path", "%s", err);
	if (ret != 0 || bad_reload) {
		inst_free(fi);
		return ret == TERN_ENOMEM ? TERN_ENOMEM : TERN_ECONFIG;
	}
	fi->next_check_ms = monotonic_ms() + reload_ms;
	tern_info("file: loaded zone %s from %s (serial %u, %zu records)", fi->origin,
	          fi->path, zone_serial(fi->zone), fi->zone->nrecords);
	pi->data = fi;
	return 0;
}

static void file_deinit(struct tern_plugin_inst *pi)
{
	inst_free(pi->data);
	pi->data = NULL;
}

static void file_maintain(struct tern_plugin_inst *pi)
{
	struct file_inst *fi = pi->data;
	char err[512];
	struct file_sig sig = { 0 }, after = { 0 };

	if (fi == NULL || fi->reload_ms == 0)
		return;
	uint64_t now = monotonic_ms();
	if (now < fi->next_check_ms)
		return;
	fi->next_check_ms = now + fi->reload_ms;

	int ret = file_stat(fi->path, &sig);
	if (ret != 0) {
		if (!fi->stat_failed)
			tern_warn("file: %s unreadable (%s), keeping zone %s", fi->path,
			          tern_strerror(ret), fi->origin);
		fi->stat_failed = true;
		return;
	}
	if (!fi->stat_failed && sig_equal(&sig, &fi->sig))
		return;
	fi->stat_failed = false;

	struct tern_zone *next = NULL;
	ret = tern_zone_load(fi->path, fi->origin, &next, err, sizeof(err));
	/* Written while we read it? Then parse again at the next check. */
	if (ret == 0 && (file_stat(fi->path, &after) != 0 || !sig_equal(&sig, &after))) {
		tern_zone_free(next);
		return;
	}
	fi->sig = sig;
	if (ret != 0) {
		tern_err("file: reload of zone %s failed (%s), keeping serial %u", fi->origin,
		         err, zone_serial(fi->zone));
		return;
	}
	struct tern_zone *old = TERN_RCU_XCHG(&fi->zone, next);
	tern_rcu_synchronize();
	tern_info("file: reloaded zone %s from %s (serial %u -> %u, %zu records)", fi->origin,
	          fi->path, zone_serial(old), zone_serial(next), next->nrecords);
	tern_zone_free(old);
}

/* ---- data plane ---- */

/* The state of one answer under construction. */
struct resp {
	struct tern_req *req;
	const struct tern_zone *zone;
	const knot_rrset_t *addl_src[FILE_MAX_ADDITIONAL]; /* MX/SRV/NS sets to chase */
	bool addl_glue[FILE_MAX_ADDITIONAL];               /* targets may be below a cut */
	unsigned naddl_src;
};

static void *mm_get(struct tern_req *req, size_t len)
{
	return req->mm->alloc(req->mm->ctx, len);
}

/* @rr with another owner or TTL, as a shallow copy in the arena (NULL: arena full). */
static const knot_rrset_t *rrset_as(struct tern_req *req, const knot_rrset_t *rr,
                                    const knot_dname_t *owner, uint32_t ttl)
{
	if (ttl == rr->ttl && (owner == rr->owner || knot_dname_is_equal(owner, rr->owner)))
		return rr;
	knot_rrset_t *copy = mm_get(req, sizeof(*copy));
	if (copy == NULL)
		return NULL;
	*copy = *rr;
	copy->owner = (knot_dname_t *)owner;
	copy->ttl = ttl;
	return copy;
}

/* Put @rr (owned by @owner) into @section. @return false when the answer must end. */
static bool put(struct resp *r, knot_section_t section, const knot_rrset_t *rr,
                const knot_dname_t *owner)
{
	rr = rrset_as(r->req, rr, owner, rr->ttl);
	if (rr == NULL)
		return false;
	return tern_answer_put(r->req, section, rr) == 0;
}

static void want_additional(struct resp *r, const knot_rrset_t *rr, bool glue)
{
	if (rr->type != KNOT_RRTYPE_MX && rr->type != KNOT_RRTYPE_SRV &&
	    rr->type != KNOT_RRTYPE_NS)
		return;
	if (r->naddl_src == FILE_MAX_ADDITIONAL)
		return;
	r->addl_glue[r->naddl_src] = glue;
	r->addl_src[r->naddl_src++] = rr;
}

/* A/AAAA of MX, SRV and NS targets that the zone holds (glue too for referrals). */
static void put_additional(struct resp *r)
{
	const struct tern_zone_node *done[FILE_MAX_ADDITIONAL];
	unsigned ndone = 0;

	for (unsigned i = 0; i < r->naddl_src; i++) {
		const knot_rrset_t *rr = r->addl_src[i];
		knot_rdata_t *rd = rr->rrs.rdata;
		for (uint16_t j = 0; j < rr->rrs.count; j++, rd = knot_rdataset_next(rd)) {
			knot_dname_storage_t target;
			knot_dname_copy_lower(target, knot_rdata_name(rd, rr->type));
			const struct tern_zone_node *n = tern_zone_get(r->zone, target);
			if (n == NULL || (n->deleg >= 0 && !r->addl_glue[i]))
				continue;
			bool seen = false;
			for (unsigned k = 0; k < ndone && !seen; k++)
				seen = done[k] == n;
			if (seen)
				continue;
			if (ndone == FILE_MAX_ADDITIONAL)
				return;
			done[ndone++] = n;
			const knot_rrset_t *a = tern_zone_node_rrset(n, KNOT_RRTYPE_A);
			const knot_rrset_t *aaaa = tern_zone_node_rrset(n, KNOT_RRTYPE_AAAA);
			/* A full ADDITIONAL section is left short, never truncated. */
			if (a != NULL && tern_answer_put(r->req, KNOT_ADDITIONAL, a) != 0)
				return;
			if (aaaa != NULL && tern_answer_put(r->req, KNOT_ADDITIONAL, aaaa) != 0)
				return;
		}
	}
}

/* RFC 2308 section 3: the SOA in AUTHORITY with TTL min(SOA TTL, SOA MINIMUM). */
static bool put_negative_soa(struct resp *r)
{
	const knot_rrset_t *soa = rrset_as(r->req, r->zone->soa, r->zone->soa->owner,
	                                   r->zone->neg_ttl);
	if (soa == NULL)
		return false;
	return tern_answer_put(r->req, KNOT_AUTHORITY, soa) == 0;
}

/* The cut's NS in AUTHORITY; their glue goes to ADDITIONAL at the end. */
static bool put_referral(struct resp *r, const struct tern_zone_node *cut)
{
	const knot_rrset_t *ns = tern_zone_node_rrset(cut, KNOT_RRTYPE_NS);
	if (tern_answer_put(r->req, KNOT_AUTHORITY, ns) != 0)
		return false;
	want_additional(r, ns, true);
	return true;
}

/* The lowercased CNAME target of @cname in the arena (NULL: arena full). */
static const knot_dname_t *cname_target(struct tern_req *req, const knot_rrset_t *cname)
{
	const knot_dname_t *t = knot_cname_name(cname->rrs.rdata);
	knot_dname_t *copy = mm_get(req, knot_dname_size(t));
	if (copy != NULL)
		knot_dname_copy_lower(copy, t);
	return copy;
}

static bool visited(const struct tern_zone_node *const *chain, unsigned n,
                    const struct tern_zone_node *node)
{
	for (unsigned i = 0; i < n; i++)
		if (chain[i] == node)
			return true;
	return false;
}

static enum tern_verdict file_query(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	const struct file_inst *fi = pi->data;
	const struct tern_zone *zone = TERN_RCU_DEREF(fi->zone);
	struct resp r = { .req = req, .zone = zone };
	const knot_dname_t *name = req->qname;
	const struct tern_zone_node *node;
	const struct tern_zone_node *chain[FILE_MAX_CHAIN];

	if (req->qclass != KNOT_CLASS_IN)
		return TERN_NEXT;
	enum tern_zone_result res = tern_zone_find(zone, name, req->qtype, &node);
	if (res == TERN_ZONE_OUT)
		return TERN_NEXT;
	if (res == TERN_ZONE_NXDOMAIN && fi->fallthrough)
		return TERN_NEXT;

	if (req->qtype == KNOT_RRTYPE_AXFR || req->qtype == KNOT_RRTYPE_IXFR) {
		/* Zone transfers are not served here (CoreDNS: the transfer plugin). */
		tern_answer_by(req, pi->plugin_id);
		tern_answer_rcode(req, KNOT_RCODE_REFUSED);
		return TERN_DONE;
	}
	if (res == TERN_ZONE_DELEG) {
		/* A referral: not authoritative, no AA (RFC 1034 4.3.2 step 3b). */
		tern_answer_by(req, pi->plugin_id);
		tern_answer_rcode(req, KNOT_RCODE_NOERROR);
		if (put_referral(&r, node))
			put_additional(&r);
		return TERN_DONE;
	}

	tern_answer_authoritative(req, pi->plugin_id);
	tern_answer_rcode(req, KNOT_RCODE_NOERROR);
	for (unsigned hops = 0;; hops++) {
		if (res == TERN_ZONE_NXDOMAIN) {
			/* RFC 6604: the RCODE speaks of the last name in the chain. */
			tern_answer_rcode(req, KNOT_RCODE_NXDOMAIN);
			if (!put_negative_soa(&r))
				return TERN_DONE;
			break;
		}
		if (res == TERN_ZONE_DELEG) {
			/* A CNAME led below a cut: the chain ends with the referral. */
			if (!put_referral(&r, node))
				return TERN_DONE;
			break;
		}
		if (res == TERN_ZONE_OUT)
			break; /* the chain left the zone; the resolver follows it */

		/* FOUND or WILDCARD: answer records are owned by the name asked for. */
		if (req->qtype == KNOT_RRTYPE_ANY && hops == 0 && node->nrrsets > 0) {
			tern_answer_any_hinfo(req, node->rrsets[0].ttl);
			return TERN_DONE;
		}
		const knot_rrset_t *rr = tern_zone_node_rrset(node, req->qtype);
		if (rr != NULL) {
			if (!put(&r, KNOT_ANSWER, rr, name))
				return TERN_DONE;
			want_additional(&r, rr, false);
			break;
		}
		const knot_rrset_t *cname = tern_zone_node_rrset(node, KNOT_RRTYPE_CNAME);
		if (cname == NULL) {
			/* NODATA (RFC 2308 section 2.2): NOERROR, SOA in AUTHORITY. */
			if (!put_negative_soa(&r))
				return TERN_DONE;
			break;
		}
		if (!put(&r, KNOT_ANSWER, cname, name))
			return TERN_DONE;
		chain[hops] = node;
		if (hops + 1 == FILE_MAX_CHAIN)
			break; /* an absurd chain: hand out what we have */
		name = cname_target(req, cname);
		if (name == NULL)
			return TERN_DONE;
		res = tern_zone_find(zone, name, req->qtype, &node);
		if (res == TERN_ZONE_FOUND && visited(chain, hops + 1, node))
			break; /* a CNAME loop: each record once, then stop */
	}
	put_additional(&r);
	return TERN_DONE;
}

TERN_PLUGIN_DEFINE(file,
	.hot = TERN_HOT_SKIP | TERN_HOT_PURE,
	.init = file_init,
	.deinit = file_deinit,
	.maintain = file_maintain,
	.query = file_query);
