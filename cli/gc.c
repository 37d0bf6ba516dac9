/* cli/gc.c - `matchlock gc [vm-id] [--force-running]`: removes what crashed sandboxes left. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cmds.h"
#include "rpc/vmstate.h"

static void print_line(void *arg, const char *text)
{
	(void)arg;
	printf("%s\n", text);
}

int cmd_gc(int argc, char **argv, struct ml_err *e)
{
	bool force = false;
	struct flag t[] = {
		{ "force-running", 0, FLAG_BOOL, &force, "Also clean VMs whose owner still runs", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos,
			       "Remove what crashed sandboxes left behind (scratch disks, sockets).\n\n"
			       "Usage:\n  matchlock gc [vm-id] [flags]\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n > 1)
		return ml_err_set(e, -22, "accepts at most 1 arg(s), received %zu", pos.n);
	struct gc_report rep = { .line = print_line };
	r = vmstate_gc(cli_settings()->state_dir, pos.n ? pos.v[0] : NULL, force, &rep, e);
	if (r == 0 && !pos.n)
		printf("Reconciled %d VMs\n", rep.reconciled);
	strv_clear(&pos);
	return r;
}
