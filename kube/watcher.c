/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watcher thread (watcher.h) and the daemon-facing kube_sync/kube_stop_all
 * (kube.h). Each watched kind is a stream with one curl easy handle that is either
 * waiting (backoff, or nothing to do yet), listing a page, or watching; the thread
 * loops on curl_multi_poll with a short timeout, so that one loop also starts due
 * requests, publishes changes (PUBLISH_GAP_US apart at least), frees the snapshots
 * retired by earlier publishes, and notices a stop request (which also wakes
 * the poll). Decoded items are applied to the builder from curl's write callback as
 * they complete. A list that starts from scratch is bracketed by relist_begin/_end, so
 * objects that vanished are removed only when a whole list has been read.
 * Thread: the watcher's own, except start/stop and kube_* (loader).
 */
#include "kube/watcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "kube/client.h"
#include "kube/decode.h"
#include "kube/kube.h"
#include "lib/cluster/build.h"
#include "lib/core/clock.h"
#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/rcu.h"

#define LIST_LIMIT         500
#define LIST_TIMEOUT_S     120
#define WATCH_TIMEOUT_S    300     /* plus up to as much again of jitter, as client-go */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     30000
/*
 * Publishing: changes are published in the loop turn that applied them (every byte
 * curl had read by then is applied first, so one burst makes one snapshot), but at
 * most once per PUBLISH_GAP_US, or per PUBLISH_DUTY times the CPU time of the last
 * publish if that is longer (a large snapshot rebuilt while a cluster is still being
 * listed after startup_timeout). CPU time, not wall time: a publish preempted on a busy
 * node must not hold the next change back for ten times the preemption. A change thus
 * waits at most about one gap plus one publish, whatever the event rate, and
 * publishing takes at most ~1/PUBLISH_DUTY of the thread's CPU.
 */
#define PUBLISH_GAP_US     2000
#define PUBLISH_DUTY       10
#define POLL_MAX_MS        100
#define ERRBODY_MAX        200

enum stream_state {
	S_LIST = 0,    /* list (next page, or from scratch) when due */
	S_WATCH,       /* watch from rv when due */
};

struct stream {
	struct kube_watcher *w;
	enum tern_k8s_kind kind;
	const char *what;          /* "services", for logs */
	const char *path;
	const char *label_selector;
	const char *field_selector;
	enum stream_state state;
	bool busy;                 /* a transfer is in flight */
	uint64_t due_ms;           /* next request when !busy */
	unsigned backoff_ms;
	bool failing;              /* the last attempt failed (log recovery once) */

	CURL *h;
	struct curl_slist *headers;
	struct kube_decoder *dec;
	char rv[128];              /* resume point: the list's, then each event's */
	char *cont;                /* list continue token; NULL: the next list starts over */
	bool listed;               /* one full list done since start */
	bool relisting;            /* relist_begin called, relist_end not yet */

	/* The transfer in flight. */
	uint64_t started_ms;
	int feed_rc;               /* TERN_EINVAL: decoder; positive: ERROR event or apply */
	bool gone;                 /* ERROR event with 410 */
	bool error_event;          /* ERROR event, another code */
	unsigned events;
	char errbody[ERRBODY_MAX + 1];
	size_t errbody_len;
};

struct kube_watcher {
	struct tern_cluster_source *src;
	pthread_t thread;
	atomic_bool stop;
	CURLM *multi;
	struct kube_client client;
	struct tern_cluster_builder *b;
	struct stream streams[TERN_K8S_KIND_COUNT];
	unsigned nstreams;
	bool synced;
	uint64_t start_ms;
	bool dirty;                /* changes applied since the last publish */
	uint64_t next_publish_us;  /* the earliest time of the next publish */
	uint64_t rng;
};

#define STAT_ADD(w, field) __atomic_fetch_add(&(w)->src->stats.field, 1, __ATOMIC_RELAXED)

static uint64_t rnd(struct kube_watcher *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* ---- scheduling ------------------------------------------------------------------- */

static void retry_later(struct stream *s)
{
	uint64_t b = s->backoff_ms;
	s->due_ms = tern_mono_ms() + b / 2 + rnd(s->w) % (b / 2 + 1);  /* jitter: [b/2, b] */
	s->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : (unsigned)(b * 2);
	s->failing = true;
}

static void retry_now(struct stream *s)
{
	s->due_ms = tern_mono_ms();
}

static void succeeded(struct stream *s)
{
	if (s->failing)
		tern_info("kubernetes: %s: %s stream recovered", s->w->client.server, s->what);
	s->failing = false;
	s->backoff_ms = BACKOFF_MIN_MS;
}

static void relist(struct stream *s)
{
	s->state = S_LIST;
	free(s->cont);
	s->cont = NULL;
}

/* ---- applying decoded items ------------------------------------------------------- */

static int apply(struct tern_cluster_builder *b, const struct kube_item *it)
{
	bool del = it->event == KUBE_EVENT_DELETED;
	switch (it->kind) {
	case TERN_K8S_SERVICE:
		return del ? tern_cluster_builder_service_delete(b, it->service.ns, it->service.name)
		           : tern_cluster_builder_service(b, &it->service);
	case TERN_K8S_SLICE:
		return del ? tern_cluster_builder_slice_delete(b, it->slice.ns, it->slice.name)
		           : tern_cluster_builder_slice(b, &it->slice);
	case TERN_K8S_NAMESPACE:
		return del ? tern_cluster_builder_namespace_delete(b, it->namespace_name)
		           : tern_cluster_builder_namespace(b, it->namespace_name);
	case TERN_K8S_POD:
		/* A finished, deleting or address-less pod answers nothing: forget it. */
		if (del || it->pod_finished || it->pod.nips == 0)
			return tern_cluster_builder_pod_delete(b, it->pod.ns, it->pod.name);
		return tern_cluster_builder_pod(b, &it->pod);
	case TERN_K8S_KIND_COUNT:
		break;
	}
	return TERN_EINVAL;
}

static bool is_gone(const struct kube_item *it)
{
	return it->status_code == 410 || strcmp(it->reason, "Expired") == 0 ||
	       strcmp(it->reason, "Gone") == 0 ||
	       strstr(it->message, "too old resource version") != NULL;
}

static void set_rv(struct stream *s, const char *rv)
{
	if (rv && *rv)
		snprintf(s->rv, sizeof(s->rv), "%s", rv);
}

static int on_item(void *ctx, const struct kube_item *it)
{
	struct stream *s = ctx;
	struct kube_watcher *w = s->w;
	bool watching = s->state == S_WATCH;

	s->events++;
	switch (it->event) {
	case KUBE_EVENT_BOOKMARK:
		set_rv(s, it->resource_version);
		return 0;
	case KUBE_EVENT_ERROR:
		if (is_gone(it)) {
			s->gone = true;
		} else {
			s->error_event = true;
			tern_warn("kubernetes: %s: %s watch: error %ld %s: %s", w->client.server,
			          s->what, it->status_code, it->reason, it->message);
		}
		return 1;  /* the stream ends here */
	default:
		break;
	}
	if (!it->valid) {
		STAT_ADD(w, decode_errors);
		tern_warn("kubernetes: %s: %s: skipped an object (resourceVersion %s): %s",
		          w->client.server, s->what, it->resource_version, it->invalid_reason);
		if (watching)
			set_rv(s, it->resource_version);
		return 0;
	}
	int rc = apply(w->b, it);
	if (rc && rc != TERN_ENOENT) {
		tern_err("kubernetes: %s: %s: applying an object failed: %s", w->client.server,
		         s->what, tern_strerror(rc));
		return 1;  /* positive: not a decode error (those are TERN_EINVAL) */
	}
	if (watching)
		set_rv(s, it->resource_version);
	w->dirty = true;
	return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct stream *s = ctx;
	size_t len = size * n;
	long code = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		/* An error's body (a Status): keep its start for the log. */
		size_t room = ERRBODY_MAX - s->errbody_len;
		size_t k = len < room ? len : room;
		memcpy(s->errbody + s->errbody_len, p, k);
		s->errbody_len += k;
		s->errbody[s->errbody_len] = '\0';
		return len;
	}
	int rc = kube_decode_feed(s->dec, p, len);
	if (rc) {
		s->feed_rc = rc;
		return 0;  /* abort the transfer */
	}
	return len;
}

/* ---- requests --------------------------------------------------------------------- */

static int add_param(char **q, const char *key, const char *val, CURL *h)
{
	char *esc = curl_easy_escape(h, val, 0);
	if (!esc)
		return TERN_ENOMEM;
	char *next = NULL;
	int n = asprintf(&next, "%s%c%s=%s", *q, strchr(*q, '?') ? '&' : '?', key, esc);
	curl_free(esc);
	if (n < 0)
		return TERN_ENOMEM;
	free(*q);
	*q = next;
	return 0;
}

static int start_request(struct stream *s)
{
	struct kube_watcher *w = s->w;
	bool list = s->state == S_LIST;
	char *q = strdup(s->path);
	char num[32];
	int rc = q ? 0 : TERN_ENOMEM;

	if (list) {
		snprintf(num, sizeof(num), "%d", LIST_LIMIT);
		rc = rc ?: add_param(&q, "limit", num, s->h);
		if (s->cont)
			rc = rc ?: add_param(&q, "continue", s->cont, s->h);
	} else {
		unsigned timeout = WATCH_TIMEOUT_S + (unsigned)(rnd(w) % WATCH_TIMEOUT_S);
		snprintf(num, sizeof(num), "%u", timeout);
		rc = rc ?: add_param(&q, "watch", "1", s->h);
		rc = rc ?: add_param(&q, "allowWatchBookmarks", "true", s->h);
		rc = rc ?: add_param(&q, "resourceVersion", s->rv, s->h);
		rc = rc ?: add_param(&q, "timeoutSeconds", num, s->h);
	}
	if (s->label_selector && *s->label_selector)
		rc = rc ?: add_param(&q, "labelSelector", s->label_selector, s->h);
	if (s->field_selector)
		rc = rc ?: add_param(&q, "fieldSelector", s->field_selector, s->h);

	curl_easy_reset(s->h);
	kube_client_refresh(&w->client);
	rc = rc ?: kube_client_setup(&w->client, s->h, q, &s->headers);
	free(q);
	rc = rc ?: kube_decode_begin(s->dec, list ? KUBE_DECODE_LIST : KUBE_DECODE_WATCH);
	if (rc)
		return rc;
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
	long total = list ? LIST_TIMEOUT_S : WATCH_TIMEOUT_S * 2 + 30;
	curl_easy_setopt(s->h, CURLOPT_TIMEOUT, total);

	if (list && !s->cont) {
		/* A list from scratch: objects it does not return are removed at its end. */
		tern_cluster_builder_relist_begin(w->b, s->kind);
		s->relisting = true;
	}
	s->feed_rc = 0;
	s->gone = s->error_event = false;
	s->events = 0;
	s->errbody_len = 0;
	s->errbody[0] = '\0';
	s->started_ms = tern_mono_ms();
	if (curl_multi_add_handle(w->multi, s->h) != CURLM_OK) {
		curl_slist_free_all(s->headers);
		s->headers = NULL;
		return TERN_ENOMEM;
	}
	s->busy = true;
	return 0;
}

/* ---- transfer outcomes ------------------------------------------------------------ */

/* Publish now; the next publish waits for the gap (see PUBLISH_GAP_US). */
static int publish(struct kube_watcher *w)
{
	uint64_t t0 = tern_mono_ns() / 1000, c0 = tern_thread_cpu_ns() / 1000;
	int rc = tern_cluster_builder_publish(w->b, w->src);
	uint64_t gap = PUBLISH_DUTY * (tern_thread_cpu_ns() / 1000 - c0);
	if (rc == 0)
		w->dirty = false;
	w->next_publish_us = t0 + (gap > PUBLISH_GAP_US ? gap : PUBLISH_GAP_US);
	return rc;
}

static void all_listed(struct kube_watcher *w)
{
	for (unsigned i = 0; i < w->nstreams; i++)
		if (!w->streams[i].listed)
			return;
	if (w->synced)
		return;
	w->synced = true;
	tern_cluster_builder_set_synced(w->b);
	publish(w);
	tern_info("kubernetes: %s: synced in %llu ms", w->client.server,
	          (unsigned long long)(tern_mono_ms() - w->start_ms));
}

static const char *http_problem(const struct stream *s, CURLcode res, long code,
                                char *buf, size_t len)
{
	if (res != CURLE_OK)
		snprintf(buf, len, "%s (HTTP %ld)", curl_easy_strerror(res), code);
	else
		snprintf(buf, len, "HTTP %ld%s%s", code, s->errbody_len ? ": " : "", s->errbody);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return buf;
}

static void list_done(struct stream *s, CURLcode res, long code)
{
	struct kube_watcher *w = s->w;
	char why[320];

	if (res == CURLE_OK && code == 200 && !s->feed_rc) {
		int rc = kube_decode_finish(s->dec);
		if (rc == 0) {
			const char *cont = kube_decode_list_continue(s->dec);
			if (*cont) {
				char *c = strdup(cont);
				if (c) {
					free(s->cont);
					s->cont = c;
					retry_now(s);
					return;
				}
				s->feed_rc = TERN_ENOMEM;
			} else {
				tern_cluster_builder_relist_end(w->b, s->kind);
				s->relisting = false;
				set_rv(s, kube_decode_list_rv(s->dec));
				relist(s);
				s->state = S_WATCH;
				s->listed = true;
				succeeded(s);
				retry_now(s);
				all_listed(w);
				return;
			}
		} else {
			s->feed_rc = rc;
		}
	}
	if (s->feed_rc) {
		/* Garbage or an apply failure: what was read stays, the list starts over. */
		if (s->feed_rc == TERN_EINVAL) {
			STAT_ADD(w, decode_errors);
			tern_warn("kubernetes: %s: %s list: %s", w->client.server, s->what,
			          kube_decode_error(s->dec));
		}
		STAT_ADD(w, relists_error);
		relist(s);
		retry_later(s);
		return;
	}
	if (code == 410) {
		/* The continue token expired: start over. */
		STAT_ADD(w, relists_gone);
		relist(s);
		retry_now(s);
		return;
	}
	tern_warn("kubernetes: %s: %s list failed: %s (retrying)", w->client.server, s->what,
	          http_problem(s, res, code, why, sizeof(why)));
	retry_later(s);   /* the same page again: its continue token stays */
}

static void watch_done(struct stream *s, CURLcode res, long code)
{
	struct kube_watcher *w = s->w;
	char why[320];
	bool ended = res == CURLE_OK && code == 200 && !s->feed_rc && !s->gone &&
	             !s->error_event;

	if (ended && kube_decode_finish(s->dec) != 0)
		s->feed_rc = TERN_EINVAL;
	if (s->gone || code == 410) {
		tern_info("kubernetes: %s: %s: resourceVersion %s is too old, relisting",
		          w->client.server, s->what, s->rv);
		STAT_ADD(w, relists_gone);
		relist(s);
		retry_now(s);
		return;
	}
	if (s->error_event || (s->feed_rc && s->feed_rc != TERN_EINVAL)) {
		STAT_ADD(w, relists_error);
		relist(s);
		retry_later(s);
		return;
	}
	if (code == 504 && (strstr(s->errbody, "ResourceVersionTooLarge") ||
	                    strstr(s->errbody, "Too large resource version"))) {
		/* The server is behind our resourceVersion (restored or restarted): resuming
		 * would wait forever, so relist, as client-go's reflector does. */
		tern_warn("kubernetes: %s: %s: resourceVersion %s is ahead of the server, "
		          "relisting", w->client.server, s->what, s->rv);
		STAT_ADD(w, relists_error);
		relist(s);
		retry_later(s);
		return;
	}
	STAT_ADD(w, watch_restarts);
	if (s->feed_rc == TERN_EINVAL) {
		STAT_ADD(w, decode_errors);
		tern_warn("kubernetes: %s: %s watch: %s (resuming from %s)", w->client.server,
		          s->what, kube_decode_error(s->dec), s->rv);
		retry_later(s);
		return;
	}
	/*
	 * A watch that delivered something, or that the server kept open for a while, shows
	 * the API is healthy again: start the backoff over, so that a quiet watch cut after
	 * an outage does not wait out the outage's grown backoff.
	 */
	if (s->events || (code == 200 && tern_mono_ms() - s->started_ms > 1000))
		succeeded(s);
	if (ended) {
		/* The server's timeout: resume at once, unless it keeps closing right away. */
		if (s->events || tern_mono_ms() - s->started_ms > 1000)
			retry_now(s);
		else
			retry_later(s);
		return;
	}
	tern_warn("kubernetes: %s: %s watch cut: %s (resuming from %s)", w->client.server,
	          s->what, http_problem(s, res, code, why, sizeof(why)), s->rv);
	retry_later(s);
}

static void transfer_done(struct kube_watcher *w, CURL *h, CURLcode res)
{
	char *priv = NULL;
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_PRIVATE, &priv);
	struct stream *s = (struct stream *)priv;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(w->multi, h);
	curl_slist_free_all(s->headers);
	s->headers = NULL;
	s->busy = false;

	unsigned cls = code >= 100 && code < 600 ? (unsigned)(code / 100) : 0;
	__atomic_fetch_add(&w->src->stats.api_requests[cls], 1, __ATOMIC_RELAXED);
	if (s->state == S_LIST)
		list_done(s, res, code);
	else
		watch_done(s, res, code);
}

/* ---- the thread ------------------------------------------------------------------- */

static void maybe_publish(struct kube_watcher *w, uint64_t now, uint64_t *wait_ms)
{
	if (!w->dirty)
		return;
	if (!w->synced && !(w->src->conf.startup_timeout_ms &&
	                    now - w->start_ms >= w->src->conf.startup_timeout_ms))
		return;  /* a half-listed cluster is not worth publishing yet */
	uint64_t t = tern_mono_ns() / 1000;
	if (t < w->next_publish_us) {
		uint64_t ms = (w->next_publish_us - t + 999) / 1000;
		if (ms < *wait_ms)
			*wait_ms = ms;
		return;
	}
	if (!tern_cluster_builder_dirty(w->b)) {
		w->dirty = false;        /* the changes changed nothing */
		return;
	}
	if (publish(w) != 0 && *wait_ms > POLL_MAX_MS)
		*wait_ms = POLL_MAX_MS;  /* out of memory: try again soon */
}

static void *watcher_main(void *arg)
{
	struct kube_watcher *w = arg;
	tern_rcu_register();
	tern_rcu_offline();   /* it only publishes; never reads a root */

	while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
		int running = 0;
		curl_multi_perform(w->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(w->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				transfer_done(w, msg->easy_handle, msg->data.result);

		uint64_t now = tern_mono_ms();
		uint64_t wait = POLL_MAX_MS;
		for (unsigned i = 0; i < w->nstreams; i++) {
			struct stream *s = &w->streams[i];
			if (s->busy)
				continue;
			if (s->due_ms <= now) {
				int rc = start_request(s);
				if (rc) {
					tern_err("kubernetes: %s: %s: cannot start a request: %s",
					         w->client.server, s->what, tern_strerror(rc));
					retry_later(s);
				} else {
					wait = 0;  /* let curl_multi_perform start it */
				}
			}
			if (!s->busy && s->due_ms > now && s->due_ms - now < wait)
				wait = s->due_ms - now;
		}
		maybe_publish(w, now, &wait);
		tern_cluster_builder_reclaim(w->b);
		if (wait)
			curl_multi_poll(w->multi, NULL, 0, (int)wait, NULL);
	}

	for (unsigned i = 0; i < w->nstreams; i++) {
		struct stream *s = &w->streams[i];
		if (s->busy)
			curl_multi_remove_handle(w->multi, s->h);
		curl_slist_free_all(s->headers);
		s->headers = NULL;
		s->busy = false;
	}
	tern_rcu_unregister();
	return NULL;
}

/* ---- life cycle ------------------------------------------------------------------- */

static void watcher_free(struct kube_watcher *w)
{
	for (unsigned i = 0; i < w->nstreams; i++) {
		struct stream *s = &w->streams[i];
		if (s->h)
			curl_easy_cleanup(s->h);
		kube_decode_free(s->dec);
		free(s->cont);
	}
	if (w->multi)
		curl_multi_cleanup(w->multi);
	tern_cluster_builder_free(w->b);
	kube_client_deinit(&w->client);
	free(w);
}

static int add_stream(struct kube_watcher *w, enum tern_k8s_kind kind, const char *what,
                      const char *path, const char *labels, const char *fields)
{
	struct stream *s = &w->streams[w->nstreams];
	*s = (struct stream){
		.w = w, .kind = kind, .what = what, .path = path, .label_selector = labels,
		.field_selector = fields, .state = S_LIST, .backoff_ms = BACKOFF_MIN_MS,
	};
	s->h = curl_easy_init();
	s->dec = kube_decode_new(kind, on_item, s);
	w->nstreams++;
	return s->h && s->dec ? 0 : TERN_ENOMEM;
}

int kube_watcher_start(struct tern_cluster_source *src, struct kube_watcher **out)
{
	const struct tern_cluster_source_conf *conf = &src->conf;
	struct kube_watcher *w = calloc(1, sizeof(*w));
	if (!w)
		return TERN_ENOMEM;
	w->src = src;
	w->start_ms = tern_mono_ms();
	w->rng = (uint64_t)w->start_ms * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)w;
	if (!w->rng)
		w->rng = 1;
	int rc = kube_client_init(&w->client, conf);
	if (rc) {
		free(w);
		return rc;
	}
	w->b = tern_cluster_builder_new(conf);
	w->multi = curl_multi_init();
	rc = w->b && w->multi ? 0 : TERN_ENOMEM;
	if (!rc) {
		curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
		rc = add_stream(w, TERN_K8S_NAMESPACE, "namespaces", "/api/v1/namespaces",
		                conf->namespace_labels, NULL);
	}
	if (!rc)
		rc = add_stream(w, TERN_K8S_SERVICE, "services", "/api/v1/services",
		                conf->labels, NULL);
	if (!rc && conf->watch_endpoints)
		rc = add_stream(w, TERN_K8S_SLICE, "endpointslices",
		                "/apis/discovery.k8s.io/v1/endpointslices", conf->labels, NULL);
	if (!rc && conf->watch_pods)
		rc = add_stream(w, TERN_K8S_POD, "pods", "/api/v1/pods", conf->labels,
		                "status.phase!=Succeeded,status.phase!=Failed");
	if (!rc && pthread_create(&w->thread, NULL, watcher_main, w) != 0)
		rc = TERN_ENOMEM;
	if (rc) {
		watcher_free(w);
		return rc;
	}
	tern_info("kubernetes: watching %s", w->client.server);
	*out = w;
	return 0;
}

void kube_watcher_stop(struct kube_watcher *w)
{
	if (!w)
		return;
	atomic_store_explicit(&w->stop, true, memory_order_release);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	watcher_free(w);
}

/* ---- kube.h ----------------------------------------------------------------------- */

static bool curl_ready;

static void start_one(struct tern_cluster_source *src, void *ctx)
{
	int *first_err = ctx;
	if (src->watcher || src->refs == 0)
		return;
	struct kube_watcher *w = NULL;
	int rc = kube_watcher_start(src, &w);
	if (rc) {
		if (!*first_err)
			*first_err = rc;
		return;
	}
	src->watcher = w;
}

int kube_sync(void)
{
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return TERN_ENOMEM;
		curl_ready = true;
	}
	int rc = 0;
	tern_cluster_sources_foreach(start_one, &rc);
	tern_cluster_sources_reap(kube_stop_watcher);
	return rc;
}

void kube_stop_watcher(struct tern_cluster_source *src)
{
	kube_watcher_stop(src->watcher);
	src->watcher = NULL;
}

static void stop_one(struct tern_cluster_source *src, void *ctx)
{
	(void)ctx;
	kube_stop_watcher(src);
}

void kube_stop_all(void)
{
	tern_cluster_sources_foreach(stop_one, NULL);
	if (curl_ready) {
		curl_global_cleanup();
		curl_ready = false;
	}
}
