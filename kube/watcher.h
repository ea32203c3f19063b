/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One watcher thread per cluster source. It lists, then watches, Services,
 * EndpointSlices (unless noendpoints), Namespaces and Pods (pods: verified) through one
 * curl multi handle, so all streams of a source run in this one thread: paginated lists
 * (limit/continue), watches from the last resourceVersion with bookmarks, resume after
 * a cut, relist on 410 Gone, exponential backoff with jitter. Decoded objects go into
 * a builder (lib/cluster/build.h); changes are published in the loop turn that applied
 * them (at most one publish per ~2 ms, see watcher.c), and as soon as every kind has
 * been listed the first time. An unreachable or broken
 * API never removes data: only a complete relist does.
 * The thread is registered with RCU and stays offline: it only publishes.
 * Thread: start/stop on the loader; the rest on the watcher's own thread.
 */
#pragma once

#include "lib/cluster/source.h"

struct kube_watcher;

/**
 * Connect settings from @p src->conf are checked here (a bad kubeconfig fails now),
 * then the thread starts. @return 0, TERN_ECONFIG or TERN_ENOMEM.
 */
int kube_watcher_start(struct tern_cluster_source *src, struct kube_watcher **out);

/** Ask the thread to stop, wake it, join it and free it. NULL is a no-op. */
void kube_watcher_stop(struct kube_watcher *w);
