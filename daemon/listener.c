/* SPDX-License-Identifier: Apache-2.0 */
/* SO_REUSEPORT socket set-up; see listener.h. */
#include "daemon/listener.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int open_common(const struct sockaddr_storage *ss, int type)
{
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int on = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
		goto fail;
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

int listener_udp_open(const struct sockaddr_storage *ss, bool *pktinfo)
{
	int fd = open_common(ss, SOCK_DGRAM);
	if (fd < 0)
		return fd;
	int rcvbuf = 4 << 20;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	*pktinfo = is_wildcard(ss);
	if (*pktinfo) {
		int on = 1;
		int ret = ss->ss_family == AF_INET ?
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) :
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
		if (ret != 0) {
			int err = -errno;
			close(fd);
			return err;
		}
	}
	return fd;
}

int listener_tcp_open(const struct sockaddr_storage *ss)
{
	int fd = open_common(ss, SOCK_STREAM);
	if (fd < 0)
		return fd;
	int qlen = 128;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
	if (listen(fd, 1024) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
