/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of ternd, served by libmicrohttpd: /metrics (Prometheus text from
 * lib/core/stats.h plus coredns_plugin_enabled from the current view), /health
 * (liveness, CoreDNS's health plugin) and /ready (readiness, CoreDNS's ready plugin).
 * Each endpoint has its own address in the config; endpoints that share an address
 * share one daemon. Every daemon runs its own internal epoll thread; those threads are
 * QSBR readers that stay offline except while they read the view.
 * Thread: http_start/http_stop/http_set_draining from main; handlers on MHD threads.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "lib/engine/conf.h"

/**
 * Start the endpoints configured in @p conf (metrics, health, ready; each optional,
 * NULL = off). The addresses are copied: @p conf is borrowed for the call only.
 * @return 0, or a negative TERN_E* code (nothing is left running on failure)
 */
int http_start(const struct tern_conf *conf);

/**
 * Lameduck switch for shutdown: while on, /ready answers 503 "draining" so that
 * Kubernetes stops routing to this pod, and /health still answers 200 "OK".
 */
void http_set_draining(bool on);

/** Stop every endpoint and wait for their threads. Safe to call when none runs. */
void http_stop(void);

/**
 * Also write what @p fn renders into every /metrics scrape (daemon-owned counters
 * such as the io layer's). Set before http_start; @p fn runs on the HTTP thread and
 * must only read what stays valid until http_stop.
 */
void http_set_extra_metrics(void (*fn)(FILE *out));
