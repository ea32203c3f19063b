/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming decoder for the Kubernetes API's JSON: list responses ({"metadata":
 * {"resourceVersion","continue"},"items":[...]}) and watch streams (one {"type",
 * "object"} event per line). Bytes are fed as libcurl delivers them into a yajl
 * callback parser; only the fields DNS needs are kept, in small buffers that are reused
 * from one item to the next, so memory grows with the largest single item, never with
 * the size of a response. Each item is handed to the caller's callback as soon as it is
 * complete (a list item at its closing brace, a watch event at the end of the event).
 *
 * Errors come in two sizes. A stream that is not JSON, is truncated, or has the wrong
 * shape at a field we read (a string where an object belongs) is broken: feed/finish
 * return TERN_EINVAL, kube_decode_error() says why, and nothing more is delivered. One
 * item that is well-formed JSON but unusable (no name, an address that is not an IP,
 * more entries than the API allows) is delivered with `valid` false so that the caller
 * can count it and still track the resourceVersion; the stream goes on.
 * Thread: one decoder belongs to one thread (a watcher, or a test).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/cluster/build.h"
#include "lib/cluster/model.h"

/** What a response is. */
enum kube_decode_mode {
	KUBE_DECODE_LIST = 0,   /**< one list object (a page of a list) */
	KUBE_DECODE_WATCH,      /**< a stream of watch events */
};

/** What happened to an item. List items arrive as KUBE_EVENT_ADDED. */
enum kube_event {
	KUBE_EVENT_ADDED = 0,
	KUBE_EVENT_MODIFIED,
	KUBE_EVENT_DELETED,
	KUBE_EVENT_BOOKMARK,    /**< only resource_version is meaningful */
	KUBE_EVENT_ERROR,       /**< a Status: status_code, reason, message */
};

/** One decoded item; every pointer is valid only during the callback. */
struct kube_item {
	enum kube_event event;
	enum tern_k8s_kind kind;           /**< the kind the decoder was created for */
	bool valid;                        /**< false: well-formed but unusable (see above) */
	const char *invalid_reason;        /**< why, when !valid */
	const char *resource_version;      /**< metadata.resourceVersion ("" if absent) */
	union {
		struct tern_k8s_service service;
		struct tern_k8s_slice slice;
		struct tern_k8s_pod pod;
		const char *namespace_name;
	};
	/** Pod only: phase Succeeded/Failed or a deletionTimestamp (treat as deleted). */
	bool pod_finished;
	/** KUBE_EVENT_ERROR only: the Status object. */
	long status_code;
	const char *reason;
	const char *message;
};

/**
 * Called for each complete item. @return 0 to go on, or anything else to stop the
 * stream: feed() then returns that value and the decoder delivers nothing more.
 */
typedef int (*kube_decode_item_fn)(void *ctx, const struct kube_item *item);

struct kube_decoder;

/** @return NULL when out of memory. */
struct kube_decoder *kube_decode_new(enum tern_k8s_kind kind, kube_decode_item_fn fn, void *ctx);
void kube_decode_free(struct kube_decoder *d);

/** Start a new response (forgets the previous one's state). @return 0 or TERN_ENOMEM. */
int kube_decode_begin(struct kube_decoder *d, enum kube_decode_mode mode);

/**
 * Feed the next bytes of the response, any split.
 * @return 0, TERN_EINVAL for a broken stream, or what the callback returned.
 */
int kube_decode_feed(struct kube_decoder *d, const void *buf, size_t len);

/**
 * The response ended. @return 0 if it was complete (a list: one whole object; a
 * watch: zero or more whole events), TERN_EINVAL if broken or truncated.
 */
int kube_decode_finish(struct kube_decoder *d);

/** Why the stream broke ("" when it did not). */
const char *kube_decode_error(const struct kube_decoder *d);

/** List mode, after finish: metadata.resourceVersion and metadata.continue ("" if absent). */
const char *kube_decode_list_rv(const struct kube_decoder *d);
const char *kube_decode_list_continue(const struct kube_decoder *d);

/** Bytes the decoder holds now (buffers reused between items), for tests and metrics. */
size_t kube_decode_footprint(const struct kube_decoder *d);
