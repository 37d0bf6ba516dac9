/* tests/unit/vmm_test.c - vmm/: module closure, the initramfs archive and its cache, the
 * accelerator choice, the TSC frequency, the console capture and the engine's argv. No VM is
 * started here (tests/e2e does that). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cleanup.h"
#include "vmm/vmm.h"
#include "vmm/vmm_internal.h"

static char data_dir[300]; /* the fake data dir the tests point vmm_assets_find at */

/* ---- helpers: a fake data dir in a temp dir ---- */

static char tmpdir[256];

static void write_file(const char *rel, const void *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	for (char *s = strchr(path + strlen(tmpdir) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(path, 0755);
		*s = '/';
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void write_str(const char *rel, const char *s) { write_file(rel, s, strlen(s)); }

static const char fake_dep[] =
	"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_ring.ko:\n"
	"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko "
	"kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
	"kernel/net/core/failover.ko:\n"
	"kernel/fs/overlayfs/overlay.ko:\n"
	"kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/fs/fuse/fuse.ko:\n";

static const char *const expected_order[] = {
	"virtio_ring.ko", "virtio.ko", "virtio_mmio.ko", "virtio_blk.ko", "virtio_console.ko",
	"failover.ko", "net_failover.ko", "virtio_net.ko", "overlay.ko", "virtio-rng.ko", "fuse.ko", NULL,
};

static int setup_data_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmm_test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	write_str("data/kernel/version", "6.1.0-test\n");
	write_str("data/kernel/vmlinuz", "not really a kernel");
	write_str("data/kernel/modules/modules.dep", fake_dep);
	char *save = NULL, *dep = strdup(fake_dep);
	for (char *l = strtok_r(dep, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		*strchr(l, ':') = '\0';
		char rel[256];
		snprintf(rel, sizeof(rel), "data/kernel/modules/%s", l);
		write_str(rel, strrchr(l, '/') + 1); /* content = its own file name */
	}
	free(dep);
	write_str("data/agent", "#!agent v1\n");
	char data[300];
	snprintf(data, sizeof(data), "%s/data", tmpdir);
	snprintf(data_dir, sizeof(data_dir), "%s", data);
	return 0;
}

static int teardown_data_dir(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- modules.dep closure ---- */

static void closure_puts_dependencies_first_once_each(void **state)
{
	(void)state;
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/data/kernel/modules", tmpdir);
	_cleanup_strv_ char **paths = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(vmm_modules_closure(dir, vmm_needed_modules, &paths, &e), 0);
	size_t i = 0;
	for (; paths[i]; i++) {
		assert_non_null(expected_order[i]);
		assert_string_equal(strrchr(paths[i], '/') + 1, expected_order[i]);
	}
	assert_null(expected_order[i]);
}

static void closure_matches_dash_and_underscore(void **state)
{
	(void)state;
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/data/kernel/modules", tmpdir);
	const char *names[] = { "virtio-rng", NULL };
	_cleanup_strv_ char **paths = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(vmm_modules_closure(dir, names, &paths, &e), 0);
	assert_string_equal(paths[0], "kernel/drivers/virtio/virtio_ring.ko");
	assert_string_equal(paths[1], "kernel/drivers/virtio/virtio.ko");
	assert_string_equal(paths[2], "kernel/drivers/char/hw_random/virtio-rng.ko");
	assert_null(paths[3]);
}

static void closure_reports_unknown_module(void **state)
{
	(void)state;
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/data/kernel/modules", tmpdir);
	const char *names[] = { "virtio_blk", "no_such_mod", NULL };
	char **paths = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(vmm_modules_closure(dir, names, &paths, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "no_such_mod"));
	assert_null(paths);
}

static void closure_reports_cycle_and_dangling_dep(void **state)
{
	(void)state;
	write_str("cyc/modules.dep", "a.ko: b.ko\nb.ko: a.ko\nc.ko: gone.ko\n");
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/cyc", tmpdir);
	char **paths = NULL;
	struct ml_err e = { 0 };
	const char *a[] = { "a", NULL }, *c[] = { "c", NULL };
	assert_int_equal(vmm_modules_closure(dir, a, &paths, &e), -ELOOP);
	assert_int_equal(vmm_modules_closure(dir, c, &paths, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "gone.ko"));
}

static void closure_of_the_real_kernel(void **state)
{
	(void)state;
	const char *dir = "build/lib/matchlock/kernel/modules";
	if (access("build/lib/matchlock/kernel/modules/modules.dep", R_OK) < 0)
		skip();
	_cleanup_strv_ char **paths = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(vmm_modules_closure(dir, vmm_needed_modules, &paths, &e), 0);
	size_t n = 0;
	while (paths[n])
		n++;
	assert_int_equal(n, 11);
	assert_string_equal(strrchr(paths[0], '/') + 1, "virtio_ring.ko");
	assert_string_equal(strrchr(paths[10], '/') + 1, "fuse.ko"); /* the workspace's FUSE client */
}

/* ---- the archive: parse the newc headers back ---- */

struct entry {
	char name[128];
	unsigned mode, rmaj, rmin;
	size_t size;
	const char *data;
};

static unsigned hex8(const char *p)
{
	char tmp[9];
	memcpy(tmp, p, 8);
	tmp[8] = '\0';
	return (unsigned)strtoul(tmp, NULL, 16);
}

/* Returns the number of entries before the trailer, or -1 if the archive is malformed. */
static int parse_newc(const char *buf, size_t len, struct entry *out, int max)
{
	size_t off = 0;
	for (int n = 0; n < max; n++) {
		if (off + 110 > len || memcmp(buf + off, "070701", 6) != 0)
			return -1;
		const char *h = buf + off;
		size_t namesize = hex8(h + 94), size = hex8(h + 54);
		if (off + 110 + namesize > len || namesize == 0 || namesize > sizeof(out[n].name))
			return -1;
		memcpy(out[n].name, h + 110, namesize);
		if (out[n].name[namesize - 1] != '\0')
			return -1;
		if (!strcmp(out[n].name, "TRAILER!!!"))
			return (len % 512 == 0) ? n : -1;
		off = (off + 110 + namesize + 3) & ~(size_t)3;
		if (off + size > len)
			return -1;
		out[n].mode = hex8(h + 14);
		out[n].rmaj = hex8(h + 78);
		out[n].rmin = hex8(h + 86);
		out[n].size = size;
		out[n].data = buf + off;
		off = (off + size + 3) & ~(size_t)3;
	}
	return -1;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static const struct entry *find_entry(const struct entry *es, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(es[i].name, name))
			return &es[i];
	return NULL;
}

static char *build_initramfs(void)
{
	struct vmm_assets a;
	struct ml_err e = { 0 };
	struct vmm_asset_paths p = { .data_dir = data_dir };
	assert_int_equal(vmm_assets_find(&p, &a, &e), 0);
	assert_string_equal(a.kver, "6.1.0-test");
	char cache[300], *path = NULL;
	snprintf(cache, sizeof(cache), "%s/cache", tmpdir);
	int r = vmm_initramfs(&a, cache, &path, &e);
	if (r < 0)
		print_error("vmm_initramfs: %s\n", e.msg);
	assert_int_equal(r, 0);
	vmm_assets_free(&a);
	return path;
}

static void initramfs_holds_init_modules_and_console(void **state)
{
	(void)state;
	_cleanup_free_ char *path = build_initramfs();
	size_t len;
	_cleanup_free_ char *buf = slurp(path, &len);
	struct entry es[64];
	int n = parse_newc(buf, len, es, 64);
	assert_true(n > 0);

	const struct entry *init = find_entry(es, n, "init");
	assert_non_null(init);
	assert_int_equal(init->mode, S_IFREG | 0755);
	assert_int_equal(init->size, strlen("#!agent v1\n"));
	assert_memory_equal(init->data, "#!agent v1\n", init->size);

	const struct entry *con = find_entry(es, n, "dev/console");
	assert_non_null(con);
	assert_true(S_ISCHR(con->mode));
	assert_int_equal(con->rmaj, 5);
	assert_int_equal(con->rmin, 1);
	static const char *const dirs[] = { "dev", "proc", "sys", "mnt", "lib", "lib/modules" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		const struct entry *d = find_entry(es, n, dirs[i]);
		assert_non_null(d);
		assert_true(S_ISDIR(d->mode));
	}

	char want[512] = "";
	for (size_t i = 0; expected_order[i]; i++) {
		char name[128];
		snprintf(name, sizeof(name), "lib/modules/%s", expected_order[i]);
		const struct entry *m = find_entry(es, n, name);
		assert_non_null(m);
		assert_int_equal(m->size, strlen(expected_order[i]));
		assert_memory_equal(m->data, expected_order[i], m->size);
		strcat(want, expected_order[i]);
		strcat(want, "\n");
	}
	const struct entry *order = find_entry(es, n, "modules.order");
	assert_non_null(order);
	assert_int_equal(order->size, strlen(want));
	assert_memory_equal(order->data, want, order->size);
	assert_null(find_entry(es, n, "lib/modules/virtiofs.ko"));
}

static void initramfs_lists_with_the_cpio_tool(void **state)
{
	(void)state;
	if (access("/usr/bin/cpio", X_OK) < 0)
		skip();
	_cleanup_free_ char *path = build_initramfs();
	char cmd[600], line[256];
	snprintf(cmd, sizeof(cmd), "cpio -it --quiet < '%s'", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	int n = 0, init = 0;
	while (fgets(line, sizeof(line), p)) {
		n++;
		init |= !strcmp(line, "init\n");
	}
	assert_int_equal(pclose(p), 0);
	assert_true(init);
	assert_int_equal(n, 6 + 1 + 1 + 11 + 1); /* dirs, console, init, modules, order */
}

static void initramfs_cache_is_reused_until_the_agent_changes(void **state)
{
	(void)state;
	_cleanup_free_ char *first = build_initramfs();
	struct stat st1, st2;
	assert_int_equal(stat(first, &st1), 0);
	_cleanup_free_ char *again = build_initramfs();
	assert_string_equal(first, again);
	assert_int_equal(stat(again, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino); /* not rebuilt */

	write_str("data/agent", "#!agent v2\n");
	_cleanup_free_ char *second = build_initramfs();
	assert_string_not_equal(first, second);
	assert_int_equal(access(first, F_OK), 0); /* recently used: kept */

	/* once the old one has not been used for an hour, the next build sweeps it */
	struct timespec old[2] = { { .tv_sec = time(NULL) - 3600 }, { .tv_sec = time(NULL) - 3600 } };
	assert_int_equal(utimensat(AT_FDCWD, first, old, 0), 0);
	_cleanup_free_ char *third = build_initramfs();
	assert_string_equal(second, third);
	assert_int_equal(access(first, F_OK), -1);
	write_str("data/agent", "#!agent v1\n");
}

static void assets_name_the_setup_step(void **state)
{
	(void)state;
	struct vmm_assets a;
	struct ml_err e = { 0 };
	struct vmm_asset_paths p = { .data_dir = data_dir, .kernel = "/nonexistent/vmlinuz" };
	assert_int_equal(vmm_assets_find(&p, &a, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "guest kernel not found at /nonexistent/vmlinuz"));
	assert_non_null(strstr(e.msg, "scripts/setup.sh"));
	p = (struct vmm_asset_paths){ .data_dir = data_dir, .agent = "/nonexistent/agent" };
	assert_int_equal(vmm_assets_find(&p, &a, &e), -ENOENT);
	assert_string_equal(e.msg, "guest agent not found at /nonexistent/agent: run `make`");
}

/* ---- accelerator, TSC ---- */

static void accel_env_overrides(void **state)
{
	(void)state;
	char reason[256];
	assert_int_equal(vmm_accel_choose("tcg", reason, sizeof(reason)), VMM_ACCEL_TCG);
	assert_non_null(strstr(reason, "MATCHLOCK_ACCEL=tcg"));
	assert_int_equal(vmm_accel_choose("kvm", reason, sizeof(reason)), VMM_ACCEL_KVM);
	enum vmm_accel a = vmm_accel_choose("warp", reason, sizeof(reason));
	assert_true(a == VMM_ACCEL_KVM || a == VMM_ACCEL_TCG);
	assert_non_null(strstr(reason, "not understood"));
	a = vmm_accel_choose(NULL, reason, sizeof(reason));
	assert_true(!strncmp(reason, a == VMM_ACCEL_KVM ? "kvm: " : "tcg: ", 5));
	assert_null(strchr(reason, '\n'));
}

static void tsc_khz_is_known_here(void **state)
{
	(void)state;
	unsigned long khz = vmm_host_tsc_khz();
	assert_true(khz > 100000);    /* > 100 MHz */
	assert_true(khz < 10000000);  /* < 10 GHz */
}

/* ---- console ---- */

static void console_tail_is_bounded_whole_lines_and_printable(void **state)
{
	(void)state;
	struct vmm_console c;
	vmm_console_init(&c, -1, NULL);
	assert_string_equal(vmm_console_tail_of(&c), "");
	char line[64];
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(line, sizeof(line), "line %d \x1b[31mred\r\n", i);
		vmm_console_feed(&c, line, (size_t)n);
	}
	const char *t = vmm_console_tail_of(&c);
	assert_true(strlen(t) <= VMM_CONSOLE_TAIL);
	assert_true(strlen(t) > VMM_CONSOLE_TAIL / 2);
	assert_true(!strncmp(t, "line ", 5));
	assert_null(strchr(t, '\x1b'));
	assert_null(strchr(t, '\r'));
	assert_non_null(strstr(t, "line 999 ?[31mred"));
	assert_true(t[strlen(t) - 1] != '\n');
	/* 8-bit CSI raw and UTF-8 encoded, an OSC title, and text that must stay */
	const char tricky[] = "\x9b" "2J \xc2\x9b" "2J \x1b]0;owned\x07 caf\xc3\xa9\n";
	vmm_console_feed(&c, tricky, sizeof(tricky) - 1);
	t = vmm_console_tail_of(&c);
	assert_non_null(strstr(t, "\nline 999 ?[31mred\n?2J ?2J ?]0;owned? caf\xc3\xa9"));
}

static void console_log_stops_at_the_budget(void **state)
{
	(void)state;
	char path[300];
	snprintf(path, sizeof(path), "%s/console.log", tmpdir);
	struct ml_logger *lg = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(ml_logger_open(path, 100, &lg, &e), 0);
	struct vmm_console c;
	vmm_console_init(&c, -1, lg);
	char junk[70];
	memset(junk, 'x', sizeof(junk));
	for (int i = 0; i < 100; i++)
		vmm_console_feed(&c, junk, sizeof(junk));
	ml_logger_printf(lg, ML_LOG_INFO, "a line after the budget is dropped too");
	struct ml_logger_stats st;
	ml_logger_stats(lg, &st);
	assert_int_equal(st.written, 100);
	assert_true(st.dropped > 100 * 70 - 100);
	ml_logger_close(lg);
	size_t len;
	_cleanup_free_ char *got = slurp(path, &len);
	const char *line = "\n[matchlock: vm.log reached its size budget; further output is dropped]\n";
	assert_int_equal(len, 100 + strlen(line));
	assert_memory_equal(got + 100, line, strlen(line));
}

static void console_read_drains_a_pipe_and_reports_eof(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	struct vmm_console c;
	vmm_console_init(&c, p[0], NULL);
	assert_int_equal(write(p[1], "booted\n", 7), 7);
	assert_int_equal(vmm_console_read(&c), 0);
	assert_string_equal(vmm_console_tail_of(&c), "booted");
	close(p[1]);
	assert_int_equal(vmm_console_read(&c), -EPIPE);
	close(p[0]);
}

/* ---- argv ---- */

static bool argv_has(char **argv, const char *a, const char *b)
{
	for (size_t i = 0; argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], a) && (!b || !strcmp(argv[i + 1], b)))
			return true;
	return false;
}

static void argv_has_devices_and_escapes_commas(void **state)
{
	(void)state;
	struct vmm_config c = { .state_dir = "/s", .kernel = "/k", .initrd = "/i",
				.rootfs = "/r,oot", .scratch = "/scr", .vcpus = 2, .mem_mb = 512,
				.accel = VMM_ACCEL_TCG };
	_cleanup_strv_ char **argv = NULL;
	struct ml_err e = { 0 };
	const char *paths[VMM_CHAN_COUNT] = { [VMM_CHAN_CTL] = "/s/ctl.sock" };
	assert_int_equal(vmm_qemu_argv(&c, "/usr/bin/qemu", paths, 2096016, &argv, &e), 0);
	assert_string_equal(argv[0], "/usr/bin/qemu");
	assert_true(argv_has(argv, "-M", "microvm"));
	assert_true(argv_has(argv, "-accel", "tcg,thread=multi"));
	assert_true(argv_has(argv, "-cpu", "max"));
	assert_true(argv_has(argv, "-m", "512M"));
	assert_true(argv_has(argv, "-smp", "2"));
	assert_true(argv_has(argv, "-drive", "id=rootfs,file=/r,,oot,format=raw,if=none,readonly=on"));
	assert_true(argv_has(argv, "-chardev", "socket,id=ctl,path=/s/ctl.sock,server=off"));
	assert_true(argv_has(argv, "-device", "virtserialport,chardev=ctl,name=org.matchlock.ctl"));
	assert_false(argv_has(argv, "-netdev", NULL));
	assert_false(argv_has(argv, "-chardev", "socket,id=files,path=/s/files.sock,server=off"));
	for (size_t i = 0; argv[i]; i++)
		if (!strcmp(argv[i], "-append"))
			assert_non_null(strstr(argv[i + 1], "tsc_early_khz=2096016"));
	_cleanup_free_ char *line = vmm_argv_line(argv);
	assert_non_null(strstr(line, "-append 'console=ttyS0 "));

	c.accel = VMM_ACCEL_KVM;
	_cleanup_strv_ char **kvm = NULL;
	assert_int_equal(vmm_qemu_argv(&c, "q", paths, 0, &kvm, &e), 0);
	assert_true(argv_has(kvm, "-accel", "kvm"));
	assert_true(argv_has(kvm, "-cpu", "host"));
	for (size_t i = 0; kvm[i]; i++)
		assert_null(strstr(kvm[i], "tsc_early_khz"));
}

static void argv_network_stream_or_baseline(void **state)
{
	(void)state;
	struct vmm_config c = { .state_dir = "/s", .kernel = "/k", .initrd = "/i", .rootfs = "/r",
				.scratch = "/scr", .vcpus = 1, .mem_mb = 256, .accel = VMM_ACCEL_TCG,
				.network = true };
	_cleanup_strv_ char **s = NULL, **u = NULL;
	struct ml_err e = { 0 };
	const char *paths[VMM_CHAN_COUNT] = { [VMM_CHAN_CTL] = "/s/ctl.sock", [VMM_CHAN_NET] = "/s/n,et.sock" };
	assert_int_equal(vmm_qemu_argv(&c, "q", paths, 0, &s, &e), 0);
	assert_true(argv_has(s, "-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=/s/n,,et.sock"));
	assert_true(argv_has(s, "-device", "virtio-net-device,netdev=n0,mac=" VMM_GUEST_MAC));
	paths[VMM_CHAN_NET] = NULL;
	assert_int_equal(vmm_qemu_argv(&c, "q", paths, 0, &u, &e), 0);
	assert_true(argv_has(u, "-netdev", "user,id=n0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3"));
}

static void argv_extra_drives_raw_ro_and_reported_errors(void **state)
{
	(void)state;
	const struct vmm_drive d[] = { { "/v/a,b.ext4", "disk0", false }, { "/v/ro.ext4", "disk1", true } };
	struct vmm_config c = { .state_dir = "/s", .kernel = "/k", .initrd = "/i", .rootfs = "/r",
				.scratch = "/scr", .vcpus = 1, .mem_mb = 256, .accel = VMM_ACCEL_TCG,
				.drives = d, .n_drives = 2 };
	_cleanup_strv_ char **a = NULL;
	struct ml_err e = { 0 };
	const char *paths[VMM_CHAN_COUNT] = { [VMM_CHAN_CTL] = "/s/ctl.sock" };
	assert_int_equal(vmm_qemu_argv(&c, "q", paths, 0, &a, &e), 0);
	assert_true(argv_has(a, "-drive", "id=xd0,file=/v/a,,b.ext4,format=raw,if=none,discard=unmap,"
			     "werror=report,rerror=report"));
	assert_true(argv_has(a, "-device", "virtio-blk-device,drive=xd0,serial=disk0"));
	assert_true(argv_has(a, "-drive", "id=xd1,file=/v/ro.ext4,format=raw,if=none,readonly=on,"
			     "werror=report,rerror=report"));
	assert_true(argv_has(a, "-device", "virtio-blk-device,drive=xd1,serial=disk1"));
	assert_true(argv_has(a, "-drive", "id=scratch,file=/scr,format=raw,if=none,cache=unsafe,"
			     "discard=unmap,werror=report"));
}

/* Every channel of the table is a socket the engine connects to: the files channel is one more
 * virtio-serial port beside the control port, named for the guest to find. */
static void argv_files_channel_is_a_second_port(void **state)
{
	(void)state;
	struct vmm_config c = { .state_dir = "/s", .kernel = "/k", .initrd = "/i", .rootfs = "/r",
				.scratch = "/scr", .vcpus = 1, .mem_mb = 256, .accel = VMM_ACCEL_TCG,
				.files = true };
	const char *paths[VMM_CHAN_COUNT] = { [VMM_CHAN_CTL] = "/s/ctl.sock", [VMM_CHAN_FILES] = "/s/files.sock" };
	_cleanup_strv_ char **a = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(vmm_qemu_argv(&c, "q", paths, 0, &a, &e), 0);
	assert_true(argv_has(a, "-chardev", "socket,id=ctl,path=/s/ctl.sock,server=off"));
	assert_true(argv_has(a, "-chardev", "socket,id=files,path=/s/files.sock,server=off"));
	assert_true(argv_has(a, "-device", "virtserialport,chardev=files,name=org.matchlock.files"));
	size_t serial_devices = 0;
	for (size_t i = 0; a[i]; i++)
		serial_devices += !strcmp(a[i], "virtio-serial-device");
	assert_int_equal(serial_devices, 1);
	assert_string_equal(vmm_chans[VMM_CHAN_FILES].sock, "files.sock");
	assert_true(vmm_chans[VMM_CHAN_FILES].wanted(&c));
	c.files = false;
	assert_false(vmm_chans[VMM_CHAN_FILES].wanted(&c));
	assert_true(vmm_chans[VMM_CHAN_CTL].wanted(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(closure_puts_dependencies_first_once_each),
		cmocka_unit_test(closure_matches_dash_and_underscore),
		cmocka_unit_test(closure_reports_unknown_module),
		cmocka_unit_test(closure_reports_cycle_and_dangling_dep),
		cmocka_unit_test(closure_of_the_real_kernel),
		cmocka_unit_test(initramfs_holds_init_modules_and_console),
		cmocka_unit_test(initramfs_lists_with_the_cpio_tool),
		cmocka_unit_test(initramfs_cache_is_reused_until_the_agent_changes),
		cmocka_unit_test(assets_name_the_setup_step),
		cmocka_unit_test(accel_env_overrides),
		cmocka_unit_test(tsc_khz_is_known_here),
		cmocka_unit_test(argv_network_stream_or_baseline),
		cmocka_unit_test(console_tail_is_bounded_whole_lines_and_printable),
		cmocka_unit_test(console_log_stops_at_the_budget),
		cmocka_unit_test(console_read_drains_a_pipe_and_reports_eof),
		cmocka_unit_test(argv_has_devices_and_escapes_commas),
		cmocka_unit_test(argv_extra_drives_raw_ro_and_reported_errors),
		cmocka_unit_test(argv_files_channel_is_a_second_port),
	};
	return cmocka_run_group_tests(tests, setup_data_dir, teardown_data_dir);
}
