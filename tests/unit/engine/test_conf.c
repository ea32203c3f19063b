/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/engine/conf.c and lib/engine/diag.c: a good config loads with
 * its derived fields filled, and every bad config reports its exact message with
 * file:line:column. Plugin options are kept out (only `errors: {}` and `log: {}`),
 * since each plugin owns and may change its schema.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "lib/core/errcode.h"
#include "lib/core/parse.h"
#include "lib/engine/conf.h"
#include "lib/engine/view.h"
#include "lib/engine/diag.h"

static struct tern_diag diag;
static struct tern_conf *conf;

static void setup(void)
{
	tern_diag_init(&diag, "t.yaml");
	conf = NULL;
}

static void teardown(void)
{
	tern_conf_free(conf);
	tern_diag_deinit(&diag);
}

TestSuite(conf, .init = setup, .fini = teardown);
TestSuite(diag, .init = setup, .fini = teardown);

static int load(const char *yaml)
{
	return tern_conf_load_string(yaml, strlen(yaml), "/etc/tern", &diag, &conf);
}

/* @p want with "{plugins}" replaced by the registry's names ("errors, log, ..."). */
static const char *with_plugins(const char *want, char *buf, size_t len)
{
	const char *at = strstr(want, "{plugins}");
	if (!at)
		return want;
	size_t used = (size_t)snprintf(buf, len, "%.*s", (int)(at - want), want);
	for (size_t p = 0; p < tern_plugins_count && used < len; p++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", p ? ", " : "",
		                         tern_plugins[p]->name);
	if (used < len)
		snprintf(buf + used, len - used, "%s", at + strlen("{plugins}"));
	return buf;
}

/* Assert that loading failed with exactly @p want (NULL-terminated), in order. */
static void expect_errors(const char *yaml, const char *const *want)
{
	int ret = load(yaml);
	cr_assert_eq(ret, TERN_ECONFIG, "load returned %d", ret);
	cr_assert_null(conf, "no config on failure");
	size_t n = 0;
	while (want[n] != NULL)
		n++;
	for (size_t i = 0; i < diag.nmsgs; i++)
		cr_log_info("got: %s", diag.msgs[i]);
	cr_assert_eq(diag.nmsgs, n, "%zu messages, want %zu", diag.nmsgs, n);
	for (size_t i = 0; i < n; i++) {
		char buf[512];
		cr_assert_str_eq(diag.msgs[i], with_plugins(want[i], buf, sizeof(buf)),
		                 "message %zu", i);
	}
}

#define EXPECT_ERRORS(yaml, ...) \
	expect_errors(yaml, (const char *const[]){ __VA_ARGS__, NULL })

static const char good[] =
	"workers: 3\n"
	"metrics: {listen: \"127.0.0.1\"}\n"
	"health: {}\n"
	"ready: {listen: \"[::1]:8282\"}\n"
	"servers:\n"
	"  - zones: [Example.ORG, \"cluster.local.\"]\n"
	"    listen: [\"127.0.0.1:5300\", \"[::1]\"]\n"
	"    plugins:\n"
	"      errors: {}\n"
	"      log: {}\n"
	"  - zones: [\".\"]\n"
	"    listen: [\"127.0.0.1:5300\"]\n"
	"    plugins: {errors: {}}\n";

Test(conf, good_config_loads_with_normalised_zones_and_parsed_addrs)
{
	cr_assert_eq(load(good), 0);
	cr_assert_eq(diag.nmsgs, 0);
	cr_assert_not_null(conf);
	cr_assert_eq(conf->nworkers, 3);
	cr_assert_eq(conf->servers_count, 2);
	const struct tern_server_conf *s = &conf->servers[0];
	cr_assert_eq(s->zones_count, 2);
	cr_assert_str_eq(s->zones[0], "example.org.");
	cr_assert_str_eq(s->zones[1], "cluster.local.");
	cr_assert_str_eq(conf->servers[1].zones[0], ".");
	char buf[TERN_ADDR_STRLEN];
	cr_assert_eq(s->listen_count, 2);
	tern_addr_str(&s->addrs[0], buf, sizeof(buf));
	cr_assert_str_eq(buf, "127.0.0.1:5300");
	tern_addr_str(&s->addrs[1], buf, sizeof(buf));
	cr_assert_str_eq(buf, "[::1]:53");
	cr_assert_not_null(s->plugins->errors);
	cr_assert_not_null(s->plugins->log);
	cr_assert_null(conf->servers[1].plugins->log);
	cr_assert_str_eq(conf->dir, "/etc/tern");
	cr_assert_null(conf->path);
}

Test(conf, http_endpoints_get_default_ports_and_lameduck)
{
	cr_assert_eq(load(good), 0);
	char buf[TERN_ADDR_STRLEN];
	tern_addr_str(&conf->metrics->addr, buf, sizeof(buf));
	cr_assert_str_eq(buf, "127.0.0.1:9153");
	tern_addr_str(&conf->health->addr, buf, sizeof(buf));
	cr_assert_str_eq(buf, "0.0.0.0:8080");
	cr_assert_eq(conf->health->lameduck_ms, 5000);
	tern_addr_str(&conf->ready->addr, buf, sizeof(buf));
	cr_assert_str_eq(buf, "[::1]:8282");
	/* listen strings are canonical, defaults included, so configs compare as strings */
	cr_assert_str_eq(conf->metrics->listen, "127.0.0.1:9153");
	cr_assert_str_eq(conf->health->listen, "0.0.0.0:8080");
	cr_assert_str_eq(conf->ready->listen, "[::1]:8282");
}

Test(conf, lameduck_duration_is_parsed)
{
	cr_assert_eq(load("health: {listen: \"127.0.0.1\", lameduck: 1m30s}\n"
	                  "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n"),
	             0);
	cr_assert_eq(conf->health->lameduck_ms, 90000);
	char buf[TERN_ADDR_STRLEN];
	tern_addr_str(&conf->health->addr, buf, sizeof(buf));
	cr_assert_str_eq(buf, "127.0.0.1:8080");
}

Test(conf, workers_auto_and_absent_mean_online_cpus)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cr_assert_eq(load("workers: auto\n"
	                  "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n"),
	             0);
	cr_assert_eq(conf->nworkers, (unsigned)cpus);
	tern_conf_free(conf);
	conf = NULL;
	cr_assert_eq(load("servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n"),
	             0);
	cr_assert_eq(conf->nworkers, (unsigned)cpus);
}

Test(conf, load_file_sets_absolute_path_and_dir)
{
	char tmpl[] = "/tmp/tern-conf-XXXXXX";
	cr_assert_not_null(mkdtemp(tmpl));
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/tern.yaml", tmpl);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(good, f);
	fclose(f);

	int ret = tern_conf_load_file(file, &diag, &conf);
	unlink(file);
	rmdir(tmpl);
	cr_assert_eq(ret, 0);
	cr_assert_str_eq(conf->path, file);
	cr_assert_str_eq(conf->dir, tmpl);
}

Test(conf, missing_file_is_reported)
{
	cr_assert_eq(tern_conf_load_file("/nonexistent/tern.yaml", &diag, &conf), TERN_ECONFIG);
	cr_assert_eq(diag.nmsgs, 1);
	cr_assert_str_eq(diag.msgs[0], "/nonexistent/tern.yaml: cannot open (No such file or directory)");
}

Test(conf, hot_answers_is_checked)
{
	EXPECT_ERRORS("hot_answers: 99999999\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:1:14: hot_answers: must be 0..4194304, got 99999999");
}

Test(conf, unknown_top_level_key_is_rejected)
{
	EXPECT_ERRORS("workers: 2\n"
	              "wrokers: 3\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:2:1: wrokers: unknown key (expected one of: workers, hot_answers, "
	              "metrics, health, ready, servers)");
}

Test(conf, unknown_plugin_name_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: [\"127.0.0.1\"]\n"
	              "    plugins:\n"
	              "      log: {}\n"
	              "      nosuchplugin: {}\n",
	              "t.yaml:6:7: servers[0].plugins.nosuchplugin: unknown plugin (expected one "
	              "of: {plugins})");
}

Test(conf, wrong_type_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: example.org\n"
	              "    listen: [\"127.0.0.1\"]\n"
	              "    plugins: [log]\n",
	              "t.yaml:2:12: servers[0].zones: expected a sequence, got \"example.org\"",
	              "t.yaml:4:14: servers[0].plugins: expected a mapping, got a sequence");
}

Test(conf, plugin_without_value_gets_a_hint)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: [\"127.0.0.1\"]\n"
	              "    plugins:\n"
	              "      errors:\n"
	              "      log: {}\n",
	              "t.yaml:5:14: servers[0].plugins.errors: expected a mapping, got an empty "
	              "value (write {} for no options)");
}

Test(conf, duplicate_key_is_rejected)
{
	EXPECT_ERRORS("workers: 2\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n"
	              "workers: 3\n",
	              "t.yaml:3:1: workers: duplicate key");
}

/* The walk leaves aliases to libcyaml, whose own message and position come through. */
Test(conf, type_error_behind_an_alias_comes_from_libcyaml_with_path_and_position)
{
	EXPECT_ERRORS("metrics: &m {listen: \"127.0.0.1\"}\n"
	              "servers:\n"
	              "  - zones: [a.]\n"
	              "    plugins: {log: {}}\n"
	              "  - zones: [b.]\n"
	              "    listen: [\"127.0.0.1\", *m]\n",
	              "t.yaml:1:10: servers[1].listen[1]: Expecting STRING, got event: "
	              "MAPPING_START");
}

Test(conf, yaml_syntax_error_is_reported_with_position)
{
	EXPECT_ERRORS("servers: [\n",
	              "t.yaml:2:1: YAML syntax error: did not find expected node content while "
	              "parsing a flow node");
}

Test(conf, second_document_is_rejected)
{
	EXPECT_ERRORS("servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n"
	              "---\n"
	              "workers: 2\n",
	              "t.yaml:2:1: only one YAML document is allowed");
}

Test(conf, bad_listen_address_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: [\"127.0.0.1:5300\", \"localhost:53\", \"127.0.0.1:70000\"]\n"
	              "    plugins: {log: {}}\n",
	              "t.yaml:3:32: servers[0].listen[1]: invalid address \"localhost:53\" "
	              "(expected IP, IP:PORT or [IPv6]:PORT)",
	              "t.yaml:3:48: servers[0].listen[2]: port out of range in \"127.0.0.1:70000\" "
	              "(1..65535)");
}

Test(conf, bad_http_listen_is_rejected)
{
	EXPECT_ERRORS("metrics:\n"
	              "  listen: \"metrics.local:9153\"\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:2:11: metrics.listen: invalid address \"metrics.local:9153\" "
	              "(expected IP, IP:PORT or [IPv6]:PORT)");
}

Test(conf, workers_zero_is_rejected)
{
	EXPECT_ERRORS("workers: 0\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:1:10: workers: must be \"auto\" or 1..1024, got \"0\"");
}

Test(conf, workers_lots_is_rejected)
{
	EXPECT_ERRORS("workers: \"lots\"\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:1:10: workers: must be \"auto\" or 1..1024, got \"lots\"");
}

Test(conf, empty_servers_is_rejected)
{
	EXPECT_ERRORS("workers: 2\nservers: []\n",
	              "t.yaml:2:10: servers: at least one server block is required");
}

Test(conf, absent_servers_is_rejected)
{
	EXPECT_ERRORS("workers: 2\n",
	              "t.yaml:1:1: servers: at least one server block is required");
}

Test(conf, empty_document_is_rejected_without_position)
{
	EXPECT_ERRORS("", "t.yaml: servers: at least one server block is required");
}

Test(conf, zone_missing_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - listen: [\"127.0.0.1\"]\n"
	              "    plugins: {log: {}}\n",
	              "t.yaml:2:5: servers[0].zones: at least one zone is required");
}

Test(conf, listen_and_plugins_missing_are_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: []\n"
	              "    plugins: {}\n",
	              "t.yaml:3:13: servers[0].listen: at least one listen address is required",
	              "t.yaml:4:14: servers[0].plugins: at least one plugin is required");
}

Test(conf, invalid_zone_name_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [a.., \"b c.\"]\n"
	              "    listen: [\"127.0.0.1\"]\n"
	              "    plugins: {log: {}}\n",
	              "t.yaml:2:13: servers[0].zones[0]: invalid domain name \"a..\"",
	              "t.yaml:2:18: servers[0].zones[1]: invalid domain name \"b c.\"");
}

Test(conf, bad_duration_is_rejected)
{
	EXPECT_ERRORS("health:\n"
	              "  lameduck: 5 seconds\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:2:13: health.lameduck: invalid duration \"5 seconds\" "
	              "(e.g. 500ms, 5s, 1m30s)");
}

Test(conf, lameduck_over_an_hour_is_rejected)
{
	EXPECT_ERRORS("health: {lameduck: 61m}\n"
	              "servers: [{zones: [a.], listen: [\"127.0.0.1\"], plugins: {log: {}}}]\n",
	              "t.yaml:1:20: health.lameduck: \"61m\" is too long (at most 1h)");
}

Test(conf, duplicate_zone_on_same_listen_is_rejected)
{
	EXPECT_ERRORS("servers:\n"
	              "  - zones: [example.org.]\n"
	              "    listen: [\"127.0.0.1:5300\"]\n"
	              "    plugins: {log: {}}\n"
	              "  - zones: [other.org, Example.Org]\n"
	              "    listen: [\"127.0.0.2:5300\", \"127.0.0.1:5300\"]\n"
	              "    plugins: {errors: {}}\n",
	              "t.yaml:5:24: servers[1].zones[1]: zone example.org. on 127.0.0.1:5300 "
	              "already served by servers[0]");
}

Test(conf, same_zone_on_different_listens_is_fine)
{
	cr_assert_eq(load("servers:\n"
	                  "  - zones: [example.org.]\n"
	                  "    listen: [\"127.0.0.1:5300\"]\n"
	                  "    plugins: {log: {}}\n"
	                  "  - zones: [example.org.]\n"
	                  "    listen: [\"127.0.0.1:5301\"]\n"
	                  "    plugins: {log: {}}\n"), 0);
	cr_assert_eq(diag.nmsgs, 0);
}

Test(conf, multiple_errors_are_reported_together)
{
	EXPECT_ERRORS("workers: 2000\n"
	              "health: {lameduck: soon}\n"
	              "servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: [\"1.2.3.4:0\"]\n"
	              "    plugins: {log: {}}\n"
	              "  - zones: []\n"
	              "    listen: [\"::1\"]\n"
	              "    plugins: {errors: {}}\n",
	              "t.yaml:1:10: workers: must be \"auto\" or 1..1024, got \"2000\"",
	              "t.yaml:2:20: health.lameduck: invalid duration \"soon\" "
	              "(e.g. 500ms, 5s, 1m30s)",
	              "t.yaml:5:14: servers[0].listen[0]: invalid address \"1.2.3.4:0\" "
	              "(expected IP, IP:PORT or [IPv6]:PORT)",
	              "t.yaml:7:12: servers[1].zones: at least one zone is required");
}

Test(conf, multiple_structural_errors_are_reported_together)
{
	EXPECT_ERRORS("wokers: 2\n"
	              "servers:\n"
	              "  - zones: [a.]\n"
	              "    listen: \"127.0.0.1\"\n"
	              "    plugins: {log: {}, cachez: {}}\n"
	              "    extra: 1\n",
	              "t.yaml:1:1: wokers: unknown key (expected one of: workers, hot_answers, "
	              "metrics, health, ready, servers)",
	              "t.yaml:4:13: servers[0].listen: expected a sequence, got \"127.0.0.1\"",
	              "t.yaml:5:24: servers[0].plugins.cachez: unknown plugin (expected one of: "
	              "{plugins})",
	              "t.yaml:6:5: servers[0].extra: unknown key (expected one of: zones, listen, "
	              "plugins)");
}

Test(diag, error_uses_position_of_longest_known_prefix)
{
	cr_assert_eq(tern_diag_add_pos(&diag, "", 1, 1), 0);
	cr_assert_eq(tern_diag_add_pos(&diag, "servers", 2, 3), 0);
	cr_assert_eq(tern_diag_add_pos(&diag, "servers[0]", 3, 5), 0);
	cr_assert_eq(tern_diag_add_pos(&diag, "servers[0].plugins.file", 7, 13), 0);
	tern_diag_set_prefix(&diag, "servers[%u].plugins.%s", 0, "file");
	tern_diag_error(&diag, "path", "cannot open %s", "db.example");
	tern_diag_error(&diag, "", "bad");
	tern_diag_set_prefix(&diag, "servers[%u]", 0);
	tern_diag_error(&diag, "listen[2]", "bad address");
	tern_diag_set_prefix(&diag, "%s", "");
	tern_diag_error(&diag, "workers", "too many");
	cr_assert_eq(diag.nmsgs, 4);
	cr_assert_str_eq(diag.msgs[0],
	                 "t.yaml:7:13: servers[0].plugins.file.path: cannot open db.example");
	cr_assert_str_eq(diag.msgs[1], "t.yaml:7:13: servers[0].plugins.file: bad");
	cr_assert_str_eq(diag.msgs[2], "t.yaml:3:5: servers[0].listen[2]: bad address");
	cr_assert_str_eq(diag.msgs[3], "t.yaml:1:1: workers: too many");
	cr_assert(tern_diag_failed(&diag));
}

Test(diag, error_without_positions_has_file_and_path_only)
{
	cr_assert_not(tern_diag_failed(&diag));
	tern_diag_set_prefix(&diag, "servers[%u]", 1);
	tern_diag_error(&diag, "[0]", "odd key");
	tern_diag_raw(&diag, "%s:%u:%u: %s", "other.yaml", 4, 2, "as given");
	cr_assert_eq(diag.nmsgs, 2);
	cr_assert_str_eq(diag.msgs[0], "t.yaml: servers[1][0]: odd key");
	cr_assert_str_eq(diag.msgs[1], "other.yaml:4:2: as given");
}
