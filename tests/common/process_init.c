/* tests/common/process_init.c - linked into every unit test, fuzz target and test tool: the
 * process is set up exactly as cli/main.c sets up the product's (a plain login shell leaves
 * SIGPIPE at its default, which killed a fuzz target on its own seeds before this existed). */
#include "base/proc.h"

__attribute__((constructor)) static void test_process_init(void)
{
	ml_process_init();
}
