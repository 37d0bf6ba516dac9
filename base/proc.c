/* base/proc.c - see proc.h. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>

#include "base/log.h"
#include "base/proc.h"

void ml_process_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* Fixed malloc thresholds before any thread exists. glibc's dynamic ones rise after big
	 * frees (a rootfs build, a pull) up to 32 MiB (mmap) and 64 MiB (trim): the arena of the
	 * thread that did that work then keeps its freed memory resident, and the network thread,
	 * which inherits that arena once the worker is gone, serves libslirp's 128 KiB socket
	 * rings from it: measured 150 KiB of RSS per idle guest flow instead of 9 KiB. */
	mallopt(M_MMAP_THRESHOLD, 96 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024);
	ml_log_set_level(ml_log_level_parse(getenv("MATCHLOCK_LOG")));
}

void ml_signals_unignore(void)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			signal(sigs[i], SIG_DFL);
	}
}

int ml_signalfd(const int *sigs, size_t n)
{
	sigset_t set;
	sigemptyset(&set);
	ml_signals_unignore();
	for (size_t i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}
