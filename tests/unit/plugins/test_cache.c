/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/cache: the hooks are driven directly with requests built
 * by hand (tests/support/query.h). A "forward" answer is built into req->answer and
 * handed to the answer hook; the same question asked again must come back from the
 * cache as a raw answer (req->raw_len), which the test parses and inspects. Time is
 * faked through req->now_ms; background refreshes go to the scripted io
 * (tests/support/fake_io.h). Each test is a registered QSBR reader, online, as a
 * worker is; teardown waits for call_rcu frees so ASan sees no leak.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>

#include "lib/core/errcode.h"
#include "lib/core/rcu.h"
#include "lib/dns/answer.h"
#include "lib/engine/conf.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/cache/cache.h"
#include "tests/support/fake_io.h"
#include "tests/support/query.h"

extern const struct tern_plugin tern_plugin_cache;

#define FORWARD_ID 9       /* plugin_id of the "upstream" answers */
#define T0 1000000ull      /* req->now_ms of the first query */

static const char *zones_root[] = { "." };

struct t_cache {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
	struct tern_io *io;
	int ret;
};

static void setup(void)
{
	tern_rcu_register();
}

static void teardown(void)
{
	tern_rcu_offline();
	urcu_qsbr_barrier();
	tern_rcu_unregister();
}

TestSuite(cache, .init = setup, .fini = teardown);

static void t_cache_init(struct t_cache *c, const struct tern_cache_conf *conf)
{
	struct tern_plugin_env env = { .zones = zones_root, .nzones = 1, .config_dir = "/" };
	*c = (struct t_cache) { .pi = { .plugin = &tern_plugin_cache, .plugin_id = 3 } };
	tern_diag_init(&c->diag, NULL);
	tern_diag_set_prefix(&c->diag, "servers[0].plugins.cache");
	c->ret = tern_plugin_cache.init(&c->pi, conf, &env, &c->diag);
	c->io = t_io_new();
}

static void t_cache_deinit(struct t_cache *c)
{
	if (c->ret == 0)
		tern_plugin_cache.deinit(&c->pi);
	tern_diag_deinit(&c->diag);
	t_io_free(c->io);
}

static bool diag_has(const struct tern_diag *d, const char *text)
{
	for (size_t i = 0; i < d->nmsgs; i++) {
		if (strstr(d->msgs[i], text) != NULL)
			return true;
	}
	return false;
}

/* ---- building upstream answers -------------------------------------------------- */

static struct t_query *ask(struct t_cache *c, const char *name, uint16_t qtype, uint64_t now,
                           bool dnssec_ok)
{
	struct t_query_opts o = { .edns_size = dnssec_ok ? 1232 : 0, .dnssec_ok = dnssec_ok };
	struct t_query *t = t_query_new_opts(name, qtype, &o);
	t->req.now_ms = now;
	t->req.io = c->io;
	return t;
}

static void put_rr(struct t_query *t, knot_section_t sec, const char *owner, uint16_t type,
                   uint32_t ttl, const uint8_t *rdata, uint16_t rdlen)
{
	knot_dname_storage_t name;
	cr_assert_not_null(knot_dname_from_str(name, owner, sizeof(name)));
	knot_rrset_t rr;
	knot_rrset_init(&rr, knot_dname_copy(name, &t->mm), type, KNOT_CLASS_IN, ttl);
	cr_assert_eq(knot_rrset_add_rdata(&rr, rdata, rdlen, &t->mm), KNOT_EOK);
	if (t->req.answer->current < sec)
		cr_assert_eq(knot_pkt_begin(t->req.answer, sec), KNOT_EOK);
	cr_assert_eq(knot_pkt_put(t->req.answer, KNOT_COMPR_HINT_NONE, &rr, KNOT_PF_FREE), KNOT_EOK);
}

static void put_a(struct t_query *t, const char *owner, uint32_t ttl, uint8_t last)
{
	uint8_t ip[4] = { 192, 0, 2, last };
	put_rr(t, KNOT_ANSWER, owner, KNOT_RRTYPE_A, ttl, ip, sizeof(ip));
}

/* example.org. SOA with the given TTL and MINIMUM, in the authority section. */
static void put_soa(struct t_query *t, uint32_t ttl, uint32_t minimum)
{
	uint8_t rd[64];
	static const uint8_t names[] = "\x02ns\x07" "example\x03org\x00"
	                               "\x05" "admin\x07" "example\x03org";
	size_t n = sizeof(names);   /* includes the final root label (the NUL) */
	memcpy(rd, names, n);
	uint32_t vals[5] = { 2024010101, 3600, 600, 86400, minimum };
	for (int i = 0; i < 5; i++)
		knot_wire_write_u32(rd + n + 4 * i, vals[i]);
	put_rr(t, KNOT_AUTHORITY, "example.org.", KNOT_RRTYPE_SOA, ttl, rd, (uint16_t)(n + 20));
}

/* The chain after the cache answered: what forward would leave for the answer hooks. */
static void upstream_answered(struct t_cache *c, struct t_query *t, uint8_t rcode)
{
	knot_wire_set_rcode(t->req.answer->wire, rcode);
	knot_wire_set_ra(t->req.answer->wire);
	tern_plugin_cache.answer(&t->req, &c->pi);
}

/* Store an A answer for @p name (TTL @p ttl) asked at @p now. */
static void store_a(struct t_cache *c, const char *name, uint32_t ttl, uint64_t now)
{
	struct t_query *t = ask(c, name, KNOT_RRTYPE_A, now, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c->pi), TERN_NEXT, "%s: a miss first", name);
	t->req.plugin_id = FORWARD_ID;
	t->req.answered = true;
	put_a(t, name, ttl, 1);
	upstream_answered(c, t, KNOT_RCODE_NOERROR);
	t_query_free(t);
}

/* Parse the cache's raw answer as the client would (before the engine's finishing). */
static knot_pkt_t *raw_answer(struct t_query *t)
{
	cr_assert_gt(t->req.raw_len, 0, "a raw answer");
	knot_pkt_t *p = knot_pkt_new(t->req.answer->wire, t->req.raw_len, NULL);
	cr_assert_not_null(p);
	cr_assert_eq(knot_pkt_parse(p, 0), KNOT_EOK);
	return p;
}

static uint32_t first_ttl(const knot_pkt_t *p, knot_section_t sec)
{
	const knot_pktsection_t *s = knot_pkt_section(p, sec);
	cr_assert_gt(s->count, 0);
	return knot_pkt_rr(s, 0)->ttl;
}

/* Ask @p name at @p now; expect a hit and return the first TTL of @p sec. */
static uint32_t hit_ttl(struct t_cache *c, const char *name, uint16_t qtype, uint64_t now,
                        knot_section_t sec, uint8_t *rcode)
{
	struct t_query *t = ask(c, name, qtype, now, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c->pi), TERN_DONE, "%s: a hit", name);
	cr_assert(t->req.answered);
	cr_assert_eq(t->req.plugin_id, c->pi.plugin_id);
	knot_pkt_t *p = raw_answer(t);
	cr_assert_eq(knot_wire_get_id(p->wire), 0, "the engine sets the ID");
	if (rcode)
		*rcode = knot_wire_get_rcode(p->wire);
	uint32_t ttl = first_ttl(p, sec);
	knot_pkt_free(p);
	t_query_free(t);
	return ttl;
}

static bool is_miss(struct t_cache *c, const char *name, uint16_t qtype, uint64_t now,
                    bool dnssec_ok)
{
	struct t_query *t = ask(c, name, qtype, now, dnssec_ok);
	enum tern_verdict v = tern_plugin_cache.query(&t->req, &c->pi);
	t_query_free(t);
	return v == TERN_NEXT;
}

/* ---- config ---------------------------------------------------------------------- */

Test(cache, empty_config_gives_defaults)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	cr_assert_eq(c.ret, 0);
	store_a(&c, "www.example.org.", 7200, T0);
	/* success.ttl 3600 caps the TTL */
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0, KNOT_ANSWER, NULL), 3600);
	t_cache_deinit(&c);
}

Test(cache, bad_options_are_reported_with_their_keys)
{
	uint32_t zero = 0, big = 200, ttl = 10, min = 20;
	struct tern_cache_kind_conf success = { .capacity = &zero, .ttl = &ttl, .min_ttl = &min };
	struct tern_cache_prefetch_conf pf = { .percentage = &big, .duration = "soon" };
	struct tern_cache_stale_conf st = { .refresh = "later" };
	struct tern_cache_conf conf = {
		.success = &success, .prefetch = &pf, .serve_stale = &st,
		.serve_stale_policy = "prefer_negative", .servfail = "10m",
		.zones = (char *[]) { "bad..name" }, .zones_count = 1,
	};
	struct t_cache c;
	t_cache_init(&c, &conf);
	cr_assert_eq(c.ret, TERN_ECONFIG);
	cr_assert(diag_has(&c.diag, "success.capacity"));
	cr_assert(diag_has(&c.diag, "success.min_ttl"));
	cr_assert(diag_has(&c.diag, "prefetch.percentage"));
	cr_assert(diag_has(&c.diag, "prefetch.duration"));
	cr_assert(diag_has(&c.diag, "serve_stale.refresh"));
	cr_assert(diag_has(&c.diag, "serve_stale_policy"));
	cr_assert(diag_has(&c.diag, "servfail"));
	cr_assert(diag_has(&c.diag, "zones"));
	t_cache_deinit(&c);
}

Test(cache, yaml_shape_loads)
{
	static const char yaml[] =
		"servers:\n"
		"  - zones: [\".\"]\n"
		"    listen: [\"127.0.0.1:5300\"]\n"
		"    plugins:\n"
		"      cache:\n"
		"        success: {capacity: 100, ttl: 60, min_ttl: 2}\n"
		"        denial: {capacity: 50, ttl: 30}\n"
		"        prefetch: {amount: 10, duration: 1m, percentage: 10}\n"
		"        serve_stale: {duration: 1h, refresh: verify}\n"
		"        serve_stale_policy: prefer_positive\n"
		"        servfail: 2s\n"
		"        disable: {success: [cluster.local.], denial: [cluster.local.]}\n"
		"        keepttl: true\n"
		"        zones: [\".\"]\n";
	struct tern_diag d;
	tern_diag_init(&d, NULL);
	struct tern_conf *conf = NULL;
	int ret = tern_conf_load_string(yaml, sizeof(yaml) - 1, "/", &d, &conf);
	cr_assert_eq(ret, 0, "%s", d.nmsgs ? d.msgs[0] : "");
	const struct tern_cache_conf *cc = conf->servers[0].plugins->cache;
	cr_assert_not_null(cc);
	cr_assert_eq(*cc->success->capacity, 100);
	cr_assert_eq(*cc->denial->ttl, 30);
	cr_assert_eq(*cc->prefetch->amount, 10);
	cr_assert_str_eq(cc->serve_stale->refresh, "verify");
	cr_assert_str_eq(cc->disable->denial[0], "cluster.local.");
	cr_assert(cc->keepttl);

	struct t_cache c;
	t_cache_init(&c, cc);
	cr_assert_eq(c.ret, 0);
	t_cache_deinit(&c);
	tern_conf_free(conf);
	tern_diag_deinit(&d);
}

/* ---- positive answers ------------------------------------------------------------ */

Test(cache, hit_counts_ttl_down_by_age)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	store_a(&c, "www.example.org.", 300, T0);
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0, KNOT_ANSWER, NULL), 300);
	cr_assert_eq(hit_ttl(&c, "WWW.Example.ORG.", KNOT_RRTYPE_A, T0 + 10500, KNOT_ANSWER, NULL),
	             290);
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 299999, KNOT_ANSWER, NULL),
	             1);
	cr_assert(is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 300000, false), "expired");
	cr_assert(is_miss(&c, "www.example.org.", KNOT_RRTYPE_AAAA, T0, false), "other type");
	t_cache_deinit(&c);
}

Test(cache, stored_answer_is_the_upstream_one_without_opt)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	/* As the engine leaves a forwarded answer: client ID, OPT at the end. */
	struct t_query *t = ask(&c, "two.example.org.", KNOT_RRTYPE_A, T0, true);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_NEXT);
	tern_answer_by(&t->req, FORWARD_ID);
	put_a(t, "two.example.org.", 60, 1);
	put_a(t, "two.example.org.", 60, 2);
	knot_rrset_t opt;
	cr_assert_eq(knot_edns_init(&opt, 1232, 0, 0, &t->mm), KNOT_EOK);
	knot_edns_set_do(&opt);
	cr_assert_eq(knot_pkt_begin(t->req.answer, KNOT_ADDITIONAL), KNOT_EOK);
	cr_assert_eq(knot_pkt_put(t->req.answer, KNOT_COMPR_HINT_NONE, &opt, 0), KNOT_EOK);
	upstream_answered(&c, t, KNOT_RCODE_NOERROR);
	t_query_free(t);

	t = ask(&c, "two.example.org.", KNOT_RRTYPE_A, T0 + 1000, true);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_DONE);
	knot_pkt_t *p = raw_answer(t);
	cr_assert_eq(knot_wire_get_ancount(p->wire), 2);
	cr_assert_eq(knot_wire_get_arcount(p->wire), 0, "no OPT stored");
	cr_assert_null(p->opt_rr);
	cr_assert(knot_wire_get_ra(p->wire));
	cr_assert_eq(knot_pkt_rr(knot_pkt_section(p, KNOT_ANSWER), 1)->ttl, 59);
	knot_pkt_free(p);
	t_query_free(t);
	t_cache_deinit(&c);
}

Test(cache, do_bit_keeps_separate_entries)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	store_a(&c, "www.example.org.", 300, T0);
	cr_assert(!is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0, false));
	cr_assert(is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0, true), "DO is another key");
	t_cache_deinit(&c);
}

Test(cache, min_ttl_floors_short_ttls)
{
	uint32_t min = 10;
	struct tern_cache_kind_conf success = { .min_ttl = &min };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .success = &success });
	store_a(&c, "short.example.org.", 2, T0);
	cr_assert_eq(hit_ttl(&c, "short.example.org.", KNOT_RRTYPE_A, T0, KNOT_ANSWER, NULL), 10);
	cr_assert_eq(hit_ttl(&c, "short.example.org.", KNOT_RRTYPE_A, T0 + 5000, KNOT_ANSWER, NULL),
	             5);
	cr_assert(is_miss(&c, "short.example.org.", KNOT_RRTYPE_A, T0 + 10000, false));
	t_cache_deinit(&c);
}

Test(cache, keepttl_serves_ttls_unaged)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .keepttl = true });
	store_a(&c, "www.example.org.", 300, T0);
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 100000, KNOT_ANSWER, NULL),
	             300);
	t_cache_deinit(&c);
}

/* ---- negative answers ------------------------------------------------------------ */

static void store_negative(struct t_cache *c, const char *name, uint8_t rcode, uint32_t soa_ttl,
                           uint32_t minimum, uint64_t now)
{
	struct t_query *t = ask(c, name, KNOT_RRTYPE_A, now, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c->pi), TERN_NEXT);
	tern_answer_by(&t->req, FORWARD_ID);
	put_soa(t, soa_ttl, minimum);
	upstream_answered(c, t, rcode);
	t_query_free(t);
}

Test(cache, negative_ttl_is_soa_minimum)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	store_negative(&c, "nx.example.org.", KNOT_RCODE_NXDOMAIN, 3600, 60, T0);
	uint8_t rcode = 0;
	cr_assert_eq(hit_ttl(&c, "nx.example.org.", KNOT_RRTYPE_A, T0 + 20000, KNOT_AUTHORITY,
	                     &rcode), 40);
	cr_assert_eq(rcode, KNOT_RCODE_NXDOMAIN);
	cr_assert(is_miss(&c, "nx.example.org.", KNOT_RRTYPE_A, T0 + 60000, false));

	/* NODATA; here the SOA's own TTL is the smaller */
	store_negative(&c, "nodata.example.org.", KNOT_RCODE_NOERROR, 30, 600, T0);
	cr_assert_eq(hit_ttl(&c, "nodata.example.org.", KNOT_RRTYPE_A, T0, KNOT_AUTHORITY, &rcode),
	             30);
	cr_assert_eq(rcode, KNOT_RCODE_NOERROR);
	t_cache_deinit(&c);
}

Test(cache, denial_ttl_caps_negative_ttl)
{
	uint32_t ttl = 5;
	struct tern_cache_kind_conf denial = { .ttl = &ttl };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .denial = &denial });
	store_negative(&c, "nx.example.org.", KNOT_RCODE_NXDOMAIN, 3600, 600, T0);
	cr_assert_eq(hit_ttl(&c, "nx.example.org.", KNOT_RRTYPE_A, T0, KNOT_AUTHORITY, NULL), 5);
	cr_assert(is_miss(&c, "nx.example.org.", KNOT_RRTYPE_A, T0 + 5000, false));
	t_cache_deinit(&c);
}

Test(cache, negative_answer_without_soa_is_not_stored)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	struct t_query *t = ask(&c, "nx.example.org.", KNOT_RRTYPE_A, T0, false);
	tern_plugin_cache.query(&t->req, &c.pi);
	tern_answer_by(&t->req, FORWARD_ID);
	upstream_answered(&c, t, KNOT_RCODE_NXDOMAIN);
	t_query_free(t);
	cr_assert(is_miss(&c, "nx.example.org.", KNOT_RRTYPE_A, T0, false));
	t_cache_deinit(&c);
}

Test(cache, servfail_is_kept_for_the_servfail_duration)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .servfail = "2s" });
	struct t_query *t = ask(&c, "broken.example.org.", KNOT_RRTYPE_A, T0, false);
	tern_plugin_cache.query(&t->req, &c.pi);
	upstream_answered(&c, t, KNOT_RCODE_SERVFAIL);
	t_query_free(t);
	t = ask(&c, "broken.example.org.", KNOT_RRTYPE_A, T0 + 1999, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_DONE);
	cr_assert_eq(knot_wire_get_rcode(t->req.answer->wire), KNOT_RCODE_SERVFAIL);
	t_query_free(t);
	cr_assert(is_miss(&c, "broken.example.org.", KNOT_RRTYPE_A, T0 + 2000, false));
	t_cache_deinit(&c);
}

Test(cache, servfail_never_replaces_a_fresh_answer)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	store_a(&c, "www.example.org.", 300, T0);
	/* a background refresh that failed */
	struct t_query *t = ask(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 1000, false);
	t->req.refresh = true;
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_NEXT, "refreshes pass on");
	upstream_answered(&c, t, KNOT_RCODE_SERVFAIL);
	t_query_free(t);
	uint8_t rcode;
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 2000, KNOT_ANSWER, &rcode),
	             298);
	cr_assert_eq(rcode, KNOT_RCODE_NOERROR);
	t_cache_deinit(&c);
}

/* ---- what is not stored -------------------------------------------------------- */

Test(cache, disable_zones_are_not_stored)
{
	struct tern_cache_disable_conf dis = {
		.success = (char *[]) { "cluster.local." }, .success_count = 1,
		.denial = (char *[]) { "example.org." }, .denial_count = 1,
	};
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .disable = &dis });
	store_a(&c, "svc.ns.svc.cluster.local.", 30, T0);
	cr_assert(is_miss(&c, "svc.ns.svc.cluster.local.", KNOT_RRTYPE_A, T0, false));
	store_a(&c, "www.example.org.", 30, T0);
	cr_assert(!is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0, false));
	store_negative(&c, "nx.example.org.", KNOT_RCODE_NXDOMAIN, 60, 60, T0);
	cr_assert(is_miss(&c, "nx.example.org.", KNOT_RRTYPE_A, T0, false));
	t_cache_deinit(&c);
}

/* Nested `disable` zones: only names under both lists are never stored. */
Test(cache, nested_disable_zones)
{
	struct tern_cache_disable_conf dis = {
		.success = (char *[]) { "cluster.local.", "example.net." }, .success_count = 2,
		.denial = (char *[]) { "svc.cluster.local.", "net." }, .denial_count = 2,
	};
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .disable = &dis });
	store_negative(&c, "x.pod.cluster.local.", KNOT_RCODE_NXDOMAIN, 60, 60, T0);
	cr_assert(!is_miss(&c, "x.pod.cluster.local.", KNOT_RRTYPE_A, T0, false),
	          "denial outside svc.cluster.local is stored");
	store_negative(&c, "y.svc.cluster.local.", KNOT_RCODE_NXDOMAIN, 60, 60, T0);
	cr_assert(is_miss(&c, "y.svc.cluster.local.", KNOT_RRTYPE_A, T0, false));
	store_a(&c, "a.pod.cluster.local.", 30, T0);
	cr_assert(is_miss(&c, "a.pod.cluster.local.", KNOT_RRTYPE_A, T0, false));
	store_negative(&c, "nx.example.net.", KNOT_RCODE_NXDOMAIN, 60, 60, T0);
	cr_assert(is_miss(&c, "nx.example.net.", KNOT_RRTYPE_A, T0, false));
	store_a(&c, "www.other.net.", 30, T0);
	cr_assert(!is_miss(&c, "www.other.net.", KNOT_RRTYPE_A, T0, false),
	          "success outside example.net is stored");
	t_cache_deinit(&c);
}

Test(cache, names_outside_the_zones_pass_through)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) {
		.zones = (char *[]) { "example.org." }, .zones_count = 1 });
	store_a(&c, "www.example.com.", 300, T0);
	cr_assert(is_miss(&c, "www.example.com.", KNOT_RRTYPE_A, T0, false));
	store_a(&c, "www.example.org.", 300, T0);
	cr_assert(!is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0, false));
	t_cache_deinit(&c);
}

Test(cache, truncated_and_own_answers_are_not_stored)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	struct t_query *t = ask(&c, "tc.example.org.", KNOT_RRTYPE_A, T0, false);
	tern_plugin_cache.query(&t->req, &c.pi);
	tern_answer_by(&t->req, FORWARD_ID);
	put_a(t, "tc.example.org.", 300, 1);
	knot_wire_set_tc(t->req.answer->wire);
	upstream_answered(&c, t, KNOT_RCODE_NOERROR);
	t_query_free(t);
	cr_assert(is_miss(&c, "tc.example.org.", KNOT_RRTYPE_A, T0, false));

	/* a hit runs the cache's own answer hook: the entry keeps its age */
	store_a(&c, "www.example.org.", 300, T0);
	t = ask(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 100000, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_DONE);
	tern_plugin_cache.answer(&t->req, &c.pi);
	t_query_free(t);
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 200000, KNOT_ANSWER, NULL),
	             100);
	t_cache_deinit(&c);
}

/* ---- capacity ------------------------------------------------------------------ */

static size_t metric(struct t_cache *c, const char *family, const char *type)
{
	struct tern_server srv = { .chain = &c->pi, .chain_len = 1 };
	struct tern_view view = { .servers = &srv, .nservers = 1 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	tern_plugin_cache.metrics(out, &view, c->pi.plugin_id);
	fclose(out);
	char want[160];
	if (type)
		snprintf(want, sizeof(want), "%s{server=\"dns://\",type=\"%s\",zones=\".\",view=\"\"} ",
		         family, type);
	else
		snprintf(want, sizeof(want), "%s{server=\"dns://\",zones=\".\",view=\"\"} ", family);
	char *at = strstr(buf, want);
	cr_assert_not_null(at, "%s in:\n%s", want, buf);
	size_t v = strtoull(at + strlen(want), NULL, 10);
	free(buf);
	return v;
}

Test(cache, capacity_bounds_entries_and_counts_evictions)
{
	uint32_t cap = 4;
	struct tern_cache_kind_conf success = { .capacity = &cap };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .success = &success });
	char name[64];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d.example.org.", i);
		store_a(&c, name, 300, T0);
	}
	cr_assert_eq(metric(&c, "coredns_cache_entries", "success"), 4);
	cr_assert_eq(metric(&c, "coredns_cache_evictions_total", "success"), 6);
	size_t hits = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d.example.org.", i);
		hits += !is_miss(&c, name, KNOT_RRTYPE_A, T0, false);
	}
	cr_assert_eq(hits, 4);
	cr_assert_eq(metric(&c, "coredns_cache_requests_total", NULL), 20);
	cr_assert_eq(metric(&c, "coredns_cache_misses_total", NULL), 16);
	cr_assert_eq(metric(&c, "coredns_cache_hits_total", "success"), 4);
	t_cache_deinit(&c);
}

Test(cache, recently_hit_entries_survive_eviction)
{
	uint32_t cap = 8;
	struct tern_cache_kind_conf success = { .capacity = &cap };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .success = &success });
	store_a(&c, "hot.example.org.", 300, T0);
	char name[64];
	for (int i = 0; i < 100; i++) {
		cr_assert(!is_miss(&c, "hot.example.org.", KNOT_RRTYPE_A, T0, false),
		          "hot entry evicted after %d inserts", i);
		snprintf(name, sizeof(name), "cold%d.example.org.", i);
		store_a(&c, name, 300, T0);
	}
	t_cache_deinit(&c);
}

Test(cache, eviction_churn_frees_everything)
{
	/* Many more stores than slots, replacements and expiry: run under ASan. */
	uint32_t cap = 64;
	struct tern_cache_kind_conf kind = { .capacity = &cap };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .success = &kind, .denial = &kind });
	char name[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "n%d.example.org.", i % 300);
		uint64_t now = T0 + (uint64_t)i * 100;
		if (i % 3 == 0)
			store_negative(&c, name, KNOT_RCODE_NXDOMAIN, 5, 5, now);
		else if (is_miss(&c, name, KNOT_RRTYPE_A, now, false))
			store_a(&c, name, 1 + (uint32_t)(i % 20), now);
		if (i % 100 == 0)
			tern_rcu_quiescent();   /* let call_rcu free evicted entries meanwhile */
	}
	cr_assert_leq(metric(&c, "coredns_cache_entries", "success"), 64);
	cr_assert_leq(metric(&c, "coredns_cache_entries", "denial"), 64);
	cr_assert_gt(metric(&c, "coredns_cache_evictions_total", "success"), 0);
	t_cache_deinit(&c);
}

/* ---- serve_stale and prefetch ------------------------------------------------- */

Test(cache, serve_stale_answers_after_expiry_and_refreshes)
{
	struct tern_cache_stale_conf st = { .duration = "1h" };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .serve_stale = &st });
	store_a(&c, "www.example.org.", 60, T0);
	cr_assert_eq(c.io->nrefreshes, 0);
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 61000, KNOT_ANSWER, NULL),
	             30, "RFC 8767 stale TTL");
	cr_assert_eq(c.io->nrefreshes, 1, "a background refresh");
	/* more stale hits within the recheck time: no more refreshes */
	cr_assert_eq(hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 62000, KNOT_ANSWER, NULL),
	             30);
	cr_assert_eq(c.io->nrefreshes, 1);
	cr_assert_eq(metric(&c, "coredns_cache_served_stale_total", NULL), 2);
	/* past the stale window: a miss */
	cr_assert(is_miss(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 60000 + 3600000, false));
	t_cache_deinit(&c);
}

Test(cache, serve_stale_verify_answers_stale_only_when_upstream_fails)
{
	struct tern_cache_stale_conf st = { .duration = "1h", .refresh = "verify" };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .serve_stale = &st });
	store_a(&c, "www.example.org.", 60, T0);
	struct t_query *t = ask(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 61000, false);
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c.pi), TERN_NEXT, "verify asks first");
	upstream_answered(&c, t, KNOT_RCODE_SERVFAIL);
	cr_assert_eq(knot_wire_get_rcode(t->req.answer->wire), KNOT_RCODE_NOERROR);
	cr_assert_eq(knot_wire_get_id(t->req.answer->wire), 0x3713, "finished for the client");
	knot_pkt_t *p = knot_pkt_new(t->req.answer->wire, t->req.answer->size, NULL);
	cr_assert_eq(knot_pkt_parse(p, 0), KNOT_EOK);
	cr_assert_eq(first_ttl(p, KNOT_ANSWER), 30);
	knot_pkt_free(p);
	t_query_free(t);
	t_cache_deinit(&c);
}

/* A background refresh after expiry comes back NXDOMAIN. */
static void refresh_nxdomain(struct t_cache *c, const char *name, uint64_t now)
{
	struct t_query *t = ask(c, name, KNOT_RRTYPE_A, now, false);
	t->req.refresh = true;
	cr_assert_eq(tern_plugin_cache.query(&t->req, &c->pi), TERN_NEXT);
	tern_answer_by(&t->req, FORWARD_ID);
	put_soa(t, 60, 60);
	upstream_answered(c, t, KNOT_RCODE_NXDOMAIN);
	t_query_free(t);
}

Test(cache, prefer_positive_keeps_stale_positive_over_denial)
{
	struct tern_cache_stale_conf st = { .duration = "1h" };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) {
		.serve_stale = &st, .serve_stale_policy = "prefer_positive" });
	store_a(&c, "www.example.org.", 60, T0);
	refresh_nxdomain(&c, "www.example.org.", T0 + 61000);
	uint8_t rcode;
	hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 62000, KNOT_ANSWER, &rcode);
	cr_assert_eq(rcode, KNOT_RCODE_NOERROR);
	t_cache_deinit(&c);

	/* without the policy the denial replaces it */
	t_cache_init(&c, &(struct tern_cache_conf) { .serve_stale = &st });
	store_a(&c, "www.example.org.", 60, T0);
	refresh_nxdomain(&c, "www.example.org.", T0 + 61000);
	hit_ttl(&c, "www.example.org.", KNOT_RRTYPE_A, T0 + 62000, KNOT_AUTHORITY, &rcode);
	cr_assert_eq(rcode, KNOT_RCODE_NXDOMAIN);
	t_cache_deinit(&c);
}

Test(cache, prefetch_refreshes_popular_entries_once)
{
	uint32_t amount = 3;
	struct tern_cache_prefetch_conf pf = { .amount = &amount };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .prefetch = &pf });
	store_a(&c, "pop.example.org.", 100, T0);
	store_a(&c, "rare.example.org.", 100, T0);
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 10000, KNOT_ANSWER, NULL);
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 50000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 0, "not yet in the last 10 %%");
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 91000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 1, "third hit in the last 10 %% of the TTL");
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 95000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 1, "once per entry");
	/* one hit only: not popular */
	hit_ttl(&c, "rare.example.org.", KNOT_RRTYPE_A, T0 + 95000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 1);
	cr_assert_eq(metric(&c, "coredns_cache_prefetch_total", NULL), 1);
	t_cache_deinit(&c);
}

Test(cache, prefetch_needs_hits_without_a_duration_gap)
{
	uint32_t amount = 2;
	struct tern_cache_prefetch_conf pf = { .amount = &amount, .duration = "10s" };
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { .prefetch = &pf });
	store_a(&c, "pop.example.org.", 100, T0);
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 1000, KNOT_ANSWER, NULL);
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 95000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 0, "the gap reset the count");
	hit_ttl(&c, "pop.example.org.", KNOT_RRTYPE_A, T0 + 96000, KNOT_ANSWER, NULL);
	cr_assert_eq(c.io->nrefreshes, 1);
	t_cache_deinit(&c);
}

Test(cache, metrics_are_valid_exposition)
{
	struct t_cache c;
	t_cache_init(&c, &(struct tern_cache_conf) { 0 });
	struct tern_server srv = { .chain = &c.pi, .chain_len = 1 };
	struct tern_view view = { .servers = &srv, .nservers = 1 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	tern_plugin_cache.metrics(out, &view, c.pi.plugin_id);
	tern_plugin_cache.metrics(out, &view, c.pi.plugin_id + 1);   /* not ours: nothing */
	fclose(out);
	static const char *const families[] = {
		"coredns_cache_entries", "coredns_cache_hits_total", "coredns_cache_misses_total",
		"coredns_cache_requests_total", "coredns_cache_prefetch_total",
		"coredns_cache_served_stale_total", "coredns_cache_evictions_total",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char head[96];
		snprintf(head, sizeof(head), "# TYPE %s ", families[i]);
		char *at = strstr(buf, head);
		cr_assert_not_null(at, "%s", families[i]);
		cr_assert_null(strstr(at + 1, head), "%s declared once", families[i]);
	}
	free(buf);
	t_cache_deinit(&c);
}
