/* bench/floor_init.c - the floor for "boot to first command": an /init that powers the VM off
 * the moment the kernel runs it. Same kernel, engine, accelerator and devices as a sandbox. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
	reboot(RB_POWER_OFF);
	return 0;
}
