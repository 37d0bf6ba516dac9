/* base/io.c - see io.h. */
#include "base/io.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

int ml_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			poll(&pf, 1, -1);
			continue;
		}
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EPIPE;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
