/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection settings for the Kubernetes API (see client.h). The kubeconfig is read as
 * a libyaml document (it is small) and walked by key; relative file paths in it are
 * relative to the kubeconfig's own directory, as kubectl does. Inline *-data fields are
 * base64-decoded into memory and handed to curl as blobs, never written to disk.
 * Thread: the owner of the client.
 */
#include "kube/client.h"

#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"

#ifndef TERN_VERSION
#define TERN_VERSION "dev"
#endif

#define TOKEN_MAX (64 * 1024)

/* ---- small helpers ---------------------------------------------------------------- */

static int dup_str(char **dst, const char *s)
{
	free(*dst);
	*dst = NULL;
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : TERN_ENOMEM;
}

/* @p path as is when absolute, else relative to @p base_dir. */
static char *resolve(const char *base_dir, const char *path)
{
	char *out = NULL;
	if (path[0] == '/' || !base_dir)
		return strdup(path);
	if (asprintf(&out, "%s/%s", base_dir, path) < 0)
		return NULL;
	return out;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	size_t lead = strspn(s, " \t\r\n");
	if (lead)
		memmove(s, s + lead, n - lead + 1);
}

/* Read a whole small file; NULL with errno set on failure. */
static char *read_small_file(const char *path, struct stat *st_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st = { 0 };
	if (fstat(fd, &st) < 0 || st.st_size > TOKEN_MAX) {
		int err = st.st_size > TOKEN_MAX ? EFBIG : errno;
		close(fd);
		errno = err;
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return NULL;
	}
	size_t len = 0;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (st_out)
		*st_out = st;
	return buf;
}

int kube_base64_decode(const char *in, struct kube_blob *out)
{
	size_t n = strlen(in);
	unsigned char *buf = malloc(n / 4 * 3 + 4);
	if (!buf)
		return TERN_ENOMEM;
	uint32_t acc = 0;
	int bits = 0;
	size_t len = 0;
	for (const char *p = in; *p; p++) {
		int v;
		unsigned char ch = (unsigned char)*p;
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '+' || ch == '-')
			v = 62;
		else if (ch == '/' || ch == '_')
			v = 63;
		else if (ch == '=' || isspace(ch))
			continue;
		else {
			free(buf);
			return TERN_EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[len++] = (unsigned char)(acc >> bits);
		}
	}
	free(out->data);
	out->data = buf;
	out->len = len;
	return 0;
}

/* ---- token ------------------------------------------------------------------------ */

bool kube_client_refresh(struct kube_client *c)
{
	if (!c->token_file)
		return false;
	struct stat st;
	if (stat(c->token_file, &st) < 0) {
		if (c->token_size != -1)
			tern_warn("kubernetes: token file %s: %s (keeping the last token)",
			          c->token_file, strerror(errno));
		c->token_size = -1;
		return false;
	}
	if (c->token && st.st_mtim.tv_sec == c->token_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->token_mtime.tv_nsec && st.st_ino == c->token_ino &&
	    st.st_size == c->token_size)
		return false;
	char *tok = read_small_file(c->token_file, &st);
	if (!tok) {
		tern_warn("kubernetes: token file %s: %s (keeping the last token)", c->token_file,
		          strerror(errno));
		return false;
	}
	trim(tok);
	bool changed = !c->token || strcmp(tok, c->token) != 0;
	free(c->token);
	c->token = tok;
	c->token_mtime = st.st_mtim;
	c->token_ino = st.st_ino;
	c->token_size = st.st_size;
	if (changed)
		tern_info("kubernetes: read bearer token from %s", c->token_file);
	return changed;
}

/* ---- kubeconfig ------------------------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The entry of list @p list ("clusters", "users", "contexts") named @p name, or rather its
 * inner mapping under @p inner ("cluster", "user", "context"). */
static yaml_node_t *named(yaml_document_t *doc, const char *list, const char *inner,
                          const char *name)
{
	yaml_node_t *seq = map_get(doc, yaml_document_get_root_node(doc), list);
	if (!seq || seq->type != YAML_SEQUENCE_NODE || !name)
		return NULL;
	for (yaml_node_item_t *i = seq->data.sequence.items.start;
	     i < seq->data.sequence.items.top; i++) {
		yaml_node_t *e = yaml_document_get_node(doc, *i);
		const char *n = scalar(map_get(doc, e, "name"));
		if (n && strcmp(n, name) == 0)
			return map_get(doc, e, inner);
	}
	return NULL;
}

/* A file path or inline base64 data for one credential. */
static int kc_file_or_data(yaml_document_t *doc, yaml_node_t *map, const char *key,
                           const char *dir, char **file, struct kube_blob *blob)
{
	char data_key[64];
	snprintf(data_key, sizeof(data_key), "%s-data", key);
	const char *data = scalar(map_get(doc, map, data_key));
	if (data) {
		int rc = kube_base64_decode(data, blob);
		if (rc == TERN_EINVAL)
			tern_err("kubernetes: kubeconfig: %s is not base64", data_key);
		return rc == TERN_EINVAL ? TERN_ECONFIG : rc;
	}
	const char *path = scalar(map_get(doc, map, key));
	if (path) {
		free(*file);
		*file = resolve(dir, path);
		if (!*file)
			return TERN_ENOMEM;
	}
	return 0;
}

static int kc_apply(struct kube_client *c, yaml_document_t *doc, const char *path,
                    const char *want_ctx, const char *dir)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	const char *ctx_name = want_ctx ? want_ctx : scalar(map_get(doc, root, "current-context"));
	if (!ctx_name || !*ctx_name) {
		tern_err("kubernetes: kubeconfig %s: no context given and no current-context", path);
		return TERN_ECONFIG;
	}
	yaml_node_t *ctx = named(doc, "contexts", "context", ctx_name);
	if (!ctx) {
		tern_err("kubernetes: kubeconfig %s: no context \"%s\"", path, ctx_name);
		return TERN_ECONFIG;
	}
	const char *cl_name = scalar(map_get(doc, ctx, "cluster"));
	const char *user_name = scalar(map_get(doc, ctx, "user"));
	yaml_node_t *cl = named(doc, "clusters", "cluster", cl_name);
	const char *server = scalar(map_get(doc, cl, "server"));
	if (!cl || !server || !*server) {
		tern_err("kubernetes: kubeconfig %s: context \"%s\" has no cluster with a server",
		         path, ctx_name);
		return TERN_ECONFIG;
	}
	int rc = dup_str(&c->server, server);
	if (rc)
		return rc;
	const char *insecure = scalar(map_get(doc, cl, "insecure-skip-tls-verify"));
	c->insecure = insecure && strcmp(insecure, "true") == 0;
	rc = kc_file_or_data(doc, cl, "certificate-authority", dir, &c->ca_file, &c->ca);
	if (rc)
		return rc;

	yaml_node_t *user = named(doc, "users", "user", user_name);
	if (!user)
		return 0;  /* anonymous, or client identity from nowhere: the server decides */
	if ((rc = kc_file_or_data(doc, user, "client-certificate", dir, &c->cert_file, &c->cert)) ||
	    (rc = kc_file_or_data(doc, user, "client-key", dir, &c->key_file, &c->key)))
		return rc;
	const char *token = scalar(map_get(doc, user, "token"));
	const char *token_file = scalar(map_get(doc, user, "tokenFile"));
	if (token && *token) {
		if ((rc = dup_str(&c->token, token)))
			return rc;
	} else if (token_file && *token_file) {
		c->token_file = resolve(dir, token_file);
		if (!c->token_file)
			return TERN_ENOMEM;
		kube_client_refresh(c);
	}
	if ((rc = dup_str(&c->username, scalar(map_get(doc, user, "username")))) ||
	    (rc = dup_str(&c->password, scalar(map_get(doc, user, "password")))))
		return rc;
	if (map_get(doc, user, "exec") || map_get(doc, user, "auth-provider"))
		tern_warn("kubernetes: kubeconfig %s: user \"%s\": exec and auth-provider "
		          "plugins are not supported", path, user_name);
	return 0;
}

int kube_client_init_kubeconfig(struct kube_client *c, const char *path, const char *context)
{
	*c = (struct kube_client){ .token_size = -1 };
	FILE *f = fopen(path, "rb");
	if (!f) {
		tern_err("kubernetes: kubeconfig %s: %s", path, strerror(errno));
		return TERN_ECONFIG;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	int rc = TERN_ECONFIG;
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return TERN_ENOMEM;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		tern_err("kubernetes: kubeconfig %s: line %zu: %s", path,
		         parser.problem_mark.line + 1, parser.problem ? parser.problem : "invalid");
		goto out;
	}
	if (!yaml_document_get_root_node(&doc)) {
		tern_err("kubernetes: kubeconfig %s: empty", path);
	} else {
		char *copy = strdup(path);
		rc = copy ? kc_apply(c, &doc, path, context, dirname(copy)) : TERN_ENOMEM;
		free(copy);
	}
	yaml_document_delete(&doc);
out:
	yaml_parser_delete(&parser);
	fclose(f);
	if (rc)
		kube_client_deinit(c);
	return rc;
}

/* ---- in-cluster and explicit ------------------------------------------------------ */

int kube_client_init_incluster(struct kube_client *c, const char *sa_dir)
{
	*c = (struct kube_client){ .token_size = -1 };
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port) {
		tern_err("kubernetes: no kubeconfig or endpoint configured, and "
		         "KUBERNETES_SERVICE_HOST/PORT are not set (not running in a cluster?)");
		return TERN_ECONFIG;
	}
	bool v6 = strchr(host, ':') != NULL;
	if (asprintf(&c->server, v6 ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0 ||
	    asprintf(&c->token_file, "%s/token", sa_dir) < 0 ||
	    asprintf(&c->ca_file, "%s/ca.crt", sa_dir) < 0) {
		c->server = c->token_file = c->ca_file = NULL;
		kube_client_deinit(c);
		return TERN_ENOMEM;
	}
	kube_client_refresh(c);
	if (!c->token)
		tern_warn("kubernetes: no service account token in %s; requests are anonymous",
		          sa_dir);
	return 0;
}

int kube_client_init(struct kube_client *c, const struct tern_cluster_source_conf *conf)
{
	if (conf->kubeconfig)
		return kube_client_init_kubeconfig(c, conf->kubeconfig, conf->context);
	if (!conf->endpoint)
		return kube_client_init_incluster(c, KUBE_SERVICEACCOUNT_DIR);

	*c = (struct kube_client){ .token_size = -1 };
	int rc;
	if (strstr(conf->endpoint, "://"))
		rc = dup_str(&c->server, conf->endpoint);
	else
		rc = asprintf(&c->server, "https://%s", conf->endpoint) < 0 ? TERN_ENOMEM : 0;
	if (!rc)
		rc = dup_str(&c->cert_file, conf->tls_cert);
	if (!rc)
		rc = dup_str(&c->key_file, conf->tls_key);
	if (!rc)
		rc = dup_str(&c->ca_file, conf->tls_ca);
	if (rc) {
		kube_client_deinit(c);
		return rc;
	}
	size_t n = strlen(c->server);
	while (n > 0 && c->server[n - 1] == '/')
		c->server[--n] = '\0';
	return 0;
}

void kube_client_deinit(struct kube_client *c)
{
	free(c->server);
	free(c->token);
	free(c->token_file);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca.data);
	free(c->cert.data);
	free(c->key.data);
	free(c->username);
	free(c->password);
	*c = (struct kube_client){ .token_size = -1 };
}

/* ---- one request ------------------------------------------------------------------ */

static int set_blob(CURL *h, CURLoption opt, const struct kube_blob *b)
{
	struct curl_blob blob = { .data = b->data, .len = b->len, .flags = CURL_BLOB_COPY };
	return curl_easy_setopt(h, opt, &blob) == CURLE_OK ? 0 : TERN_ENOMEM;
}

int kube_client_setup(const struct kube_client *c, CURL *h, const char *path_query,
                      struct curl_slist **headers)
{
	char *url = NULL;
	struct curl_slist *hl = NULL, *tmp;
	*headers = NULL;
	if (asprintf(&url, "%s%s", c->server, path_query) < 0)
		return TERN_ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);  /* curl copies string options */

	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/*
	 * No CURLOPT_PIPEWAIT: with it, requests started while a long-lived HTTP/1.1 watch
	 * holds the only connection could wait for a multiplexing chance that never comes
	 * (seen: two watches never restarted after a cut). HTTP/2 connections are still
	 * shared when they exist (CURLMOPT_PIPELINING).
	 */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tern/" TERN_VERSION);

	if (c->ca.data) {
		if (set_blob(h, CURLOPT_CAINFO_BLOB, &c->ca))
			return TERN_ENOMEM;
	} else if (c->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	if (c->cert.data) {
		if (set_blob(h, CURLOPT_SSLCERT_BLOB, &c->cert))
			return TERN_ENOMEM;
	} else if (c->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
	}
	curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	if (c->key.data) {
		if (set_blob(h, CURLOPT_SSLKEY_BLOB, &c->key))
			return TERN_ENOMEM;
	} else if (c->key_file) {
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	}
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
	if (c->username) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
		curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
	}

	if (!(tmp = curl_slist_append(hl, "Accept: application/json")))
		goto nomem;
	hl = tmp;
	if (c->token && *c->token) {
		char *auth = NULL;
		if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0)
			goto nomem;
		tmp = curl_slist_append(hl, auth);
		free(auth);
		if (!tmp)
			goto nomem;
		hl = tmp;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	*headers = hl;
	return 0;
nomem:
	curl_slist_free_all(hl);
	return TERN_ENOMEM;
}
