/* base/io.h - small I/O helpers shared by the host-side code. */
#ifndef ML_BASE_IO_H
#define ML_BASE_IO_H

#include <stddef.h>

/* Writes all n bytes: retries on EINTR, and on EAGAIN waits (poll) for the fd to take more, so
 * it works on nonblocking fds too. 0, or -errno (-EPIPE when the reader is gone). */
int ml_write_all(int fd, const void *p, size_t n);

#endif
