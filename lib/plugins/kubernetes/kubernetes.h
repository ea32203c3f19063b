/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration of the kubernetes plugin (CoreDNS's kubernetes: Services, endpoints
 * and pods of a Kubernetes cluster as DNS records, per the Kubernetes DNS spec). The
 * struct mirrors the YAML node `kubernetes:` of a server block; libcyaml fills it
 * through tern_kubernetes_conf_fields, which lib/engine/conf.c wires in via
 * plugins.def, and the plugin's init hook checks it and fills defaults. Option names
 * are CoreDNS's; README.md next to this file documents each of them.
 * Thread: loader.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <cyaml/cyaml.h>

/** `pods:` mode (CoreDNS's `pods disabled|insecure|verified`). */
enum tern_kubernetes_pods {
	TERN_KUBERNETES_PODS_DISABLED = 0, /**< default: pod names are NXDOMAIN */
	TERN_KUBERNETES_PODS_INSECURE,     /**< echo the IP in the name (namespace must exist) */
	TERN_KUBERNETES_PODS_VERIFIED,     /**< only if such a pod exists (watches pods) */
};

/** `tls:` client credentials for `endpoint`. */
struct tern_kubernetes_tls_conf {
	char *cert;   /**< client certificate file (PEM) */
	char *key;    /**< its private key file (PEM) */
	char *ca;     /**< CA bundle that signs the API server's certificate */
};

/** `kubernetes:` as loaded by libcyaml (README.md documents every key). */
struct tern_kubernetes_conf {
	char **zones;                  /**< authoritative zones; none: the server block's */
	unsigned zones_count;
	char *endpoint;                /**< API server URL; NULL: in-cluster (or kubeconfig) */
	struct tern_kubernetes_tls_conf *tls;
	char *kubeconfig;              /**< kubeconfig file; wins over endpoint */
	char *context;                 /**< kubeconfig context; NULL: current-context */
	char **namespaces;             /**< expose only these namespaces */
	unsigned namespaces_count;
	char *namespace_labels;        /**< expose only namespaces matching this selector */
	char *labels;                  /**< expose only objects matching this selector */
	enum tern_kubernetes_pods pods;
	bool endpoint_pod_names;       /**< endpoint name = pod name when hostname is empty */
	uint32_t *ttl;                 /**< 0..3600; NULL: 5 */
	bool noendpoints;              /**< do not watch EndpointSlices */
	char **fallthrough;            /**< zones where NXDOMAIN passes on; "." = all */
	unsigned fallthrough_count;
	bool ignore_empty_service;     /**< NXDOMAIN for ClusterIP services with no endpoint */
	char *startup_timeout;         /**< duration; NULL: 5s */
};

/** The libcyaml mapping fields of struct tern_kubernetes_conf. */
extern const cyaml_schema_field_t tern_kubernetes_conf_fields[];
