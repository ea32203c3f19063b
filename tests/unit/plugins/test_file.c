/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the file plugin (lib/plugins/file/): each test loads a zone through the
 * plugin's init hook, builds a query by hand (libknot packet over a buffer, an arena for
 * req->mm) and calls the query hook directly, then parses the answer wire and checks
 * sections, RCODE, flags and TTLs. The main zone is tests/data/zones/example.org.zone;
 * reload and error tests write their own files into a temporary directory. criterion
 * forks per test, so each test registers itself as an RCU reader.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libknot/libknot.h>

#include "lib/core/arena.h"
#include "lib/core/errcode.h"
#include "lib/core/rcu.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/plugins/file/file.h"
#include "lib/plugins/file/zone.h"

extern const struct tern_plugin tern_plugin_file;

#define T_PLUGIN_ID 7

/* One query and its answer. */
struct t_query {
	uint8_t qwire[512];
	uint8_t awire[65535];
	_Alignas(16) uint8_t arena_buf[256 * 1024];
	struct tern_arena arena;
	knot_mm_t mm;
	knot_pkt_t *q;
	knot_pkt_t *a;        /* what the plugin built */
	knot_pkt_t *parsed;   /* the answer wire parsed back */
	knot_dname_storage_t qname;
	struct tern_req req;
	enum tern_verdict verdict;
};

static struct t_query tq;
static struct tern_plugin_inst t_pi;
static struct tern_diag t_diag;
static char t_data_dir[PATH_MAX];
static char t_tmp_dir[256];

/* tests/data/zones, found from this file's path (meson runs tests in the build dir). */
static const char *data_dir(void)
{
	if (t_data_dir[0] != '\0')
		return t_data_dir;
	const char *root = getenv("TERN_SOURCE_ROOT");
	if (root != NULL) {
		snprintf(t_data_dir, sizeof(t_data_dir), "%s/tests/data/zones", root);
	} else {
		char here[PATH_MAX];
		snprintf(here, sizeof(here), "%s", __FILE__);
		snprintf(t_data_dir, sizeof(t_data_dir), "%s/../../data/zones", dirname(here));
	}
	return t_data_dir;
}

static int t_init(const char *dir, const char *path, const char *origin, const char *reload,
                  bool fallthrough)
{
	static const char *const zones[] = { "example.org." };
	struct tern_file_conf conf = {
		.path = (char *)path,
		.origin = (char *)origin,
		.reload = (char *)reload,
		.fallthrough = fallthrough,
	};
	struct tern_plugin_env env = { .zones = zones, .nzones = 1, .config_dir = dir };
	t_pi = (struct tern_plugin_inst){ .plugin = &tern_plugin_file, .plugin_id = T_PLUGIN_ID };
	tern_diag_init(&t_diag, "test.yaml");
	tern_diag_set_prefix(&t_diag, "servers[0].plugins.file");
	return tern_plugin_file.init(&t_pi, &conf, &env, &t_diag);
}

static void t_load_example(bool fallthrough)
{
	int ret = t_init(data_dir(), "example.org.zone", NULL, NULL, fallthrough);
	cr_assert_eq(ret, 0, "init failed: %s", t_diag.nmsgs ? t_diag.msgs[0] : "?");
}

static void setup(void)
{
	tern_rcu_register();
}

static void teardown(void)
{
	if (t_pi.data != NULL)
		tern_plugin_file.deinit(&t_pi);
	tern_diag_deinit(&t_diag);
	if (t_tmp_dir[0] != '\0') {
		char cmd[sizeof(t_tmp_dir) + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_tmp_dir);
		cr_assert_eq(system(cmd), 0);
	}
	tern_rcu_unregister();
}

/* Ask @name/@qtype (any case) and parse the answer into tq.parsed. */
static enum tern_verdict ask(const char *name, uint16_t qtype)
{
	memset(&tq.req, 0, sizeof(tq.req));
	tern_arena_init(&tq.arena, tq.arena_buf, sizeof(tq.arena_buf), &tq.mm);
	cr_assert_not_null(knot_dname_from_str(tq.qname, name, sizeof(tq.qname)), "%s", name);

	tq.q = knot_pkt_new(tq.qwire, sizeof(tq.qwire), &tq.mm);
	cr_assert_not_null(tq.q);
	knot_wire_set_id(tq.q->wire, 0x1234);
	cr_assert_eq(knot_pkt_put_question(tq.q, tq.qname, KNOT_CLASS_IN, qtype), KNOT_EOK);
	size_t qsize = tq.q->size;
	tq.q = knot_pkt_new(tq.qwire, qsize, &tq.mm);
	cr_assert_eq(knot_pkt_parse(tq.q, 0), KNOT_EOK);

	tq.a = knot_pkt_new(tq.awire, sizeof(tq.awire), &tq.mm);
	cr_assert_eq(knot_pkt_init_response(tq.a, tq.q), KNOT_EOK);

	knot_dname_t *lower = knot_dname_copy(knot_pkt_qname(tq.q), &tq.mm);
	knot_dname_to_lower(lower);
	tq.req = (struct tern_req){
		.query = tq.q,
		.qname = lower,
		.qname_len = (uint16_t)knot_dname_size(lower),
		.qtype = qtype,
		.qclass = KNOT_CLASS_IN,
		.qsize = (uint16_t)qsize,
		.mm = &tq.mm,
		.answer = tq.a,
		.max_size = 65535,
	};
	tq.verdict = tern_plugin_file.query(&tq.req, &t_pi);

	tq.parsed = knot_pkt_new(tq.awire, tq.a->size, &tq.mm);
	cr_assert_eq(knot_pkt_parse(tq.parsed, 0), KNOT_EOK, "answer to %s does not parse", name);
	return tq.verdict;
}

/* Records (not RRsets) in section @s. */
static uint16_t count(knot_section_t s)
{
	return knot_pkt_section(tq.parsed, s)->count;
}

static const knot_rrset_t *rr_at(knot_section_t s, uint16_t i)
{
	const knot_pktsection_t *sec = knot_pkt_section(tq.parsed, s);
	cr_assert_lt(i, sec->count, "section %d has only %u records", s, sec->count);
	return knot_pkt_rr(sec, i);
}

static uint8_t rcode(void)
{
	return knot_wire_get_rcode(tq.parsed->wire);
}

static bool aa(void)
{
	return knot_wire_get_aa(tq.parsed->wire) != 0;
}

/* The first RRset of @type in section @s, or NULL. */
static const knot_rrset_t *find(knot_section_t s, uint16_t type)
{
	for (uint16_t i = 0; i < count(s); i++)
		if (rr_at(s, i)->type == type)
			return rr_at(s, i);
	return NULL;
}

static void assert_owner(const knot_rrset_t *rr, const char *name)
{
	knot_dname_storage_t want;
	cr_assert_not_null(rr, "no record where %s was expected", name);
	cr_assert_not_null(knot_dname_from_str(want, name, sizeof(want)));
	char got[KNOT_DNAME_TXT_MAXLEN + 1];
	knot_dname_to_str(got, rr->owner, sizeof(got));
	cr_assert(knot_dname_is_equal(rr->owner, want), "owner %s, want %s", got, name);
}

/* Section @s holds an A record @owner -> @addr (the parsed answer has one RRset per RR). */
static void assert_a(knot_section_t s, const char *owner, const char *addr)
{
	knot_dname_storage_t name;
	uint8_t want[4];
	cr_assert_not_null(knot_dname_from_str(name, owner, sizeof(name)));
	cr_assert_eq(inet_pton(AF_INET, addr, want), 1);
	for (uint16_t i = 0; i < count(s); i++) {
		const knot_rrset_t *rr = rr_at(s, i);
		const knot_rdata_t *rd = rr->rrs.rdata;
		if (rr->type == KNOT_RRTYPE_A && knot_dname_is_equal(rr->owner, name) &&
		    rd->len == 4 && memcmp(rd->data, want, 4) == 0)
			return;
	}
	cr_assert_fail("section %d has no A %s %s", s, owner, addr);
}

static void assert_negative_soa(uint32_t ttl)
{
	cr_assert_eq(count(KNOT_AUTHORITY), 1);
	const knot_rrset_t *soa = rr_at(KNOT_AUTHORITY, 0);
	cr_assert_eq(soa->type, KNOT_RRTYPE_SOA);
	assert_owner(soa, "example.org.");
	cr_assert_eq(soa->ttl, ttl, "negative TTL %u, want %u", soa->ttl, ttl);
}

/* Write @text to @name in a fresh temp dir (created on first use); @return its path. */
static const char *write_tmp(const char *name, const char *text)
{
	static char path[PATH_MAX - 16];
	if (t_tmp_dir[0] == '\0') {
		snprintf(t_tmp_dir, sizeof(t_tmp_dir), "/tmp/tern-test-file-XXXXXX");
		cr_assert_not_null(mkdtemp(t_tmp_dir));
	}
	snprintf(path, sizeof(path), "%s/%s", t_tmp_dir, name);
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, true);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, path), 0); /* a new inode: the reload check must notice */
	return path;
}

#define SMALL_ZONE(serial, addr) \
	"$ORIGIN small.test.\n$TTL 60\n" \
	"@ 30 IN SOA ns.small.test. h.small.test. " serial " 1 1 1 120\n" \
	"@ IN NS ns\nns IN A 192.0.2.1\nwww IN A " addr "\n"

static void force_maintain(void)
{
	usleep(5 * 1000); /* past the 1ms reload interval */
	tern_plugin_file.maintain(&t_pi);
}

TestSuite(file, .init = setup, .fini = teardown);

Test(file, exact_match_answers_authoritatively_with_the_whole_rrset)
{
	t_load_example(false);
	cr_assert_eq(ask("www.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert(aa());
	cr_assert(tq.req.answered);
	cr_assert_eq(tq.req.plugin_id, T_PLUGIN_ID);
	cr_assert_eq(count(KNOT_ANSWER), 2, "the duplicate record must be loaded once");
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->ttl, 120);
	cr_assert_eq(rr_at(KNOT_ANSWER, 1)->ttl, 120);
	assert_a(KNOT_ANSWER, "www.example.org.", "192.0.2.80");
	assert_a(KNOT_ANSWER, "www.example.org.", "192.0.2.81");
	cr_assert_eq(count(KNOT_AUTHORITY), 0);
}

Test(file, lookups_ignore_case_and_the_answer_echoes_the_question_case)
{
	t_load_example(false);
	cr_assert_eq(ask("mIxEd.case.EXAMPLE.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	const knot_rrset_t *rr = rr_at(KNOT_ANSWER, 0);
	assert_a(KNOT_ANSWER, "mixed.case.example.org.", "192.0.2.82");
	cr_assert(knot_dname_is_case_equal(rr->owner, knot_pkt_qname(tq.q)),
	          "answer owner must keep the client's case (0x20)");
}

Test(file, cname_chain_inside_the_zone_is_followed_to_the_data)
{
	t_load_example(false);
	cr_assert_eq(ask("chain1.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 4);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_CNAME);
	assert_owner(rr_at(KNOT_ANSWER, 0), "chain1.example.org.");
	cr_assert_eq(rr_at(KNOT_ANSWER, 1)->type, KNOT_RRTYPE_CNAME);
	assert_owner(rr_at(KNOT_ANSWER, 1), "chain2.example.org.");
	assert_a(KNOT_ANSWER, "www.example.org.", "192.0.2.80");
}

Test(file, cname_query_type_returns_the_cname_itself)
{
	t_load_example(false);
	ask("alias.example.org.", KNOT_RRTYPE_CNAME);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_CNAME);
}

Test(file, cname_loop_stops_with_each_record_once)
{
	t_load_example(false);
	cr_assert_eq(ask("loop1.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_eq(count(KNOT_ANSWER), 2);
	assert_owner(rr_at(KNOT_ANSWER, 0), "loop1.example.org.");
	assert_owner(rr_at(KNOT_ANSWER, 1), "loop2.example.org.");
}

Test(file, cname_out_of_zone_is_answered_without_following)
{
	t_load_example(false);
	ask("outside.example.org.", KNOT_RRTYPE_A);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_CNAME);
	cr_assert_eq(count(KNOT_AUTHORITY), 0);
}

Test(file, cname_to_a_missing_name_is_nxdomain_with_the_cname)
{
	t_load_example(false);
	ask("to-nx.example.org.", KNOT_RRTYPE_A);
	cr_assert_eq(rcode(), KNOT_RCODE_NXDOMAIN);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_CNAME);
	assert_negative_soa(300);
}

Test(file, wildcard_synthesises_the_answer_owned_by_the_qname)
{
	t_load_example(false);
	cr_assert_eq(ask("Anything.wild.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 1);
	assert_a(KNOT_ANSWER, "anything.wild.example.org.", "192.0.2.99");

	ask("deeper.name.wild.example.org.", KNOT_RRTYPE_TXT);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_TXT);
	assert_owner(rr_at(KNOT_ANSWER, 0), "deeper.name.wild.example.org.");
}

Test(file, wildcard_does_not_cover_names_that_exist)
{
	t_load_example(false);
	ask("sub.wild.example.org.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "sub.wild.example.org.", "192.0.2.98");
	/* RFC 4592 2.2.1: sub.wild exists, so x.sub.wild gets no wildcard. */
	ask("x.sub.wild.example.org.", KNOT_RRTYPE_A);
	cr_assert_eq(rcode(), KNOT_RCODE_NXDOMAIN);
	/* and an existing name with another type is NODATA, not the wildcard's TXT */
	ask("sub.wild.example.org.", KNOT_RRTYPE_TXT);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_eq(count(KNOT_ANSWER), 0);
}

Test(file, wildcard_without_the_type_is_nodata)
{
	t_load_example(false);
	ask("x.wild.example.org.", KNOT_RRTYPE_AAAA);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_eq(count(KNOT_ANSWER), 0);
	assert_negative_soa(300);
}

Test(file, cname_into_a_wildcard_is_synthesised_under_the_target)
{
	t_load_example(false);
	ask("to-wild.example.org.", KNOT_RRTYPE_A);
	cr_assert_eq(count(KNOT_ANSWER), 2);
	assert_a(KNOT_ANSWER, "foo.wild.example.org.", "192.0.2.99");
}

Test(file, empty_non_terminal_is_nodata_not_nxdomain)
{
	t_load_example(false);
	const char *ents[] = { "ent.example.org.", "c.ent.example.org.", "b.c.ent.example.org." };
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(ask(ents[i], KNOT_RRTYPE_A), TERN_DONE);
		cr_assert_eq(rcode(), KNOT_RCODE_NOERROR, "%s must exist (ENT)", ents[i]);
		cr_assert_eq(count(KNOT_ANSWER), 0, "%s", ents[i]);
		assert_negative_soa(300);
	}
	ask("a.b.c.ent.example.org.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "a.b.c.ent.example.org.", "192.0.2.7");
}

Test(file, nxdomain_carries_the_soa_with_the_rfc2308_ttl)
{
	t_load_example(false);
	cr_assert_eq(ask("nope.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NXDOMAIN);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 0);
	/* SOA TTL 600, MINIMUM 300: the smaller one. */
	assert_negative_soa(300);
}

Test(file, negative_ttl_is_the_soa_ttl_when_it_is_below_minimum)
{
	const char *path = write_tmp("small.zone", SMALL_ZONE("1", "192.0.2.10"));
	cr_assert_eq(t_init(NULL, path, "small.test", "0", false), 0);
	ask("missing.small.test.", KNOT_RRTYPE_A);
	cr_assert_eq(rcode(), KNOT_RCODE_NXDOMAIN);
	cr_assert_eq(count(KNOT_AUTHORITY), 1);
	cr_assert_eq(rr_at(KNOT_AUTHORITY, 0)->ttl, 30);
}

Test(file, nodata_is_noerror_with_soa_and_empty_answer)
{
	t_load_example(false);
	ask("www.example.org.", KNOT_RRTYPE_AAAA);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 0);
	assert_negative_soa(300);
}

Test(file, delegation_is_a_referral_with_glue_and_no_aa)
{
	t_load_example(false);
	cr_assert_eq(ask("host.deep.sub.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_not(aa(), "a referral is not authoritative");
	cr_assert(tq.req.answered);
	cr_assert_eq(count(KNOT_ANSWER), 0);
	cr_assert_eq(count(KNOT_AUTHORITY), 2);
	for (uint16_t i = 0; i < 2; i++) {
		cr_assert_eq(rr_at(KNOT_AUTHORITY, i)->type, KNOT_RRTYPE_NS);
		assert_owner(rr_at(KNOT_AUTHORITY, i), "sub.example.org.");
	}
	/* glue below the cut and the in-zone address of the other server */
	assert_a(KNOT_ADDITIONAL, "ns.sub.example.org.", "192.0.2.53");
	assert_a(KNOT_ADDITIONAL, "ns1.example.org.", "192.0.2.1");
	cr_assert_eq(count(KNOT_ADDITIONAL), 2);
}

Test(file, names_below_a_cut_are_occluded_even_when_present)
{
	t_load_example(false);
	ask("ns.sub.example.org.", KNOT_RRTYPE_A);
	cr_assert_not(aa());
	cr_assert_eq(count(KNOT_ANSWER), 0);
	cr_assert_eq(rr_at(KNOT_AUTHORITY, 0)->type, KNOT_RRTYPE_NS);
}

Test(file, ds_at_the_cut_is_answered_by_the_parent)
{
	t_load_example(false);
	ask("sub.example.org.", KNOT_RRTYPE_DS);
	cr_assert(aa());
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	assert_negative_soa(300);
}

Test(file, cname_below_a_cut_ends_with_the_referral)
{
	t_load_example(false);
	ask("to-sub.example.org.", KNOT_RRTYPE_A);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_CNAME);
	cr_assert_eq(rr_at(KNOT_AUTHORITY, 0)->type, KNOT_RRTYPE_NS);
}

Test(file, mx_answer_brings_target_addresses_in_additional)
{
	t_load_example(false);
	ask("example.org.", KNOT_RRTYPE_MX);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_MX);
	assert_a(KNOT_ADDITIONAL, "mail.example.org.", "192.0.2.25");
	const knot_rrset_t *aaaa = find(KNOT_ADDITIONAL, KNOT_RRTYPE_AAAA);
	cr_assert_not_null(aaaa);
	assert_owner(aaaa, "mail.example.org.");
}

Test(file, srv_answer_brings_target_address_in_additional)
{
	t_load_example(false);
	ask("_sip._tcp.example.org.", KNOT_RRTYPE_SRV);
	cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, KNOT_RRTYPE_SRV);
	assert_a(KNOT_ADDITIONAL, "sip.example.org.", "192.0.2.60");
}

Test(file, ns_at_apex_brings_addresses_of_both_servers)
{
	t_load_example(false);
	ask("example.org.", KNOT_RRTYPE_NS);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 2);
	assert_a(KNOT_ADDITIONAL, "ns1.example.org.", "192.0.2.1");
	assert_owner(find(KNOT_ADDITIONAL, KNOT_RRTYPE_AAAA), "ns2.example.org.");
}

Test(file, any_on_an_existing_name_is_one_hinfo_per_rfc8482)
{
	t_load_example(false);
	ask("www.example.org.", KNOT_RRTYPE_ANY);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert(aa());
	cr_assert_eq(count(KNOT_ANSWER), 1);
	const knot_rrset_t *rr = rr_at(KNOT_ANSWER, 0);
	cr_assert_eq(rr->type, KNOT_RRTYPE_HINFO);
	assert_owner(rr, "www.example.org.");
	ask("nope.example.org.", KNOT_RRTYPE_ANY);
	cr_assert_eq(rcode(), KNOT_RCODE_NXDOMAIN);
}

Test(file, unknown_type_is_served_as_opaque_rdata)
{
	t_load_example(false);
	ask("unknown.example.org.", 65000);
	cr_assert_eq(rcode(), KNOT_RCODE_NOERROR);
	cr_assert_eq(count(KNOT_ANSWER), 1);
	const knot_rrset_t *rr = rr_at(KNOT_ANSWER, 0);
	cr_assert_eq(rr->type, 65000);
	cr_assert_eq(rr->rrs.rdata->len, 4);
	cr_assert_eq(memcmp(rr->rrs.rdata->data, "\x01\x02\x03\x04", 4), 0);
}

Test(file, common_types_are_served)
{
	static const struct { const char *name; uint16_t type; } cases[] = {
		{ "caa.example.org.", KNOT_RRTYPE_CAA },
		{ "txt.example.org.", KNOT_RRTYPE_TXT },
		{ "ptr.example.org.", KNOT_RRTYPE_PTR },
		{ "ns2.example.org.", KNOT_RRTYPE_AAAA },
		{ "example.org.", KNOT_RRTYPE_SOA },
	};
	t_load_example(false);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ask(cases[i].name, cases[i].type);
		cr_assert_eq(count(KNOT_ANSWER), 1, "%s type %u", cases[i].name, cases[i].type);
		cr_assert_eq(rr_at(KNOT_ANSWER, 0)->type, cases[i].type, "%s", cases[i].name);
	}
}

Test(file, names_outside_the_origin_pass_to_the_next_plugin)
{
	t_load_example(false);
	cr_assert_eq(ask("www.example.net.", KNOT_RRTYPE_A), TERN_NEXT);
	cr_assert_not(tq.req.answered);
	cr_assert_eq(ask("org.", KNOT_RRTYPE_A), TERN_NEXT);
}

Test(file, fallthrough_passes_nxdomain_on_but_answers_what_exists)
{
	t_load_example(true);
	cr_assert_eq(ask("nope.example.org.", KNOT_RRTYPE_A), TERN_NEXT);
	cr_assert_not(tq.req.answered);
	cr_assert_eq(ask("www.example.org.", KNOT_RRTYPE_A), TERN_DONE);
	cr_assert_eq(ask("www.example.org.", KNOT_RRTYPE_AAAA), TERN_DONE, "NODATA stays");
}

Test(file, origin_defaults_to_the_first_zone_and_can_be_set)
{
	const char *path = write_tmp("small.zone", SMALL_ZONE("1", "192.0.2.10"));
	cr_assert_eq(t_init(NULL, path, "SMALL.test", NULL, false), 0);
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.10");
	tern_plugin_file.deinit(&t_pi);
	tern_diag_deinit(&t_diag);
	/* Without origin the block's zone (example.org.) is used: records are out of zone. */
	cr_assert_eq(t_init(NULL, path, NULL, NULL, false), TERN_ECONFIG);
	cr_assert_eq(t_diag.nmsgs, 1);
	cr_assert(strstr(t_diag.msgs[0], "outside the zone") != NULL, "%s", t_diag.msgs[0]);
}

Test(file, reload_picks_up_a_changed_file)
{
	const char *path = write_tmp("small.zone", SMALL_ZONE("1", "192.0.2.10"));
	cr_assert_eq(t_init(NULL, path, "small.test.", "1ms", false), 0);
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.10");

	write_tmp("small.zone", SMALL_ZONE("2", "192.0.2.20"));
	force_maintain();
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.20");
}

Test(file, reload_keeps_the_old_zone_when_the_new_file_is_broken)
{
	const char *path = write_tmp("small.zone", SMALL_ZONE("1", "192.0.2.10"));
	cr_assert_eq(t_init(NULL, path, "small.test.", "1ms", false), 0);

	write_tmp("small.zone", SMALL_ZONE("2", "192.0.2.20") "bad IN A 999.1.1.1\n");
	force_maintain();
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.10");

	/* a later good version is taken again */
	write_tmp("small.zone", SMALL_ZONE("3", "192.0.2.30"));
	force_maintain();
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.30");
}

Test(file, reload_zero_never_rereads_the_file)
{
	const char *path = write_tmp("small.zone", SMALL_ZONE("1", "192.0.2.10"));
	cr_assert_eq(t_init(NULL, path, "small.test.", "0", false), 0);
	write_tmp("small.zone", SMALL_ZONE("2", "192.0.2.20"));
	force_maintain();
	ask("www.small.test.", KNOT_RRTYPE_A);
	assert_a(KNOT_ANSWER, "www.small.test.", "192.0.2.10");
}

Test(file, syntax_error_is_a_config_error_with_file_and_line)
{
	const char *path = write_tmp("bad.zone", SMALL_ZONE("1", "192.0.2.10")
	                             "oops IN A not-an-address\n");
	cr_assert_eq(t_init(NULL, path, "small.test.", NULL, false), TERN_ECONFIG);
	cr_assert_null(t_pi.data);
	cr_assert_eq(t_diag.nmsgs, 1);
	char want[PATH_MAX + 8];
	snprintf(want, sizeof(want), "%s:7:", path);
	cr_assert(strstr(t_diag.msgs[0], want) != NULL, "no %s in: %s", want, t_diag.msgs[0]);
	cr_assert(strstr(t_diag.msgs[0], "servers[0].plugins.file.path") != NULL, "%s",
	          t_diag.msgs[0]);
}

Test(file, zone_without_soa_or_ns_is_rejected)
{
	const char *path = write_tmp("nosoa.zone", "$ORIGIN small.test.\n@ 60 IN NS ns\n"
	                             "ns 60 IN A 192.0.2.1\n");
	cr_assert_eq(t_init(NULL, path, "small.test.", NULL, false), TERN_ECONFIG);
	cr_assert(strstr(t_diag.msgs[0], "no SOA") != NULL, "%s", t_diag.msgs[0]);
	tern_diag_deinit(&t_diag);

	path = write_tmp("nons.zone", "$ORIGIN small.test.\n"
	                 "@ 60 IN SOA ns h 1 1 1 1 1\n");
	cr_assert_eq(t_init(NULL, path, "small.test.", NULL, false), TERN_ECONFIG);
	cr_assert(strstr(t_diag.msgs[0], "no NS") != NULL, "%s", t_diag.msgs[0]);
}

Test(file, cname_next_to_other_data_is_rejected)
{
	const char *path = write_tmp("cname.zone", SMALL_ZONE("1", "192.0.2.10")
	                             "www IN CNAME ns\n");
	cr_assert_eq(t_init(NULL, path, "small.test.", NULL, false), TERN_ECONFIG);
	cr_assert(strstr(t_diag.msgs[0], "CNAME") != NULL, "%s", t_diag.msgs[0]);
}

Test(file, missing_file_and_bad_options_are_reported_per_key)
{
	cr_assert_eq(t_init("/nonexistent", "x.zone", NULL, NULL, false), TERN_ECONFIG);
	cr_assert(strstr(t_diag.msgs[0], "/nonexistent/x.zone") != NULL, "%s", t_diag.msgs[0]);
	tern_diag_deinit(&t_diag);

	cr_assert_eq(t_init(NULL, NULL, "bad..origin", "5 parsecs", false), TERN_ECONFIG);
	cr_assert_eq(t_diag.nmsgs, 3);
	cr_assert(strstr(t_diag.msgs[0], "file.path") != NULL, "%s", t_diag.msgs[0]);
	cr_assert(strstr(t_diag.msgs[1], "file.origin") != NULL, "%s", t_diag.msgs[1]);
	cr_assert(strstr(t_diag.msgs[2], "file.reload") != NULL, "%s", t_diag.msgs[2]);
	tern_diag_deinit(&t_diag);

	/* a bad reload value does not hide a broken zone file */
	cr_assert_eq(t_init("/nonexistent", "x.zone", NULL, "soon", false), TERN_ECONFIG);
	cr_assert_eq(t_diag.nmsgs, 2);
	cr_assert(strstr(t_diag.msgs[0], "file.reload") != NULL, "%s", t_diag.msgs[0]);
	cr_assert(strstr(t_diag.msgs[1], "x.zone") != NULL, "%s", t_diag.msgs[1]);
}

Test(file, zone_lookup_classifies_names)
{
	struct tern_zone *z = NULL;
	char err[256], path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/example.org.zone", data_dir());
	cr_assert_eq(tern_zone_load(path, "example.org", &z, err, sizeof(err)), 0, "%s", err);
	static const struct { const char *name; enum tern_zone_result res; } cases[] = {
		{ "example.org.", TERN_ZONE_FOUND },
		{ "www.example.org.", TERN_ZONE_FOUND },
		{ "ent.example.org.", TERN_ZONE_FOUND },
		{ "x.wild.example.org.", TERN_ZONE_WILDCARD },
		{ "*.wild.example.org.", TERN_ZONE_FOUND },
		{ "sub.example.org.", TERN_ZONE_DELEG },
		{ "a.sub.example.org.", TERN_ZONE_DELEG },
		{ "nope.example.org.", TERN_ZONE_NXDOMAIN },
		{ "x.a.b.c.ent.example.org.", TERN_ZONE_NXDOMAIN },
		{ "example.com.", TERN_ZONE_OUT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		knot_dname_storage_t n;
		const struct tern_zone_node *node;
		knot_dname_from_str(n, cases[i].name, sizeof(n));
		cr_assert_eq(tern_zone_find(z, n, KNOT_RRTYPE_A, &node), cases[i].res,
		             "%s", cases[i].name);
	}
	cr_assert_eq(z->neg_ttl, 300);
	tern_zone_free(z);
}
