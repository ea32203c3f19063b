/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS client of the worker's io layer (DNS over TLS upstreams, RFC 7858), over
 * GnuTLS. upstream_tcp.c opens the TCP connection and drives it from the worker's epoll
 * loop; this module adds, per worker: a small cache of TLS profiles (the server name to
 * verify plus the credentials: the system trust store, an optional CA file, an
 * optional client certificate), each profile's saved sessions for resumption across
 * reconnects, and the non-blocking handshake, send and receive of one connection.
 * Nothing here blocks: a call that would block returns -EAGAIN and
 * upstream_tls_wants_write() says which epoll event to wait for.
 * Certificates are always verified: against the server name when one is configured
 * (also sent as SNI), otherwise against the upstream's IP address (what CoreDNS does
 * through Go's crypto/tls when tls_servername is absent).
 * Thread: the owning worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "lib/engine/io.h"

#define UPSTREAM_TLS_PROFILES 16   /**< TLS profiles cached per worker */
#define UPSTREAM_TLS_SESSIONS 16   /**< resumable sessions kept per profile */

struct upstream_tls;          /* per worker */
struct upstream_tls_profile;  /* server name + credentials, shared by connections */
struct upstream_tls_link;     /* the TLS state of one connection */

/** Create a worker's TLS client state (no credentials are loaded yet). */
int upstream_tls_new(struct upstream_tls **out);
/** Free it; every profile must have been dropped. NULL is a no-op. */
void upstream_tls_free(struct upstream_tls *t);

/**
 * The profile for @p cfg, created on first use (credentials load then: the system
 * trust store and the files named by @p cfg, which is copied). A profile whose
 * credentials failed to load is returned too (the failure is logged): its connections
 * fail their handshake. @return a borrowed profile (hold it to keep it), or NULL
 * when out of memory or every cached profile is in use.
 */
struct upstream_tls_profile *upstream_tls_profile(struct upstream_tls *t,
                                                  const struct tern_upstream_tls *cfg);
/** Take a reference to @p p (NULL is a no-op). */
void upstream_tls_hold(struct upstream_tls_profile *p);
/** Drop a reference taken with upstream_tls_hold() (NULL is a no-op). */
void upstream_tls_drop(struct upstream_tls *t, struct upstream_tls_profile *p);

/**
 * Start TLS on the connected (or connecting) non-blocking socket @p fd to @p addr.
 * The link holds a reference to @p p's current version: a profile whose files changed
 * on disk since they were loaded is replaced by a freshly loaded one first.
 * @return 0 or a negative TERN_E* code (the link is then not created).
 */
int upstream_tls_link_new(struct upstream_tls *t, struct upstream_tls_profile *p, int fd,
                          const struct sockaddr_storage *addr, struct upstream_tls_link **out);
/**
 * Save the session for resumption, send close_notify if it does not block, and free
 * @p l (the socket stays open: the caller closes it). NULL is a no-op.
 */
void upstream_tls_link_free(struct upstream_tls *t, struct upstream_tls_link *l);
/** The profile the link uses (borrowed, valid while the link lives). */
struct upstream_tls_profile *upstream_tls_link_profile(const struct upstream_tls_link *l);

/**
 * Advance the handshake, which verifies the certificate. @return 0 when it is
 * complete, -EAGAIN when it waits for the socket, or another negative code when it
 * failed (logged, rate-limited, with the reason).
 */
int upstream_tls_handshake(struct upstream_tls_link *l, unsigned worker_id);
/** Whether the last call that returned -EAGAIN waits for the socket to be writable. */
bool upstream_tls_wants_write(const struct upstream_tls_link *l);
/** Whether the completed handshake resumed a saved session. */
bool upstream_tls_resumed(const struct upstream_tls_link *l);

/**
 * Send up to @p len bytes of @p buf. After -EAGAIN the next call must pass the same
 * @p buf and @p len (GnuTLS's rule). @return bytes sent, -EAGAIN, or another negative
 * code when the connection failed.
 */
ssize_t upstream_tls_send(struct upstream_tls_link *l, const void *buf, size_t len);
/** Receive into @p buf. @return bytes read, 0 at the end of the stream, -EAGAIN, or
 * another negative code when the connection failed. */
ssize_t upstream_tls_recv(struct upstream_tls_link *l, void *buf, size_t len);
