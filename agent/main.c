/* agent/main.c - the guest agent: PID 1 of every matchlock VM. Boots the guest far enough to
 * reach the host (kernel filesystems, driver modules, the control port), then serves the
 * control protocol forever. If PID 1 ever exits the kernel panics, so nothing here returns. */
#include "agent/agent.h"

#include <string.h>

#include "base/log.h"

#define PORT_WAIT_MS 10000

int main(void)
{
	boot_mount_early();
	boot_std_fds();
	boot_load_modules("/modules.order", "/lib/modules");
	struct ml_err e = { 0, "" };
	int fd = boot_open_port(AGENT_CTL_PORT, PORT_WAIT_MS, &e);
	if (fd < 0)
		boot_poweroff(e.msg);
	ml_info("control port open");
	server_run(fd);
}
