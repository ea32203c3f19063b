/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening the per-worker sockets. Every worker binds its own UDP socket and TCP
 * listener to each listen address with SO_REUSEPORT, so the kernel spreads queries
 * over the workers with no shared socket and no lock. Wildcard UDP binds ask for
 * packet info so that answers leave from the address the query came to.
 * Thread: main (at start).
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

/** @return a non-blocking bound UDP socket, or a negative errno. */
int listener_udp_open(const struct sockaddr_storage *ss, bool *pktinfo);
/** @return a non-blocking listening TCP socket, or a negative errno. */
int listener_tcp_open(const struct sockaddr_storage *ss);
