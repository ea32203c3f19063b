/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The io layer's TLS client (see upstream_tls.h) over GnuTLS. Profiles live in a fixed
 * per-worker table so that connections and health probes can point at them; a profile
 * is reference counted by its connections and by the upstream health record that
 * probes with it. A profile whose files changed on disk becomes stale when the next
 * connection opens: that connection gets a freshly loaded profile, the stale one is
 * freed when its last connection closes. Miss path only: loading credentials and
 * opening sessions allocate, once per profile and per connection.
 */
#include "daemon/upstream_tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <gnutls/gnutls.h>

#include "lib/core/errcode.h"
#include "lib/core/log.h"
#include "lib/core/parse.h"

/* Identity of a file as loaded, to notice that it changed. */
struct file_id {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct saved_session {
	struct sockaddr_storage addr;
	gnutls_datum_t data;            /* gnutls_malloc'ed; size 0: empty */
	uint64_t used;
};

enum { FILE_CA, FILE_CERT, FILE_KEY, FILE_COUNT };

struct upstream_tls_profile {
	bool used, stale, bad;
	unsigned refs;
	uint64_t used_at;               /* LRU clock, for eviction */
	char *servername;               /* NULL: verify the IP address, no SNI */
	char *files[FILE_COUNT];        /* NULL: not configured */
	struct file_id ids[FILE_COUNT];
	gnutls_certificate_credentials_t creds;
	struct saved_session sessions[UPSTREAM_TLS_SESSIONS];
};

struct upstream_tls_link {
	gnutls_session_t s;
	struct upstream_tls *t;
	struct upstream_tls_profile *p;   /* held; its servername is GnuTLS's (borrowed) */
	struct sockaddr_storage addr;
	bool done;
	gnutls_typed_vdata_st vd;         /* GnuTLS keeps pointers to these two */
	uint8_t ip[16];
};

struct upstream_tls {
	uint64_t clock;
	struct upstream_tls_profile profiles[UPSTREAM_TLS_PROFILES];
};

int upstream_tls_new(struct upstream_tls **out)
{
	struct upstream_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return TERN_ENOMEM;
	*out = t;
	return 0;
}

static void profile_clear(struct upstream_tls_profile *p)
{
	free(p->servername);
	for (unsigned i = 0; i < FILE_COUNT; i++)
		free(p->files[i]);
	if (p->creds)
		gnutls_certificate_free_credentials(p->creds);
	for (unsigned i = 0; i < UPSTREAM_TLS_SESSIONS; i++)
		gnutls_free(p->sessions[i].data.data);
	memset(p, 0, sizeof(*p));
}

void upstream_tls_free(struct upstream_tls *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < UPSTREAM_TLS_PROFILES; i++) {
		if (t->profiles[i].used)
			profile_clear(&t->profiles[i]);
	}
	free(t);
}

/* ---- profiles ------------------------------------------------------------------ */

static bool str_same(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* "" means not configured. */
static const char *opt(const char *s)
{
	return s && s[0] ? s : NULL;
}

static bool profile_matches(const struct upstream_tls_profile *p,
                            const struct tern_upstream_tls *cfg)
{
	return str_same(p->servername, opt(cfg->servername)) &&
	       str_same(p->files[FILE_CA], opt(cfg->ca_file)) &&
	       str_same(p->files[FILE_CERT], opt(cfg->cert_file)) &&
	       str_same(p->files[FILE_KEY], opt(cfg->key_file));
}

static void file_id_get(const char *path, struct file_id *id)
{
	struct stat st;
	memset(id, 0, sizeof(*id));
	if (!path || stat(path, &st) != 0)
		return;
	*id = (struct file_id) { .present = true, .dev = st.st_dev, .ino = st.st_ino,
	                         .size = st.st_size, .mtime = st.st_mtim };
}

static bool file_id_equal(const struct file_id *a, const struct file_id *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Load the credentials; a failure is logged and leaves the profile bad. */
static void profile_load(struct upstream_tls_profile *p)
{
	const char *what = "credentials";
	int ret = gnutls_certificate_allocate_credentials(&p->creds);
	if (ret < 0) {
		p->creds = NULL;
		goto fail;
	}
	for (unsigned i = 0; i < FILE_COUNT; i++)
		file_id_get(p->files[i], &p->ids[i]);
	/* The system store is optional when a CA file is given. */
	int system = gnutls_certificate_set_x509_system_trust(p->creds);
	if (p->files[FILE_CA]) {
		what = p->files[FILE_CA];
		ret = gnutls_certificate_set_x509_trust_file(p->creds, p->files[FILE_CA],
		                                             GNUTLS_X509_FMT_PEM);
		if (ret == 0)
			ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (ret < 0)
			goto fail;
	} else if (system <= 0) {
		what = "the system trust store";
		ret = system < 0 ? system : GNUTLS_E_NO_CERTIFICATE_FOUND;
		goto fail;
	}
	if (p->files[FILE_CERT]) {
		what = p->files[FILE_CERT];
		ret = gnutls_certificate_set_x509_key_file(p->creds, p->files[FILE_CERT],
		                                           p->files[FILE_KEY], GNUTLS_X509_FMT_PEM);
		if (ret < 0)
			goto fail;
	}
	return;
fail:
	tern_warn("upstream TLS%s%s, cannot load %s (%s); its connections will fail",
	          p->servername ? " for " : "", p->servername ? p->servername : "", what,
	          gnutls_strerror(ret));
	p->bad = true;
}

static struct upstream_tls_profile *slot_for_new(struct upstream_tls *t)
{
	struct upstream_tls_profile *victim = NULL;
	for (unsigned i = 0; i < UPSTREAM_TLS_PROFILES; i++) {
		struct upstream_tls_profile *p = &t->profiles[i];
		if (!p->used)
			return p;
		if (p->refs == 0 && (!victim || p->stale > victim->stale ||
		                     (p->stale == victim->stale && p->used_at < victim->used_at)))
			victim = p;
	}
	if (victim)
		profile_clear(victim);
	return victim;
}

static char *dup_opt(const char *s, bool *ok)
{
	s = opt(s);
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*ok = false;
	return d;
}

struct upstream_tls_profile *upstream_tls_profile(struct upstream_tls *t,
                                                  const struct tern_upstream_tls *cfg)
{
	t->clock++;
	for (unsigned i = 0; i < UPSTREAM_TLS_PROFILES; i++) {
		struct upstream_tls_profile *p = &t->profiles[i];
		if (p->used && !p->stale && profile_matches(p, cfg)) {
			p->used_at = t->clock;
			return p;
		}
	}
	struct upstream_tls_profile *p = slot_for_new(t);
	if (!p)
		return NULL;
	bool ok = true;
	p->servername = dup_opt(cfg->servername, &ok);
	p->files[FILE_CA] = dup_opt(cfg->ca_file, &ok);
	p->files[FILE_CERT] = dup_opt(cfg->cert_file, &ok);
	p->files[FILE_KEY] = dup_opt(cfg->key_file, &ok);
	if (!ok) {
		profile_clear(p);
		return NULL;
	}
	p->used = true;
	p->used_at = t->clock;
	profile_load(p);
	return p;
}

void upstream_tls_hold(struct upstream_tls_profile *p)
{
	if (p)
		p->refs++;
}

void upstream_tls_drop(struct upstream_tls *t, struct upstream_tls_profile *p)
{
	(void)t;
	if (!p || p->refs == 0)
		return;
	p->refs--;
	if (p->refs == 0 && p->stale)
		profile_clear(p);
}

/* @p p, or its replacement when one of its files changed since it was loaded. */
static struct upstream_tls_profile *profile_current(struct upstream_tls *t,
                                                    struct upstream_tls_profile *p)
{
	bool changed = false;
	for (unsigned i = 0; i < FILE_COUNT && !changed; i++) {
		struct file_id now;
		file_id_get(p->files[i], &now);
		changed = !file_id_equal(&now, &p->ids[i]);
	}
	if (!changed)
		return p;
	tern_info("upstream TLS%s%s, credentials changed on disk, reloading",
	          p->servername ? " for " : "", p->servername ? p->servername : "");
	struct tern_upstream_tls cfg = {
		.servername = p->servername,
		.ca_file = p->files[FILE_CA],
		.cert_file = p->files[FILE_CERT],
		.key_file = p->files[FILE_KEY],
	};
	p->stale = true;
	p->refs++;   /* not evicted while its strings are being copied */
	struct upstream_tls_profile *next = upstream_tls_profile(t, &cfg);
	p->refs--;
	if (!next) {
		p->stale = false;   /* no room for a new one: keep the old credentials */
		return p;
	}
	if (p->refs == 0)
		profile_clear(p);
	return next;
}

/* ---- sessions to resume -------------------------------------------------------- */

static struct saved_session *session_find(struct upstream_tls_profile *p,
                                          const struct sockaddr_storage *addr)
{
	for (unsigned i = 0; i < UPSTREAM_TLS_SESSIONS; i++) {
		if (p->sessions[i].data.size && tern_addr_equal(&p->sessions[i].addr, addr))
			return &p->sessions[i];
	}
	return NULL;
}

/*
 * Keep @p l's session to resume the next connection to the same upstream. Called when
 * it can be resumed: after a TLS 1.2 handshake, and when a TLS 1.3 ticket arrives (a
 * connection that ends without close_notify cannot be saved at its end any more).
 */
static void session_save(struct upstream_tls *t, struct upstream_tls_link *l)
{
	gnutls_datum_t d = { 0 };
	if (gnutls_session_get_data2(l->s, &d) < 0 || d.size == 0) {
		gnutls_free(d.data);
		return;
	}
	struct upstream_tls_profile *p = l->p;
	struct saved_session *slot = session_find(p, &l->addr);
	for (unsigned i = 0; !slot && i < UPSTREAM_TLS_SESSIONS; i++) {
		if (p->sessions[i].data.size == 0)
			slot = &p->sessions[i];
	}
	for (unsigned i = 0; !slot && i < UPSTREAM_TLS_SESSIONS; i++) {
		if (!slot || p->sessions[i].used < slot->used)
			slot = &p->sessions[i];
	}
	gnutls_free(slot->data.data);
	slot->addr = l->addr;
	slot->data = d;
	slot->used = ++t->clock;
}

/* ---- links --------------------------------------------------------------------- */

static int ticket_received(gnutls_session_t s, unsigned htype, unsigned when,
                           unsigned incoming, const gnutls_datum_t *msg)
{
	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	struct upstream_tls_link *l = gnutls_session_get_ptr(s);
	if (l && l->done)
		session_save(l->t, l);
	return 0;
}

int upstream_tls_link_new(struct upstream_tls *t, struct upstream_tls_profile *p, int fd,
                          const struct sockaddr_storage *addr, struct upstream_tls_link **out)
{
	p = profile_current(t, p);
	if (p->bad)
		return TERN_EINVAL;
	struct upstream_tls_link *l = calloc(1, sizeof(*l));
	if (!l)
		return TERN_ENOMEM;
	l->addr = *addr;
	int ret = gnutls_init(&l->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		free(l);
		return TERN_ENOMEM;
	}
	ret = gnutls_set_default_priority(l->s);
	if (ret >= 0)
		ret = gnutls_credentials_set(l->s, GNUTLS_CRD_CERTIFICATE, p->creds);
	if (ret >= 0 && p->servername) {
		ret = gnutls_server_name_set(l->s, GNUTLS_NAME_DNS, p->servername,
		                             strlen(p->servername));
		gnutls_session_set_verify_cert(l->s, p->servername, 0);
	} else if (ret >= 0) {
		/* No name: the certificate must carry the IP address (iPAddress SAN). */
		l->vd = (gnutls_typed_vdata_st) { .type = GNUTLS_DT_IP_ADDRESS, .data = l->ip };
		if (addr->ss_family == AF_INET) {
			memcpy(l->ip, &((const struct sockaddr_in *)addr)->sin_addr, 4);
			l->vd.size = 4;
		} else {
			memcpy(l->ip, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
			l->vd.size = 16;
		}
		gnutls_session_set_verify_cert2(l->s, &l->vd, 1, 0);
	}
	if (ret < 0) {
		gnutls_deinit(l->s);
		free(l);
		return TERN_EINVAL;
	}
	gnutls_handshake_set_timeout(l->s, GNUTLS_INDEFINITE_TIMEOUT);  /* ours: idle expiry */
	struct saved_session *ss = session_find(p, addr);
	if (ss)
		(void)gnutls_session_set_data(l->s, ss->data.data, ss->data.size);
	gnutls_transport_set_int(l->s, fd);
	gnutls_session_set_ptr(l->s, l);
	gnutls_handshake_set_hook_function(l->s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
	                                   GNUTLS_HOOK_POST, ticket_received);
	l->t = t;
	l->p = p;
	upstream_tls_hold(p);
	*out = l;
	return 0;
}

void upstream_tls_link_free(struct upstream_tls *t, struct upstream_tls_link *l)
{
	if (!l)
		return;
	if (l->done)
		(void)gnutls_bye(l->s, GNUTLS_SHUT_WR);   /* non-blocking: best effort */
	gnutls_deinit(l->s);
	upstream_tls_drop(t, l->p);
	free(l);
}

struct upstream_tls_profile *upstream_tls_link_profile(const struct upstream_tls_link *l)
{
	return l->p;
}

static void handshake_failed(struct upstream_tls_link *l, unsigned worker_id, int ret)
{
	static unsigned rl_sec, rl_count;
	if (!tern_log_ratelimited(&rl_sec, &rl_count))
		return;
	char addr[TERN_ADDR_STRLEN];
	if (tern_addr_str(&l->addr, addr, sizeof(addr)) != 0)
		addr[0] = '\0';
	const char *name = l->p->servername ? l->p->servername : "its IP address";
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t why = { 0 };
		unsigned status = gnutls_session_get_verify_cert_status(l->s);
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why,
		                                                  0) < 0)
			why.data = NULL;
		tern_warn("worker %u, upstream %s, TLS certificate rejected for %s (%s)",
		          worker_id, addr, name, why.data ? (char *)why.data : "invalid");
		gnutls_free(why.data);
		return;
	}
	tern_warn("worker %u, upstream %s, TLS handshake failed (%s)", worker_id, addr,
	          gnutls_strerror(ret));
}

int upstream_tls_handshake(struct upstream_tls_link *l, unsigned worker_id)
{
	if (l->done)
		return 0;
	int ret;
	for (int i = 0; i < 8; i++) {
		ret = gnutls_handshake(l->s);
		if (ret == 0) {
			l->done = true;
			if (gnutls_protocol_get_version(l->s) != GNUTLS_TLS1_3)
				session_save(l->t, l);   /* TLS 1.3: when a ticket comes */
			return 0;
		}
		if (ret == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (gnutls_error_is_fatal(ret))
			break;
		/* GNUTLS_E_INTERRUPTED, a warning alert: go on. */
	}
	handshake_failed(l, worker_id, ret);
	return -EPROTO;
}

bool upstream_tls_wants_write(const struct upstream_tls_link *l)
{
	return gnutls_record_get_direction(l->s) == 1;
}

bool upstream_tls_resumed(const struct upstream_tls_link *l)
{
	return l->done && gnutls_session_is_resumed(l->s);
}

ssize_t upstream_tls_send(struct upstream_tls_link *l, const void *buf, size_t len)
{
	for (;;) {
		ssize_t n = gnutls_record_send(l->s, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_AGAIN)
			return -EAGAIN;
		tern_debug("upstream TLS send failed (%s)", gnutls_strerror((int)n));
		return -EPIPE;
	}
}

ssize_t upstream_tls_recv(struct upstream_tls_link *l, void *buf, size_t len)
{
	for (int i = 0; i < 16; i++) {
		ssize_t n = gnutls_record_recv(l->s, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;   /* closed without close_notify: the same for DNS */
		if (gnutls_error_is_fatal((int)n)) {
			tern_debug("upstream TLS receive failed (%s)", gnutls_strerror((int)n));
			return -EPIPE;
		}
		/* Interrupted, a renegotiation request (refused by ignoring it), a warning. */
	}
	return -EAGAIN;
}
