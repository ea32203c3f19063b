/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kubernetes plugin's three files share: the instance (built by
 * kubernetes.c at init, read-only afterwards), the query-name grammar (names.c: pure
 * syntax, no snapshot) and the per-query state and record writer (records.c: snapshot
 * lookups and the answer). Not a public API: only lib/plugins/kubernetes/ includes it.
 * Thread: the instance is built on the loader; everything else runs on a worker in
 * the RCU read side (no malloc, no locks, no syscalls).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <libknot/libknot.h>

#include "lib/cluster/model.h"
#include "lib/cluster/snapshot.h"
#include "lib/cluster/source.h"
#include "lib/engine/req.h"
#include "lib/plugins/kubernetes/kubernetes.h"

/* Wire forms of the two reverse trees. */
#define K8S_IN_ADDR_ARPA "\x07" "in-addr" "\x04" "arpa"
#define K8S_IP6_ARPA     "\x03" "ip6" "\x04" "arpa"

#define K8S_VERSION_TTL  28800   /* dns-version TXT, as CoreDNS */
#define K8S_SOA_TTL_MAX  300     /* the SOA answer's own TTL is min(ttl, 300) */

/** One authoritative zone, ready for SOA/NS answers. */
struct k8s_zone {
	knot_dname_t *name;      /**< lowercase wire */
	size_t labels;
	size_t len;              /**< wire length of name */
	bool reverse;            /**< under in-addr.arpa. or ip6.arpa. */
	uint8_t *soa_rdata;      /**< ns.dns.<zone> hostmaster.<zone> 0 7200 1800 86400 ttl */
	size_t soa_len;
	knot_dname_t *ns_name;   /**< ns.dns.<zone> */
};

/** One configured instance. Read-only once the view is published. */
struct k8s {
	struct tern_hot_scope scope;   /**< hot answers: what a snapshot part still says */
	struct tern_cluster_source *src;
	struct k8s_zone *zones;
	size_t nzones;
	size_t primary;          /**< first non-reverse zone: PTR targets live there */
	knot_dname_t **fall;     /**< fallthrough zones (lowercase wire); "." = all */
	size_t nfall;
	uint32_t ttl;
	uint64_t startup_ms;
	enum tern_kubernetes_pods pods;
	bool noendpoints;
	bool ignore_empty;
};

/* ---- names.c: the query-name grammar ------------------------------------------------ */

/** One label of the question name (lowercase, not NUL-terminated). */
struct k8s_label {
	const char *s;
	size_t len;
};

enum k8s_name_kind {
	K8S_NAME_NONE = 0,   /**< no schema allows it: NXDOMAIN */
	K8S_NAME_APEX,       /**< <zone> */
	K8S_NAME_VERSION,    /**< dns-version.<zone> */
	K8S_NAME_NS,         /**< ns.dns.<zone> */
	K8S_NAME_EMPTY,      /**< svc.<zone>, pod.<zone>, dns.<zone>: exist, no data */
	K8S_NAME_NAMESPACE,  /**< <ns>.svc.<zone> or <ns>.pod.<zone> */
	K8S_NAME_SERVICE,    /**< <svc>.<ns>.svc.<zone> */
	K8S_NAME_ENDPOINT,   /**< <hostname>.<svc>.<ns>.svc.<zone> */
	K8S_NAME_PORT,       /**< _<port>._<proto>.<svc>.<ns>.svc.<zone> */
	K8S_NAME_POD,        /**< <dashed-ip>.<ns>.pod.<zone> */
	K8S_NAME_REVERSE,    /**< a full in-addr.arpa. / ip6.arpa. address name */
};

/** A classified question name; labels point into the name. */
struct k8s_name {
	enum k8s_name_kind kind;
	struct k8s_label ns, svc, ep, port, proto;
	struct tern_ip ip;   /**< REVERSE; POD when ip_ok */
	bool ip_ok;          /**< POD: the first label is a dashed IP */
	bool pod;            /**< NAMESPACE: <ns>.pod.<zone> (else <ns>.svc.<zone>) */
};

/**
 * Classify lowercase @p name, which lies in @p zone (syntax only: whether the
 * objects exist is the snapshot's business).
 */
void k8s_name_parse(const struct k8s_zone *zone, const knot_dname_t *name,
                    struct k8s_name *out);

/** Parse a full reverse name (4 decimal labels under in-addr.arpa., 32 nibbles under ip6.arpa.). */
bool k8s_name_parse_reverse(const knot_dname_t *name, struct tern_ip *ip);

/** Parse a pod label: "1-2-3-4" or "fd00--1" (CoreDNS's dashed form). */
bool k8s_name_parse_dashed_ip(const char *s, size_t len, struct tern_ip *ip);

/** True if lowercase label @p l equals the NUL-terminated @p s. */
static inline bool k8s_label_is(struct k8s_label l, const char *s)
{
	size_t n = strlen(s);
	return l.len == n && (n == 0 || memcmp(l.s, s, n) == 0);
}

/* ---- records.c: lookups and the answer ---------------------------------------------- */

enum k8s_res {
	K8S_RES_ANSWER = 0,  /**< records in ANSWER (or truncated) */
	K8S_RES_NODATA,      /**< the name exists, not with this type */
	K8S_RES_NXDOMAIN,    /**< no such name */
	K8S_RES_FAIL,        /**< out of arena or a libknot error: SERVFAIL */
};

/** State of one query (on the worker's stack). */
struct k8s_query {
	struct tern_req *req;
	const struct k8s *k;
	const struct tern_cluster *c;
	unsigned plugin_id;
	const struct k8s_zone *zone;   /**< zone of the last name answered (SOA owner) */
	size_t room;                   /**< answer bytes left before truncation */
	size_t written;                /**< records put in ANSWER */
	uint32_t part;                 /**< the snapshot part read (TERN_CLUSTER_PART_*) */
	bool serial;                   /**< a SOA with the snapshot's serial was written */
	knot_rrset_t *extra;           /**< additional-section RRsets (SRV glue), arena */
	size_t nextra, cap_extra;
};

/** The most specific of the plugin's zones that holds @p name (@p len bytes), or NULL. */
const struct k8s_zone *k8s_find_zone(const struct k8s *k, const knot_dname_t *name,
                                     size_t len);

/** Note that the answer depends on snapshot part @p part (snapshot.h). */
static inline void k8s_reads(struct k8s_query *q, uint32_t part)
{
	if (q->part == TERN_CLUSTER_PART_NONE)
		q->part = part;
	else if (q->part != part)
		q->part = TERN_CLUSTER_PART_ALL;   /* two parts: any change retires it */
}

/** Set q->room from the request's size limit. */
void k8s_room_init(struct k8s_query *q);

/** Answer the question (following in-zone CNAMEs) into the ANSWER section. */
enum k8s_res k8s_resolve(struct k8s_query *q, const struct k8s_zone *zone);

/** RCODE, AA, SOA for negative answers, additional glue. @return 0 or a libknot error. */
int k8s_finish(struct k8s_query *q, enum k8s_res res);
