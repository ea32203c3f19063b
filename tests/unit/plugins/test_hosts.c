/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/hosts: the hooks are driven directly with requests built
 * by hand (query parsed from wire, answer packet over a buffer, arena as req->mm), and
 * answers are checked by parsing the answer wire back. Each test registers itself as
 * an RCU reader because the query hook reads the table through RCU.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <libknot/libknot.h>

#include "lib/core/arena.h"
#include "lib/core/errcode.h"
#include "lib/core/rcu.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/plugins/hosts/hosts.h"
#include "tests/support/query.h"

extern const struct tern_plugin tern_plugin_hosts;

/* ---- a request built by hand ---------------------------------------------------- */

/* ---- an instance ------------------------------------------------------------------ */

static char tmpdir[64];
static const char *zones_org[] = { "example.org." };

struct t_hosts {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
	int ret;
};

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-hosts-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	tern_rcu_register();
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
	tern_rcu_unregister();
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void t_hosts_init(struct t_hosts *h, struct tern_hosts_conf *conf)
{
	struct tern_plugin_env env = {
		.zones = zones_org,
		.nzones = 1,
		.config_dir = tmpdir,
	};
	*h = (struct t_hosts){ .pi = { .plugin = &tern_plugin_hosts, .plugin_id = 2 } };
	tern_diag_init(&h->diag, NULL);
	tern_diag_set_prefix(&h->diag, "servers[0].plugins.hosts");
	h->ret = tern_plugin_hosts.init(&h->pi, conf, &env, &h->diag);
}

static void t_hosts_deinit(struct t_hosts *h)
{
	if (h->ret == 0)
		tern_plugin_hosts.deinit(&h->pi);
	tern_diag_deinit(&h->diag);
}

/* Init from a file named "hosts" under tmpdir holding @text, with @conf's options. */
static void t_hosts_from_file(struct t_hosts *h, struct tern_hosts_conf *conf, const char *text)
{
	write_file("hosts", text);
	conf->path = "hosts"; /* relative: resolves under env->config_dir */
	t_hosts_init(h, conf);
	cr_assert_eq(h->ret, 0, "init failed: %s", h->diag.nmsgs ? h->diag.msgs[0] : "?");
}

static enum tern_verdict ask(struct t_hosts *h, struct t_query *q)
{
	return tern_plugin_hosts.query(&q->req, &h->pi);
}

/* Assert one NOERROR AA answer of @type whose rdata texts are exactly @want. */
static void expect_answer(struct t_hosts *h, const char *name, uint16_t type,
                          const char *const *want, size_t nwant, uint32_t ttl)
{
	struct t_query *q = t_query_new(name, type, 65535);
	cr_assert_eq(ask(h, q), TERN_DONE, "%s: verdict", name);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), KNOT_RCODE_NOERROR, "%s: rcode", name);
	cr_assert(knot_wire_get_aa(p->wire), "%s: AA", name);
	cr_assert(q->req.answered, "%s: answered", name);
	cr_assert_eq(q->req.plugin_id, 2, "%s: plugin id", name);
	/*
	 * The first owner is a pointer to the question, so it echoes the name exactly
	 * as asked (libknot lowercases owners when parsing, so check the wire).
	 */
	const uint8_t *first = p->wire + KNOT_WIRE_HEADER_SIZE + knot_pkt_question_size(p);
	cr_assert(first[0] == 0xc0 && first[1] == KNOT_WIRE_HEADER_SIZE, "%s: owner", name);
	/* A parsed packet holds one RRset per record. */
	const knot_pktsection_t *an = knot_pkt_section(p, KNOT_ANSWER);
	cr_assert_eq(an->count, nwant, "%s: %u records, want %zu", name, an->count, nwant);
	bool seen[8] = { false };
	for (uint16_t i = 0; i < an->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		cr_assert_eq(rr->type, type, "%s: type", name);
		cr_assert_eq(rr->ttl, ttl, "%s: ttl %u", name, rr->ttl);
		cr_assert(knot_dname_is_equal(rr->owner, knot_pkt_qname(p)), "%s: owner", name);
		const knot_rdata_t *rd = rr->rrs.rdata;
		char text[KNOT_DNAME_TXT_MAXLEN + 1];
		if (type == KNOT_RRTYPE_A)
			inet_ntop(AF_INET, rd->data, text, sizeof(text));
		else if (type == KNOT_RRTYPE_AAAA)
			inet_ntop(AF_INET6, rd->data, text, sizeof(text));
		else
			knot_dname_to_str(text, rd->data, sizeof(text));
		bool found = false;
		for (size_t k = 0; k < nwant; k++) {
			if (!seen[k] && strcmp(text, want[k]) == 0) {
				found = seen[k] = true;
				break;
			}
		}
		cr_assert(found, "%s: unexpected or repeated record %s", name, text);
	}
	for (size_t k = 0; k < nwant; k++)
		cr_assert(seen[k], "%s: missing %s", name, want[k]);
	t_query_free(q);
}

/* Assert an answer with @rcode, AA and no records. */
static void expect_empty(struct t_hosts *h, const char *name, uint16_t type, uint8_t rcode)
{
	struct t_query *q = t_query_new(name, type, 65535);
	cr_assert_eq(ask(h, q), TERN_DONE, "%s/%u: verdict", name, type);
	const knot_pkt_t *p = t_query_parse_answer(q);
	cr_assert_eq(knot_wire_get_rcode(p->wire), rcode, "%s/%u: rcode %u", name, type,
	             knot_wire_get_rcode(p->wire));
	cr_assert(knot_wire_get_aa(p->wire), "%s/%u: AA", name, type);
	cr_assert_eq(knot_wire_get_ancount(p->wire), 0, "%s/%u: no answers", name, type);
	t_query_free(q);
}

static void expect_next(struct t_hosts *h, const char *name, uint16_t type)
{
	struct t_query *q = t_query_new(name, type, 65535);
	cr_assert_eq(ask(h, q), TERN_NEXT, "%s/%u: expected TERN_NEXT", name, type);
	cr_assert_eq(knot_wire_get_ancount(q->req.answer->wire), 0, "%s: untouched", name);
	cr_assert_not(q->req.answered, "%s: not answered", name);
	t_query_free(q);
}

static const char hosts_text[] =
	"# The hosts file of a test\n"
	"127.0.0.1 localhost\n"
	"10.0.0.1   a.example.org  B.Example.Org   # two names, mixed case\n"
	"10.0.0.2\ta.example.org\n"
	"\n"
	"2001:db8::1 a.example.org\n"
	"fe80::1%eth0 link.example.org\n"
	"10.9.9.9 other.example.com\n";

/* ---- tests -------------------------------------------------------------------------- */

TestSuite(hosts, .init = setup, .fini = teardown);

Test(hosts, a_query_returns_every_address_of_the_name)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "10.0.0.1", "10.0.0.2" };
	expect_answer(&h, "a.example.org.", KNOT_RRTYPE_A, want, 2, 3600);
	const char *want_b[] = { "10.0.0.1" };
	expect_answer(&h, "b.example.org.", KNOT_RRTYPE_A, want_b, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, names_match_case_insensitively_and_answers_echo_the_question_case)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "10.0.0.1" };
	expect_answer(&h, "B.EXAMPLE.org.", KNOT_RRTYPE_A, want, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, aaaa_query_returns_ipv6_addresses)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "2001:db8::1" };
	expect_answer(&h, "a.example.org.", KNOT_RRTYPE_AAAA, want, 1, 3600);
	const char *want_link[] = { "fe80::1" }; /* the %eth0 zone index is dropped */
	expect_answer(&h, "link.example.org.", KNOT_RRTYPE_AAAA, want_link, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, ptr_query_returns_every_name_of_the_address)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "a.example.org.", "b.example.org." };
	expect_answer(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR, want, 2, 3600);
	const char *want6[] = { "a.example.org." };
	expect_answer(&h,
	              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	              KNOT_RRTYPE_PTR, want6, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, unknown_reverse_name_passes_on_even_without_fallthrough)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_next(&h, "7.7.7.7.in-addr.arpa.", KNOT_RRTYPE_PTR);
	/* Names outside the zones make no PTR either (other.example.com, localhost). */
	expect_next(&h, "9.9.9.10.in-addr.arpa.", KNOT_RRTYPE_PTR);
	expect_next(&h, "1.0.0.127.in-addr.arpa.", KNOT_RRTYPE_PTR);
	t_hosts_deinit(&h);
}

Test(hosts, no_reverse_disables_ptr_records)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .no_reverse = true };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_next(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR);
	const char *want[] = { "10.0.0.1" };
	expect_answer(&h, "b.example.org.", KNOT_RRTYPE_A, want, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, known_name_with_other_type_is_nodata)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .fallthrough = true };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_empty(&h, "a.example.org.", KNOT_RRTYPE_MX, KNOT_RCODE_NOERROR);
	expect_empty(&h, "b.example.org.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR);
	expect_empty(&h, "link.example.org.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR);
	t_hosts_deinit(&h);
}

Test(hosts, unknown_name_is_nxdomain_without_fallthrough)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_empty(&h, "nope.example.org.", KNOT_RRTYPE_A, KNOT_RCODE_NXDOMAIN);
	expect_empty(&h, "nope.example.org.", KNOT_RRTYPE_TXT, KNOT_RCODE_NXDOMAIN);
	t_hosts_deinit(&h);
}

Test(hosts, unknown_name_passes_on_with_fallthrough)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .fallthrough = true };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_next(&h, "nope.example.org.", KNOT_RRTYPE_A);
	expect_next(&h, "nope.example.org.", KNOT_RRTYPE_AAAA);
	t_hosts_deinit(&h);
}

Test(hosts, names_outside_the_zones_are_neither_served_nor_denied)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	expect_next(&h, "other.example.com.", KNOT_RRTYPE_A);
	expect_next(&h, "localhost.", KNOT_RRTYPE_A);
	t_hosts_deinit(&h);
}

Test(hosts, zones_option_overrides_the_server_zones)
{
	struct t_hosts h;
	char *zones[] = { "example.com" };
	struct tern_hosts_conf conf = { .zones = zones, .zones_count = 1 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "10.9.9.9" };
	expect_answer(&h, "other.example.com.", KNOT_RRTYPE_A, want, 1, 3600);
	expect_next(&h, "a.example.org.", KNOT_RRTYPE_A);
	t_hosts_deinit(&h);
}

Test(hosts, inline_entries_serve_without_a_file)
{
	struct t_hosts h;
	char *entries[] = { "10.1.1.1 inline.example.org", "10.1.1.2 inline.example.org alias" };
	uint32_t ttl = 60;
	struct tern_hosts_conf conf = { .entries = entries, .entries_count = 2, .ttl = &ttl };
	t_hosts_init(&h, &conf);
	cr_assert_eq(h.ret, 0);
	const char *want[] = { "10.1.1.1", "10.1.1.2" };
	expect_answer(&h, "inline.example.org.", KNOT_RRTYPE_A, want, 2, 60);
	/* "alias" is a single label name, outside example.org. */
	expect_next(&h, "alias.", KNOT_RRTYPE_A);
	const char *want_ptr[] = { "inline.example.org." };
	expect_answer(&h, "2.1.1.10.in-addr.arpa.", KNOT_RRTYPE_PTR, want_ptr, 1, 60);
	t_hosts_deinit(&h);
}

Test(hosts, inline_entries_add_to_the_file)
{
	struct t_hosts h;
	char *entries[] = { "10.0.0.3 a.example.org" };
	struct tern_hosts_conf conf = { .entries = entries, .entries_count = 1 };
	t_hosts_from_file(&h, &conf, hosts_text);
	const char *want[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3" };
	expect_answer(&h, "a.example.org.", KNOT_RRTYPE_A, want, 3, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, invalid_lines_and_names_are_skipped)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf,
		"not-an-ip bad.example.org\n"
		"999.1.1.1 bad.example.org\n"
		"10.0.0.7\n"
		"10.0.0.8 good.example.org a..b.example.org also.example.org\n");
	const char *want[] = { "10.0.0.8" };
	expect_answer(&h, "good.example.org.", KNOT_RRTYPE_A, want, 1, 3600);
	expect_answer(&h, "also.example.org.", KNOT_RRTYPE_A, want, 1, 3600);
	expect_empty(&h, "bad.example.org.", KNOT_RRTYPE_A, KNOT_RCODE_NXDOMAIN);
	const char *want_ptr[] = { "good.example.org.", "also.example.org." };
	expect_answer(&h, "8.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR, want_ptr, 2, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, many_names_are_all_found)
{
	struct t_hosts h;
	enum { N = 3000 };
	size_t cap = N * 40;
	char *text = calloc(1, cap);
	cr_assert_not_null(text);
	size_t o = 0;
	for (unsigned i = 0; i < N; i++)
		o += (size_t)snprintf(text + o, cap - o, "10.%u.%u.%u h%u.example.org\n",
		                      i >> 16, (i >> 8) & 0xff, i & 0xff, i);
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, text);
	free(text);
	for (unsigned i = 0; i < N; i += 7) {
		char name[64], addr[32];
		snprintf(name, sizeof(name), "h%u.example.org.", i);
		snprintf(addr, sizeof(addr), "10.%u.%u.%u", i >> 16, (i >> 8) & 0xff, i & 0xff);
		const char *want[] = { addr };
		expect_answer(&h, name, KNOT_RRTYPE_A, want, 1, 3600);
	}
	t_hosts_deinit(&h);
}

Test(hosts, reload_picks_up_a_changed_file)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .reload = "1ms" };
	t_hosts_from_file(&h, &conf, "10.0.0.1 r.example.org\n");
	const char *before[] = { "10.0.0.1" };
	expect_answer(&h, "r.example.org.", KNOT_RRTYPE_A, before, 1, 3600);

	write_file("hosts", "10.0.0.42 r.example.org\n10.0.0.43 new.example.org\n");
	usleep(5000);
	tern_plugin_hosts.maintain(&h.pi);

	const char *after[] = { "10.0.0.42" };
	expect_answer(&h, "r.example.org.", KNOT_RRTYPE_A, after, 1, 3600);
	const char *added[] = { "10.0.0.43" };
	expect_answer(&h, "new.example.org.", KNOT_RRTYPE_A, added, 1, 3600);
	expect_next(&h, "1.0.0.10.in-addr.arpa.", KNOT_RRTYPE_PTR);
	t_hosts_deinit(&h);
}

Test(hosts, reload_waits_for_the_period)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .reload = "1h" };
	t_hosts_from_file(&h, &conf, "10.0.0.1 r.example.org\n");
	write_file("hosts", "10.0.0.42 r.example.org\n");
	tern_plugin_hosts.maintain(&h.pi);
	const char *want[] = { "10.0.0.1" };
	expect_answer(&h, "r.example.org.", KNOT_RRTYPE_A, want, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, reload_keeps_the_entries_when_the_file_goes_away)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { .reload = "1ms" };
	t_hosts_from_file(&h, &conf, "10.0.0.1 r.example.org\n");
	char path[128];
	snprintf(path, sizeof(path), "%s/hosts", tmpdir);
	cr_assert_eq(unlink(path), 0);
	usleep(5000);
	tern_plugin_hosts.maintain(&h.pi);
	const char *want[] = { "10.0.0.1" };
	expect_answer(&h, "r.example.org.", KNOT_RRTYPE_A, want, 1, 3600);

	/* It comes back changed: the next check loads it. */
	write_file("hosts", "10.0.0.5 r.example.org\n");
	usleep(5000);
	tern_plugin_hosts.maintain(&h.pi);
	const char *again[] = { "10.0.0.5" };
	expect_answer(&h, "r.example.org.", KNOT_RRTYPE_A, again, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, missing_file_at_start_is_loaded_when_it_appears)
{
	struct t_hosts h;
	char *entries[] = { "10.1.1.1 inline.example.org" };
	struct tern_hosts_conf conf = {
		.path = "later", .entries = entries, .entries_count = 1, .reload = "1ms",
	};
	t_hosts_init(&h, &conf);
	cr_assert_eq(h.ret, 0);
	expect_empty(&h, "late.example.org.", KNOT_RRTYPE_A, KNOT_RCODE_NXDOMAIN);
	write_file("later", "10.2.2.2 late.example.org\n");
	usleep(5000);
	tern_plugin_hosts.maintain(&h.pi);
	const char *want[] = { "10.2.2.2" };
	expect_answer(&h, "late.example.org.", KNOT_RRTYPE_A, want, 1, 3600);
	const char *want_inline[] = { "10.1.1.1" };
	expect_answer(&h, "inline.example.org.", KNOT_RRTYPE_A, want_inline, 1, 3600);
	t_hosts_deinit(&h);
}

Test(hosts, bad_options_are_reported_with_their_key)
{
	struct t_hosts h;
	uint32_t ttl = 0;
	struct tern_hosts_conf conf = { .ttl = &ttl, .reload = "5 s" };
	write_file("hosts", "10.0.0.1 a.example.org\n");
	conf.path = "hosts";
	t_hosts_init(&h, &conf);
	cr_assert_eq(h.ret, TERN_ECONFIG);
	cr_assert_eq(h.diag.nmsgs, 2);
	cr_assert(strstr(h.diag.msgs[0], "hosts.ttl") != NULL, "%s", h.diag.msgs[0]);
	cr_assert(strstr(h.diag.msgs[1], "hosts.reload") != NULL, "%s", h.diag.msgs[1]);
	t_hosts_deinit(&h);

	uint32_t big = 70000;
	struct tern_hosts_conf conf2 = { .ttl = &big, .path = "hosts" };
	t_hosts_init(&h, &conf2);
	cr_assert_eq(h.ret, TERN_ECONFIG);
	t_hosts_deinit(&h);

	struct tern_hosts_conf conf3 = { .path = "." }; /* a directory */
	t_hosts_init(&h, &conf3);
	cr_assert_eq(h.ret, TERN_ECONFIG);
	cr_assert(strstr(h.diag.msgs[0], "hosts.path") != NULL, "%s", h.diag.msgs[0]);
	t_hosts_deinit(&h);
}

Test(hosts, other_classes_pass_on)
{
	struct t_hosts h;
	struct tern_hosts_conf conf = { 0 };
	t_hosts_from_file(&h, &conf, hosts_text);
	struct t_query *q = t_query_new("a.example.org.", KNOT_RRTYPE_A, 65535);
	q->req.qclass = KNOT_CLASS_CH;
	cr_assert_eq(ask(&h, q), TERN_NEXT);
	t_query_free(q);
	t_hosts_deinit(&h);
}
