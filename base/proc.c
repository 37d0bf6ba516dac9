/* base/proc.c - see proc.h. */
#include <signal.h>

#include "base/proc.h"

void ml_process_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}
