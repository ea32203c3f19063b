/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How to reach one Kubernetes API server with libcurl: the server URL and credentials
 * from an explicit endpoint (+ TLS files), a kubeconfig file (libyaml: clusters, users,
 * contexts; file paths or inline base64 -data, bearer token or tokenFile, basic auth),
 * or the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT, token and ca.crt,
 * the token re-read when its file changes). kube_client_setup() prepares one curl easy
 * handle for one request: URL, TLS, headers, HTTP/2 over TLS when the server offers it
 * (keep-alive HTTP/1.1 otherwise), connect timeout and TCP keep-alive.
 * Thread: a client belongs to one watcher thread (init may run on the loader).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <curl/curl.h>

#include "lib/cluster/source.h"

#define KUBE_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/** Bytes decoded from a kubeconfig *-data field. */
struct kube_blob {
	void *data;
	size_t len;
};

struct kube_client {
	char *server;               /**< "https://host:port", no trailing '/' */
	char *token;                /**< bearer token, NULL for none */
	char *token_file;           /**< re-read when it changes; NULL for none */
	struct timespec token_mtime;
	ino_t token_ino;
	off_t token_size;
	char *ca_file, *cert_file, *key_file;
	struct kube_blob ca, cert, key;
	char *username, *password;  /**< basic auth (kubeconfig) */
	bool insecure;              /**< kubeconfig insecure-skip-tls-verify */
};

/**
 * Fill @p c from @p conf: kubeconfig if set, else endpoint if set, else in-cluster.
 * @return 0, TERN_ECONFIG (logged with the reason) or TERN_ENOMEM.
 */
int kube_client_init(struct kube_client *c, const struct tern_cluster_source_conf *conf);

/** From a kubeconfig file; @p context NULL means its current-context. */
int kube_client_init_kubeconfig(struct kube_client *c, const char *path, const char *context);

/** In-cluster: the environment's service host/port and @p sa_dir's token and ca.crt. */
int kube_client_init_incluster(struct kube_client *c, const char *sa_dir);

void kube_client_deinit(struct kube_client *c);

/** Re-read the token file if it changed since the last read. @return true if it did. */
bool kube_client_refresh(struct kube_client *c);

/**
 * Prepare @p h (fresh or reset) for GET @p path_query (starts with '/'). The header list
 * is returned in @p headers; the caller frees it (curl_slist_free_all) once the transfer
 * is done. @return 0 or TERN_ENOMEM.
 */
int kube_client_setup(const struct kube_client *c, CURL *h, const char *path_query,
                      struct curl_slist **headers);

/** Decode base64 (standard alphabet, padding optional, whitespace ignored). */
int kube_base64_decode(const char *in, struct kube_blob *out);
