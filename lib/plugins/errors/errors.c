/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The errors plugin: its answer hook (worker thread, after every plugin below it)
 * writes
 *   [ERROR] plugin/errors: 2 example.org. A: <reason>
 * to stderr when the final RCODE is SERVFAIL, as CoreDNS's errors plugin does, at most
 * a few lines a second across all workers (tern_log_ratelimited). The line is built in
 * a stack buffer and written with one write(2); no allocation, no lock. Tern's plugins
 * return a verdict rather than an error value, so the reason names the plugin that
 * produced the SERVFAIL, or says that none answered. No instance state.
 */
#include "lib/plugins/errors/errors.h"

#include <stdio.h>
#include <unistd.h>
#include <libknot/libknot.h>

#include "lib/core/log.h"
#include "lib/engine/plugin.h"
#include "lib/engine/req.h"
#include "lib/engine/view.h"

const cyaml_schema_field_t tern_errors_conf_fields[] = {
	CYAML_FIELD_END
};

static void errors_answer(struct tern_req *req, const struct tern_plugin_inst *pi)
{
	static unsigned bucket_sec, bucket_count;
	(void)pi;
	if (req->answer == NULL || knot_wire_get_rcode(req->answer->wire) != KNOT_RCODE_SERVFAIL)
		return;
	if (!tern_log_ratelimited(&bucket_sec, &bucket_count))
		return;

	char name[KNOT_DNAME_TXT_MAXLEN + 1], type[32], reason[96];
	const knot_dname_t *qname = req->query != NULL ? knot_pkt_wire_qname(req->query) : NULL;
	if (qname == NULL)
		qname = req->qname;
	if (qname == NULL || knot_dname_to_str(name, qname, sizeof(name)) == NULL)
		snprintf(name, sizeof(name), ".");
	if (knot_rrtype_to_string(req->qtype, type, sizeof(type)) < 0)
		snprintf(type, sizeof(type), "TYPE%u", req->qtype);
	if (req->answered && req->plugin_id < tern_plugins_count)
		snprintf(reason, sizeof(reason), "plugin/%s answered SERVFAIL",
		         tern_plugins[req->plugin_id]->name);
	else
		snprintf(reason, sizeof(reason),
		         "no plugin answered (a plugin failed or the chain ended)");

	char line[KNOT_DNAME_TXT_MAXLEN + 256];
	int n = snprintf(line, sizeof(line), "[ERROR] plugin/errors: %u %s %s: %s\n",
	                 KNOT_RCODE_SERVFAIL, name, type, reason);
	if (n <= 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

TERN_PLUGIN_DEFINE(errors,
	.hot = TERN_HOT_SKIP,
	.answer = errors_answer);
