/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/plugins/log (and its sibling observer lib/plugins/errors): the
 * answer hooks are called directly on hand-built requests whose answers are already
 * complete, and what they write to stderr is captured by pointing fd 2 at a file.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <libknot/libknot.h>

#include "lib/core/arena.h"
#include "tests/support/query.h"
#include "lib/core/errcode.h"
#include "lib/engine/diag.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"
#include "lib/plugins/errors/errors.h"
#include "lib/plugins/log/log.h"

extern const struct tern_plugin tern_plugin_log;
extern const struct tern_plugin tern_plugin_errors;

/* ---- a request with a finished answer -------------------------------------------- */

/* A query for @name/@qtype from 127.0.0.1:55225 over UDP; @edns_size 0 = no OPT. */
static struct t_query *log_query(const char *name, uint16_t qtype, uint16_t edns_size,
                                 bool dnssec_ok)
{
	return t_query_new_opts(name, qtype, &(struct t_query_opts) {
		.id = 14155, .udp = true, .edns_size = edns_size, .dnssec_ok = dnssec_ok });
}

/* Finish the answer: @rcode, AA, an A record when @with_a, an NS or SOA in AUTHORITY. */
static void t_answer(struct t_query *t, uint8_t rcode, bool with_a, uint16_t auth_type)
{
	knot_pkt_t *ans = t->req.answer;
	knot_wire_set_aa(ans->wire);
	knot_wire_set_rcode(ans->wire, rcode);
	knot_rrset_t rr;
	if (with_a) {
		static const uint8_t addr[4] = { 10, 0, 0, 1 };
		knot_rrset_init(&rr, (knot_dname_t *)knot_pkt_qname(t->req.query), KNOT_RRTYPE_A,
		                KNOT_CLASS_IN, 60);
		cr_assert_eq(knot_rrset_add_rdata(&rr, addr, sizeof(addr), &t->mm), KNOT_EOK);
		cr_assert_eq(knot_pkt_put(ans, KNOT_COMPR_HINT_QNAME, &rr, 0), KNOT_EOK);
	}
	if (auth_type != 0) {
		static const uint8_t ns[] = "\x02ns\x07" "example\x03org";
		static const uint8_t soa[] = "\x02ns\x07" "example\x03org\x00"
			"\x02ns\x07" "example\x03org\x00"
			"\x00\x00\x00\x01\x00\x00\x0e\x10\x00\x00\x0e\x10\x00\x00\x0e\x10\x00\x00\x0e\x10";
		cr_assert_eq(knot_pkt_begin(ans, KNOT_AUTHORITY), KNOT_EOK);
		knot_rrset_init(&rr, (knot_dname_t *)t->lower, auth_type, KNOT_CLASS_IN, 60);
		if (auth_type == KNOT_RRTYPE_NS)
			cr_assert_eq(knot_rrset_add_rdata(&rr, ns, sizeof(ns), &t->mm), KNOT_EOK);
		else
			cr_assert_eq(knot_rrset_add_rdata(&rr, soa, sizeof(soa) - 1, &t->mm),
			             KNOT_EOK);
		cr_assert_eq(knot_pkt_put(ans, KNOT_COMPR_HINT_NONE, &rr, 0), KNOT_EOK);
	}
}

/* ---- stderr capture ----------------------------------------------------------------- */

struct t_capture {
	char path[64];
	int saved;
};

static void capture_start(struct t_capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/tern-log-XXXXXX");
	int fd = mkstemp(c->path);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	cr_assert_geq(c->saved, 0);
	cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

/* Stop capturing; @return the text written meanwhile (heap, NUL-terminated). */
static char *capture_stop(struct t_capture *c)
{
	fflush(stderr);
	cr_assert_geq(dup2(c->saved, STDERR_FILENO), 0);
	close(c->saved);
	FILE *f = fopen(c->path, "r");
	cr_assert_not_null(f);
	char *text = calloc(1, 65536);
	size_t n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	unlink(c->path);
	return text;
}

/* ---- the log plugin ---------------------------------------------------------------- */

struct t_log {
	struct tern_plugin_inst pi;
	struct tern_diag diag;
	int ret;
};

static void t_log_init(struct t_log *l, char **classes, unsigned n)
{
	struct tern_log_conf conf = { .classes = classes, .classes_count = n };
	struct tern_plugin_env env = { 0 };
	*l = (struct t_log){ .pi = { .plugin = &tern_plugin_log, .plugin_id = 1 } };
	tern_diag_init(&l->diag, NULL);
	tern_diag_set_prefix(&l->diag, "servers[0].plugins.log");
	l->ret = tern_plugin_log.init(&l->pi, &conf, &env, &l->diag);
}

static void t_log_deinit(struct t_log *l)
{
	if (l->ret == 0)
		tern_plugin_log.deinit(&l->pi);
	tern_diag_deinit(&l->diag);
}

/* Run the answer hook on @q; @return what it wrote (heap). */
static char *log_line(struct t_log *l, struct t_query *q)
{
	struct t_capture c;
	capture_start(&c);
	tern_plugin_log.answer(&q->req, &l->pi);
	return capture_stop(&c);
}

/* Check that @line is "@prefix<duration>s\n" with a duration in Go's 'f' form. */
static void expect_line(const char *line, const char *prefix)
{
	size_t n = strlen(prefix);
	cr_assert(strncmp(line, prefix, n) == 0, "got  %swant %s...", line, prefix);
	const char *d = line + n;
	size_t digits = strspn(d, "0123456789.");
	cr_assert_gt(digits, 0, "duration in: %s", line);
	cr_assert_str_eq(d + digits, "s\n", "tail of: %s", line);
}

TestSuite(log);

Test(log, line_has_the_coredns_common_format)
{
	struct t_log l;
	t_log_init(&l, NULL, 0);
	cr_assert_eq(l.ret, 0);
	struct t_query *q = log_query("Example.ORG.", KNOT_RRTYPE_A, 0, false);
	t_answer(q, KNOT_RCODE_NOERROR, true, 0);
	char *line = log_line(&l, q);
	char want[256];
	snprintf(want, sizeof(want),
	         "[INFO] 127.0.0.1:55225 - 14155 \"A IN Example.ORG. udp %u false 512\" "
	         "NOERROR qr,aa,rd %zu ", q->req.qsize, q->req.answer->size);
	expect_line(line, want);
	cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "exactly one line");
	free(line);
	free(q);
	t_log_deinit(&l);
}

Test(log, edns_size_do_bit_ipv6_and_tcp_are_shown)
{
	struct t_log l;
	t_log_init(&l, NULL, 0);
	struct t_query *q = log_query("example.org.", KNOT_RRTYPE_AAAA, 1232, true);
	t_answer(q, KNOT_RCODE_NOERROR, false, KNOT_RRTYPE_SOA);
	char *line = log_line(&l, q);
	char want[256];
	snprintf(want, sizeof(want),
	         "[INFO] 127.0.0.1:55225 - 14155 \"AAAA IN example.org. udp %u true 1232\" "
	         "NOERROR qr,aa,rd %zu ", q->req.qsize, q->req.answer->size);
	expect_line(line, want);
	free(line);

	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&q->src;
	memset(&q->src, 0, sizeof(q->src));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(5353);
	inet_pton(AF_INET6, "::1", &sin6->sin6_addr);
	q->req.proto = TERN_PROTO_TCP;
	line = log_line(&l, q);
	snprintf(want, sizeof(want),
	         "[INFO] [::1]:5353 - 14155 \"AAAA IN example.org. tcp %u true 65535\" "
	         "NOERROR qr,aa,rd %zu ", q->req.qsize, q->req.answer->size);
	expect_line(line, want);
	free(line);
	free(q);
	t_log_deinit(&l);
}

Test(log, rcode_flags_and_unknown_type_are_named_like_coredns)
{
	struct t_log l;
	t_log_init(&l, NULL, 0);
	struct t_query *q = log_query("example.org.", 65280, 0, false);
	knot_wire_clear_aa(q->req.answer->wire);
	knot_wire_set_rcode(q->req.answer->wire, KNOT_RCODE_NOTIMPL);
	knot_wire_set_ra(q->req.answer->wire);
	knot_wire_set_cd(q->req.answer->wire);
	q->req.truncated = true;
	char *line = log_line(&l, q);
	char want[256];
	snprintf(want, sizeof(want),
	         "[INFO] 127.0.0.1:55225 - 14155 \"TYPE65280 IN example.org. udp %u false 512\" "
	         "NOTIMP qr,tc,rd,ra,cd %zu ", q->req.qsize, q->req.answer->size);
	expect_line(line, want);
	free(line);
	free(q);
	t_log_deinit(&l);
}

Test(log, duration_counts_from_the_turn_start)
{
	struct t_log l;
	t_log_init(&l, NULL, 0);
	struct t_query *q = log_query("example.org.", KNOT_RRTYPE_A, 0, false);
	t_answer(q, KNOT_RCODE_NOERROR, true, 0);
	q->req.now_ms -= 1500;   /* the turn started 1.5 s before now */
	char *line = log_line(&l, q);
	const char *d = strrchr(line, ' ');
	cr_assert_not_null(d);
	cr_assert(strncmp(d, " 1.5", 4) == 0, "duration in: %s", line);
	free(line);
	free(q);
	t_log_deinit(&l);
}

/* One case of the class filter: which answers a class list lets through. */
struct class_case {
	const char *what;
	uint8_t rcode;
	bool with_a;
	uint16_t auth_type;
	bool success, denial, error;
};

static const struct class_case class_cases[] = {
	{ "answer", KNOT_RCODE_NOERROR, true, 0, .success = true },
	{ "referral", KNOT_RCODE_NOERROR, false, KNOT_RRTYPE_NS, .success = true },
	{ "nodata with SOA", KNOT_RCODE_NOERROR, false, KNOT_RRTYPE_SOA, .denial = true },
	{ "nodata bare", KNOT_RCODE_NOERROR, false, 0, .denial = true },
	{ "nxdomain", KNOT_RCODE_NXDOMAIN, false, KNOT_RRTYPE_SOA, .denial = true },
	{ "nxdomain bare", KNOT_RCODE_NXDOMAIN, false, 0, .denial = true },
	{ "servfail", KNOT_RCODE_SERVFAIL, false, 0, .error = true },
	{ "refused", KNOT_RCODE_REFUSED, false, 0, .error = true },
	{ "formerr", KNOT_RCODE_FORMERR, false, 0, .error = true },
	{ "notimp", KNOT_RCODE_NOTIMPL, false, 0, .error = true },
};

static void check_classes(char **classes, unsigned n, bool success, bool denial, bool error)
{
	struct t_log l;
	t_log_init(&l, classes, n);
	cr_assert_eq(l.ret, 0);
	for (size_t i = 0; i < sizeof(class_cases) / sizeof(class_cases[0]); i++) {
		const struct class_case *c = &class_cases[i];
		struct t_query *q = log_query("example.org.", KNOT_RRTYPE_A, 0, false);
		t_answer(q, c->rcode, c->with_a, c->auth_type);
		char *line = log_line(&l, q);
		bool want = (c->success && success) || (c->denial && denial) ||
		            (c->error && error);
		cr_assert_eq(line[0] != '\0', want, "%s with class[0] %s: logged=%d, want %d (%s)",
		             c->what, n ? classes[0] : "-", line[0] != '\0', want, line);
		free(line);
		free(q);
	}
	t_log_deinit(&l);
}

Test(log, classes_default_to_all)
{
	check_classes(NULL, 0, true, true, true);
	char *all[] = { "all" };
	check_classes(all, 1, true, true, true);
}

Test(log, class_filter_logs_only_the_chosen_classes)
{
	char *denial_error[] = { "denial", "error" };
	check_classes(denial_error, 2, false, true, true);
	char *success[] = { "success" };
	check_classes(success, 1, true, false, false);
	char *denial[] = { "denial" };
	check_classes(denial, 1, false, true, false);
	char *error[] = { "error" };
	check_classes(error, 1, false, false, true);
}

Test(log, unknown_class_is_a_config_error)
{
	struct t_log l;
	char *classes[] = { "denial", "failure" };
	t_log_init(&l, classes, 2);
	cr_assert_eq(l.ret, TERN_ECONFIG);
	cr_assert_eq(l.diag.nmsgs, 1);
	cr_assert(strstr(l.diag.msgs[0], "log.class[1]") != NULL, "%s", l.diag.msgs[0]);
	cr_assert(strstr(l.diag.msgs[0], "failure") != NULL, "%s", l.diag.msgs[0]);
	t_log_deinit(&l);
}

/* ---- the errors plugin ------------------------------------------------------------- */

static unsigned plugin_index(const char *name)
{
	for (size_t i = 0; i < tern_plugins_count; i++) {
		if (strcmp(tern_plugins[i]->name, name) == 0)
			return (unsigned)i;
	}
	cr_assert_fail("plugin %s is not registered", name);
	return 0;
}

static char *errors_output(struct t_query *q, unsigned times)
{
	struct tern_plugin_inst pi = { .plugin = &tern_plugin_errors, .plugin_id = 0 };
	struct t_capture c;
	capture_start(&c);
	for (unsigned i = 0; i < times; i++)
		tern_plugin_errors.answer(&q->req, &pi);
	return capture_stop(&c);
}

Test(errors, servfail_is_logged_in_coredns_format)
{
	struct t_query *q = log_query("Fail.Example.org.", KNOT_RRTYPE_AAAA, 0, false);
	knot_wire_set_rcode(q->req.answer->wire, KNOT_RCODE_SERVFAIL);
	q->req.answered = true;
	q->req.plugin_id = plugin_index("hosts");
	char *out = errors_output(q, 1);
	cr_assert_str_eq(out,
	                 "[ERROR] plugin/errors: 2 Fail.Example.org. AAAA: "
	                 "plugin/hosts answered SERVFAIL\n");
	free(out);
	free(q);
}

Test(errors, servfail_without_an_answering_plugin_says_so)
{
	struct t_query *q = log_query("example.org.", KNOT_RRTYPE_A, 0, false);
	knot_wire_set_rcode(q->req.answer->wire, KNOT_RCODE_SERVFAIL);
	char *out = errors_output(q, 1);
	cr_assert(strncmp(out, "[ERROR] plugin/errors: 2 example.org. A: no plugin answered",
	                  59) == 0, "%s", out);
	free(out);
	free(q);
}

Test(errors, other_rcodes_are_not_logged)
{
	static const uint8_t rcodes[] = {
		KNOT_RCODE_NOERROR, KNOT_RCODE_NXDOMAIN, KNOT_RCODE_REFUSED, KNOT_RCODE_FORMERR,
	};
	for (size_t i = 0; i < sizeof(rcodes); i++) {
		struct t_query *q = log_query("example.org.", KNOT_RRTYPE_A, 0, false);
		knot_wire_set_rcode(q->req.answer->wire, rcodes[i]);
		char *out = errors_output(q, 1);
		cr_assert_str_empty(out, "rcode %u: %s", rcodes[i], out);
		free(out);
		free(q);
	}
}

Test(errors, a_flood_of_servfails_is_rate_limited)
{
	struct t_query *q = log_query("example.org.", KNOT_RRTYPE_A, 0, false);
	knot_wire_set_rcode(q->req.answer->wire, KNOT_RCODE_SERVFAIL);
	char *out = errors_output(q, 100);
	unsigned lines = 0;
	for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	/* A few per second; the burst may straddle one second boundary. */
	cr_assert(lines >= 1 && lines <= 20, "%u lines", lines);
	free(out);
	free(q);
}
