/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The slim Kubernetes objects Tern keeps: only the fields DNS needs, decoded from the
 * API's JSON by kube/decode.c (or built directly by tests) and handed to the builder
 * (build.h), which copies what it keeps. All strings are NUL-terminated and borrowed
 * for the duration of the call that receives the object.
 * Thread: watcher (or a test).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define TERN_K8S_NAME_MAX 253

/** An IPv4 or IPv6 address. */
struct tern_ip {
	uint8_t family;      /**< AF_INET or AF_INET6 */
	uint8_t addr[16];    /**< 4 or 16 bytes used */
};

enum tern_svc_kind {
	TERN_SVC_CLUSTER_IP = 0,  /**< ClusterIP, NodePort, LoadBalancer with a cluster IP */
	TERN_SVC_HEADLESS,        /**< clusterIP: None */
	TERN_SVC_EXTERNAL_NAME,   /**< type: ExternalName */
};

struct tern_k8s_port {
	const char *name;       /**< "" when unnamed */
	const char *protocol;   /**< "TCP", "UDP" or "SCTP" as in the API */
	uint16_t port;
};

/** v1 Service. */
struct tern_k8s_service {
	const char *ns;
	const char *name;
	enum tern_svc_kind kind;
	struct tern_ip cluster_ips[2];     /**< spec.clusterIPs (1 or 2 families) */
	unsigned ncluster_ips;
	const char *external_name;         /**< spec.externalName for ExternalName */
	const struct tern_k8s_port *ports;
	unsigned nports;
};

/** One endpoint of an EndpointSlice. */
struct tern_k8s_endpoint {
	const struct tern_ip *addrs;
	unsigned naddrs;
	const char *hostname;              /**< NULL when absent */
	const char *pod_name;              /**< targetRef.name when kind Pod, else NULL */
	bool ready;                        /**< conditions.ready true or absent */
};

/** discovery.k8s.io/v1 EndpointSlice. */
struct tern_k8s_slice {
	const char *ns;
	const char *name;
	const char *service;               /**< label kubernetes.io/service-name ("" if none) */
	const struct tern_k8s_endpoint *endpoints;
	unsigned nendpoints;
	const struct tern_k8s_port *ports;
	unsigned nports;
	double trigger_time;               /**< last-change-trigger-time annotation, unix s; 0 */
};

/** v1 Pod (only with `pods: verified`). */
struct tern_k8s_pod {
	const char *ns;
	const char *name;
	const struct tern_ip *ips;         /**< status.podIPs */
	unsigned nips;
};
