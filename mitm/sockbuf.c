/* mitm/sockbuf.c - a per-VM budget for the kernel buffers of upstream sockets.
 *
 * Left to autotuning, each upstream TCP socket may grow its send buffer to tcp_wmem's maximum
 * (4 MiB on a stock kernel) and its receive buffer to tcp_rmem's (6 MiB, often more). A guest
 * that opens a thousand flows to a server that reads fast and then stops (or serves fast to a
 * guest that stops reading) could pin gigabytes of host memory in our sockets. So the sockets
 * of one VM share a budget (cfg.upstream_buf_budget, 64 MiB by default), charged when a
 * socket is made and given back when it closes:
 *   - while the budget still holds a whole autotuned socket (tcp_wmem[2] + tcp_rmem[2]), a new
 *     socket is left to autotuning and charged that much: the first few flows of a VM (six on
 *     a stock kernel) reach full speed on long, fast paths;
 *   - after that, SO_SNDBUF and SO_RCVBUF are fixed before connect (window scaling is chosen
 *     from them at the SYN) at a sixteenth of what is left each, between SOCKBUF_MIN and
 *     SOCKBUF_MAX (and net.core.[rw]mem_max, the kernel's own cap), charged twice that.
 * Worst case: budget + max_flows x 2 x SOCKBUF_MIN bytes asked for (1024 flows: 96 MiB; the
 * kernel's own accounting is up to twice what is asked).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "mitm/internal.h"

/* The third field of /proc/sys/net/ipv4/tcp_[wr]mem: how far autotuning may grow a buffer. */
static size_t autotune_max(const char *path, size_t dflt)
{
	FILE *f = fopen(path, "re");
	unsigned long lo, mid, hi;
	int n;

	if (!f)
		return dflt;
	n = fscanf(f, "%lu %lu %lu", &lo, &mid, &hi);
	fclose(f);
	return n == 3 && hi ? (size_t)hi : dflt;
}

void sockbuf_init(struct mitm *m)
{
	m->sockbuf_autotuned = autotune_max("/proc/sys/net/ipv4/tcp_wmem", 4u << 20) +
			       autotune_max("/proc/sys/net/ipv4/tcp_rmem", 6u << 20);
}

uint32_t sockbuf_apply(struct mitm *m, int fd)
{
	size_t budget = m->cfg.upstream_buf_budget;
	size_t left = m->sockbuf_in_use < budget ? budget - m->sockbuf_in_use : 0;
	size_t each = left / 16;
	int v;

	if (left >= m->sockbuf_autotuned) {
		m->sockbuf_in_use += m->sockbuf_autotuned;
		return (uint32_t)m->sockbuf_autotuned;
	}
	if (each < SOCKBUF_MIN)
		each = SOCKBUF_MIN;
	if (each > SOCKBUF_MAX)
		each = SOCKBUF_MAX;
	v = (int)each;
	/* A failure leaves autotuning on for this one socket, which still works: say so. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0) {
		ml_debug("mitm: upstream socket buffers: %s", strerror(errno));
		return 0;
	}
	m->sockbuf_in_use += 2 * each;
	m->st.sockbuf_fixed++;
	return (uint32_t)(2 * each);
}

void sockbuf_release(struct mitm *m, uint32_t charged)
{
	m->sockbuf_in_use -= charged <= m->sockbuf_in_use ? charged : m->sockbuf_in_use;
}
