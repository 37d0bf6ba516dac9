/* base/proc.c - see proc.h. */
#include <signal.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/proc.h"

void ml_process_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	ml_log_set_level(ml_log_level_parse(getenv("MATCHLOCK_LOG")));
}
