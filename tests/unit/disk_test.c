/* tests/unit/disk_test.c - disk/: named volumes (names, atomic sparse create, list, remove,
 * copy keeping holes, mode, owner and mtime), --disk specs with the reference's messages and
 * ours (not ext4, a directory, truncated, corrupt, the workspace shadow), and the locks that
 * keep two sandboxes from writing one disk (and name the holder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk/disk.h"
#include "ext4/ext4.h"

static char dir[64], vols[96], holders[96];

static char *tpath(const char *name)
{
	static char p[4][160];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *make_volume(const char *name, long mb)
{
	struct ml_err e = { 0 };
	char *p = NULL;
	int r = volume_create(vols, name, mb, &p, &e);
	if (r != 0)
		fail_msg("create %s: %s", name, e.msg);
	return p;
}

#define assert_err(call, code, text)                                                     \
	do {                                                                               \
		struct ml_err e_ = { 0 };                                                  \
		int r_ = call;                                                             \
		if (r_ != (code) || strcmp(e_.msg, text) != 0)                             \
			fail_msg("wanted %d [%s], got %d [%s]", (code), (text), r_, e_.msg);  \
	} while (0)
#define E (&e_)

static void volume_names_follow_the_reference_rule(void **state)
{
	(void)state;
	char out[VOLUME_NAME_MAX + 1];
	struct ml_err e = { 0 };
	assert_int_equal(volume_name_check("  data-1.v_2 ", out, &e), 0);
	assert_string_equal(out, "data-1.v_2");
	assert_err(volume_name_check(" ", out, E), -EINVAL, "invalid volume name: name cannot be empty");
	assert_err(volume_name_check("-x", out, E), -EINVAL, "invalid volume name: \"-x\" (allowed: "
		   "alphanumeric, '_', '.', '-', must start with alphanumeric)");
	assert_err(volume_name_check("a/b", out, E), -EINVAL, "invalid volume name: \"a/b\" (allowed: "
		   "alphanumeric, '_', '.', '-', must start with alphanumeric)");
	assert_int_not_equal(volume_name_check("..", out, &e), 0);
}

static void create_makes_a_sparse_journaled_ext4_and_refuses_duplicates(void **state)
{
	(void)state;
	char *p = make_volume("v1", 1024);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1024LL << 20);
	assert_true(st.st_blocks * 512 < (2 << 20)); /* sparse: a 1 GiB volume takes < 2 MiB */
	struct ext4_probe_info pi;
	struct ml_err e = { 0 };
	assert_int_equal(ext4_probe(p, &pi, &e), 0);
	assert_true(pi.has_journal);
	assert_false(pi.needs_recovery);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", p);
	assert_int_equal(system(cmd), 0);
	char *dup = NULL;
	assert_err(volume_create(vols, " v1 ", 16, &dup, E), -EEXIST, "named volume already exists: v1");
	assert_err(volume_create(vols, "v2", 0, &dup, E), -EINVAL, "create named volume: size must be > 0 MB");
	assert_err(volume_create(vols, "v2", -5, &dup, E), -EINVAL, "create named volume: size must be > 0 MB");
	free(make_volume("tiny", 1)); /* below the journal's minimum: made without one */
	free(p);
}

static void concurrent_creates_of_one_name_leave_one_volume(void **state)
{
	(void)state;
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char *p = NULL;
			struct ml_err e = { 0 };
			_exit(volume_create(vols, "race", 64, &p, &e) == 0 ? 0 : (e.code == -EEXIST ? 1 : 2));
		}
	}
	int won = 0, lost = 0;
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(kids[i], &st, 0);
		won += WEXITSTATUS(st) == 0;
		lost += WEXITSTATUS(st) == 1;
	}
	assert_int_equal(won, 1);
	assert_int_equal(lost, 3);
	struct ext4_probe_info pi;
	struct ml_err e = { 0 };
	char p[160];
	snprintf(p, sizeof(p), "%s/race.ext4", vols);
	assert_int_equal(ext4_probe(p, &pi, &e), 0);
}

static void list_is_sorted_and_skips_temps_and_strangers(void **state)
{
	(void)state;
	free(make_volume("zeta", 16));
	free(make_volume("alpha", 32));
	char p[160];
	snprintf(p, sizeof(p), "%s/.tmp-999999-beta", vols); /* what a crashed create leaves */
	write_file(p, "x", 1);
	snprintf(p, sizeof(p), "%s/notes.txt", vols);
	write_file(p, "x", 1);
	snprintf(p, sizeof(p), "%s/adir.ext4", vols);
	mkdir(p, 0755);
	struct volume_info *v = NULL;
	size_t n = 0;
	struct ml_err e = { 0 };
	assert_int_equal(volume_list(vols, &v, &n, &e), 0);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(v[i - 1].name, v[i].name) < 0);
	bool alpha = false;
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(v[i].name, "tmp"));
		assert_string_not_equal(v[i].name, "adir");
		assert_string_not_equal(v[i].name, "notes.txt");
		if (!strcmp(v[i].name, "alpha")) {
			alpha = true;
			assert_int_equal(v[i].size, 32 << 20);
			assert_non_null(strstr(v[i].path, "/alpha.ext4"));
		}
	}
	assert_true(alpha);
	volume_list_free(v, n);
	/* the next create sweeps the temp file of the dead process */
	free(make_volume("sweeper", 8));
	snprintf(p, sizeof(p), "%s/.tmp-999999-beta", vols);
	assert_int_equal(access(p, F_OK), -1);
	struct volume_info *none = NULL;
	assert_int_equal(volume_list(tpath("missing-dir"), &none, &n, &e), 0);
	assert_int_equal(n, 0);
}

static void remove_refuses_missing_and_in_use_volumes(void **state)
{
	(void)state;
	char *p = make_volume("rmme", 16);
	struct disk_spec d = { p, "/data", false };
	struct disk_lock *l = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(disk_lock(&d, holders, "vm-0000abcd", &l, &e), 0);
	assert_err(volume_remove(vols, holders, "rmme", E), -EBUSY, "named volume rmme is in use by VM vm-0000abcd");
	disk_unlock(l);
	assert_int_equal(volume_remove(vols, holders, "rmme", &e), 0);
	assert_err(volume_remove(vols, holders, "rmme", E), -ENOENT, "named volume not found: rmme");
	free(p);
}

static void copy_keeps_bytes_holes_mode_owner_and_mtime(void **state)
{
	(void)state;
	char *src = make_volume("src", 256);
	/* data in the middle of the file, far from the filesystem's own blocks */
	int fd = open(src, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "payload", 7, 100 << 20), 7);
	close(fd);
	assert_int_equal(chmod(src, 02640), 0);
	uid_t uid = geteuid() == 0 ? 1234 : geteuid();
	gid_t gid = geteuid() == 0 ? 5678 : getegid();
	assert_int_equal(chown(src, uid, gid), 0);
	assert_int_equal(chmod(src, 02640), 0);
	struct timespec t[2] = { { 1000000000, 0 }, { 1234567890, 123456789 } };
	assert_int_equal(utimensat(AT_FDCWD, src, t, 0), 0);
	struct ml_err e = { 0 };
	assert_int_equal(volume_copy(vols, holders, "src", "dst", &e), 0);
	char dst[160], cmd[400];
	snprintf(dst, sizeof(dst), "%s/dst.ext4", vols);
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", src, dst);
	assert_int_equal(system(cmd), 0);
	struct stat a, b;
	assert_int_equal(stat(src, &a), 0);
	assert_int_equal(stat(dst, &b), 0);
	assert_int_equal(b.st_size, a.st_size);
	assert_int_equal(b.st_mode & 07777, 02640);
	assert_int_equal(b.st_uid, uid);
	assert_int_equal(b.st_gid, gid);
	assert_int_equal(b.st_mtim.tv_sec, 1234567890);
	assert_int_equal(b.st_mtim.tv_nsec, 123456789);
	assert_true(b.st_blocks <= a.st_blocks + 64); /* the holes stayed holes */
	free(src);
}

static void copy_errors_come_in_the_reference_order(void **state)
{
	(void)state;
	free(make_volume("c1", 16));
	free(make_volume("c2", 16));
	assert_err(volume_copy(vols, holders, "c1", " c1", E), -EINVAL,
		   "copy named volume: source and destination must be different");
	assert_err(volume_copy(vols, holders, "nope", "c9", E), -ENOENT, "named volume not found: nope");
	assert_err(volume_copy(vols, holders, "c1", "-bad", E), -EINVAL, "invalid volume name: \"-bad\" "
		   "(allowed: alphanumeric, '_', '.', '-', must start with alphanumeric)");
	assert_err(volume_copy(vols, holders, "c1", "c2", E), -EEXIST, "named volume already exists: c2");
	char p[160];
	snprintf(p, sizeof(p), "%s/c1.ext4", vols);
	struct disk_spec d = { p, "/x", false };
	struct disk_lock *l = NULL;
	struct ml_err e = { 0 };
	assert_int_equal(disk_lock(&d, holders, "vm-00c0ffee", &l, &e), 0);
	assert_err(volume_copy(vols, holders, "c1", "c3", E), -EBUSY, "copy named volume: c1 is in use by VM vm-00c0ffee");
	disk_unlock(l);
	/* a read-only user does not stop a copy */
	d.readonly = true;
	assert_int_equal(disk_lock(&d, holders, "vm-00c0ffee", &l, &e), 0);
	assert_int_equal(volume_copy(vols, holders, "c1", "c3", &e), 0);
	disk_unlock(l);
}

static int parse(const char *spec, const char *ws, struct disk_spec *d, struct ml_err *e)
{
	return disk_spec_parse(spec, vols, ws, d, e);
}

static void specs_give_the_reference_messages(void **state)
{
	(void)state;
	free(make_volume("sv", 16));
	struct disk_spec d;
	struct ml_err e = { 0 };
	assert_int_equal(parse(" @sv : /data : RO ", NULL, &d, &e), 0);
	assert_non_null(strstr(d.host_path, "/sv.ext4"));
	assert_string_equal(d.guest_mount, "/data");
	assert_true(d.readonly);
	disk_spec_clear(&d);
	assert_int_equal(parse("@sv:/data:readonly", NULL, &d, &e), 0);
	assert_true(d.readonly);
	disk_spec_clear(&d);
	assert_err(parse("x", NULL, &d, E), -EINVAL, "invalid disk mount \"x\": expected format "
		   "host_path:guest_mount[:ro] or @volume_name:guest_mount[:ro]");
	assert_err(parse(" :/a", NULL, &d, E), -EINVAL, "invalid disk mount \" :/a\": host_path and guest_mount are required");
	assert_err(parse("@sv:", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:\": host_path and guest_mount are required");
	assert_err(parse("@nope:/a", NULL, &d, E), -ENOENT, "invalid disk mount \"@nope:/a\": named volume not found: nope");
	assert_err(parse("@:/a", NULL, &d, E), -EINVAL, "invalid disk mount \"@:/a\": volume name is required after '@'");
	assert_err(parse("/no/such:/a", NULL, &d, E), -ENOENT, "invalid disk mount \"/no/such:/a\": host path does not exist: /no/such");
	assert_err(parse("@sv:data", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:data\": invalid guest mount "
		   "path \"data\": must be absolute and contain only alphanumeric, '/', '_', '.', '-'");
	assert_err(parse("@sv:/a b", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:/a b\": invalid guest mount "
		   "path \"/a b\": must be absolute and contain only alphanumeric, '/', '_', '.', '-'");
	assert_err(parse("@sv:/a:rw", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:/a:rw\": unknown disk option \"rw\" (use \"ro\")");
	assert_err(parse("@sv:/a:ro:x", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:/a:ro:x\": unknown disk option \"ro:x\" (use \"ro\")");
}

static void specs_refuse_what_the_guest_could_not_use(void **state)
{
	(void)state;
	struct disk_spec d;
	struct ml_err e = { 0 };
	char spec[300];
	assert_err(parse("@sv:/a/../etc", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:/a/../etc\": invalid "
		   "guest mount path \"/a/../etc\": must not contain \".\" or \"..\" components");
	assert_err(parse("@sv:/./a", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv:/./a\": invalid "
		   "guest mount path \"/./a\": must not contain \".\" or \"..\" components");
	assert_int_equal(parse("@sv:/a/.hidden/..x", NULL, &d, &e), 0);
	disk_spec_clear(&d);
	assert_err(parse("@sv://", NULL, &d, E), -EINVAL, "invalid disk mount \"@sv://\": invalid guest mount "
		   "path \"//\": must not be the root");
	snprintf(spec, sizeof(spec), "%s:/a", dir);
	assert_int_equal(parse(spec, NULL, &d, &e), -EISDIR);
	assert_non_null(strstr(e.msg, "host path is a directory, not a disk image"));
	write_file(tpath("notext4.img"), "hello", 5);
	assert_int_equal(truncate(tpath("notext4.img"), 8 << 20), 0);
	snprintf(spec, sizeof(spec), "%s:/a", tpath("notext4.img"));
	assert_int_equal(parse(spec, NULL, &d, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "is not an ext4 filesystem (Bad magic number in super-block)"));
	write_file(tpath("short.img"), "hello", 5);
	snprintf(spec, sizeof(spec), "%s:/a", tpath("short.img"));
	assert_int_equal(parse(spec, NULL, &d, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "is not an ext4 filesystem"));
	/* a volume cut short: its superblock promises more than the file holds */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s/sv.ext4 %s && truncate -s 8M %s", vols,
		 tpath("cut.img"), tpath("cut.img"));
	assert_int_equal(system(cmd), 0);
	snprintf(spec, sizeof(spec), "%s:/a", tpath("cut.img"));
	assert_int_equal(parse(spec, NULL, &d, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "is a corrupt ext4 filesystem (it claims 16777216 bytes, the file has 8388608"));
	/* group descriptors overwritten with garbage (block 1 of a 4 KiB-block filesystem) */
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s/sv.ext4 %s && dd if=/dev/urandom of=%s bs=4096 "
		 "seek=1 count=1 conv=notrunc 2>/dev/null", vols, tpath("gdt.img"), tpath("gdt.img"));
	assert_int_equal(system(cmd), 0);
	snprintf(spec, sizeof(spec), "%s:/a", tpath("gdt.img"));
	assert_int_equal(parse(spec, NULL, &d, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "is a corrupt ext4 filesystem"));
}

static void relative_paths_and_the_workspace_shadow(void **state)
{
	(void)state;
	struct disk_spec d;
	struct ml_err e = { 0 };
	char cwd[256];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(vols), 0);
	assert_int_equal(parse("sv.ext4:/data", NULL, &d, &e), 0);
	char want[200];
	snprintf(want, sizeof(want), "%s/sv.ext4", vols);
	assert_string_equal(d.host_path, want);
	disk_spec_clear(&d);
	assert_int_equal(chdir(cwd), 0);
	assert_err(parse("@sv:/workspace/cache", "/workspace", &d, E), -EINVAL, "invalid disk mount "
		   "\"@sv:/workspace/cache\": guest mount \"/workspace/cache\" is inside workspace \"/workspace\" "
		   "and will be shadowed by the VFS mount");
	assert_err(parse("@sv:/workspace", "/workspace/", &d, E), -EINVAL, "invalid disk mount "
		   "\"@sv:/workspace\": guest mount \"/workspace\" is inside workspace \"/workspace/\" and will "
		   "be shadowed by the VFS mount");
	assert_int_equal(parse("@sv:/workspace2", "/workspace", &d, &e), 0);
	disk_spec_clear(&d);
	assert_int_equal(parse("@sv:/data", "", &d, &e), 0);
	disk_spec_clear(&d);
	/* the rpc path: parts already apart */
	struct disk_spec r = { strdup("sv.ext4"), strdup("/x"), false };
	assert_int_equal(chdir(vols), 0);
	assert_int_equal(disk_spec_check(&r, NULL, &e), 0);
	assert_string_equal(r.host_path, want);
	assert_int_equal(chdir(cwd), 0);
	disk_spec_clear(&r);
}

static void sets_are_bounded_and_unique(void **state)
{
	(void)state;
	char p[160], link[160];
	snprintf(p, sizeof(p), "%s/sv.ext4", vols);
	snprintf(link, sizeof(link), "%s", tpath("sv-link.img"));
	assert_int_equal(symlink(p, link), 0);
	struct disk_spec d[DISK_MAX_EXTRA + 1];
	char mounts[DISK_MAX_EXTRA + 1][16];
	for (int i = 0; i <= DISK_MAX_EXTRA; i++) {
		snprintf(mounts[i], sizeof(mounts[i]), "/m%d", i);
		d[i] = (struct disk_spec){ p, mounts[i], true };
	}
	assert_err(disk_specs_check_set(d, DISK_MAX_EXTRA + 1, E), -E2BIG, "too many disks: 17 (at most 16)");
	struct disk_spec two[2] = { { p, "/a", true }, { link, "/b", true } };
	char want[400];
	snprintf(want, sizeof(want), "disk %s is attached twice", link);
	assert_err(disk_specs_check_set(two, 2, E), -EINVAL, want);
	char *other = make_volume("other", 16);
	struct disk_spec same[2] = { { p, "/a", true }, { other, "/a", true } };
	assert_err(disk_specs_check_set(same, 2, E), -EINVAL, "guest mount \"/a\" is used by two disks");
	free(other);
}

static void locks_share_readers_and_exclude_writers(void **state)
{
	(void)state;
	char *p = make_volume("locked", 16);
	struct disk_spec rw = { p, "/a", false }, ro = { p, "/a", true };
	struct disk_lock *l1 = NULL, *l2 = NULL, *l3 = NULL;
	struct ml_err e = { 0 };
	char want[300];
	snprintf(want, sizeof(want), "disk %s is in use by VM vm-11111111", p);
	assert_int_equal(disk_lock(&rw, holders, "vm-11111111", &l1, &e), 0);
	assert_err(disk_lock(&rw, holders, "vm-22222222", &l2, E), -EBUSY, want);
	assert_err(disk_lock(&ro, holders, "vm-22222222", &l2, E), -EBUSY, want);
	disk_unlock(l1);
	assert_int_equal(disk_lock(&ro, holders, "vm-22222222", &l2, &e), 0);
	assert_int_equal(disk_lock(&ro, holders, "vm-33333333", &l3, &e), 0);
	snprintf(want, sizeof(want), "disk %s is in use by VM vm-33333333", p);
	assert_err(disk_lock(&rw, holders, "vm-44444444", &l1, E), -EBUSY, want);
	disk_unlock(l3);
	disk_unlock(l2);
	assert_int_equal(disk_lock(&rw, holders, "vm-44444444", &l1, &e), 0);
	disk_unlock(l1);
	/* every note is gone once its holder let go */
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", holders);
	assert_int_equal(system(cmd), 0);
	/* a holder that left no note (another user, or one that crashed before writing it) */
	assert_int_equal(disk_lock(&rw, tpath("elsewhere"), "vm-55555555", &l1, &e), 0);
	snprintf(want, sizeof(want), "disk %s is in use by another sandbox", p);
	assert_err(disk_lock(&rw, holders, "vm-66666666", &l2, E), -EBUSY, want);
	disk_unlock(l1);
	free(p);
}

static void a_read_only_disk_needing_journal_replay_is_refused(void **state)
{
	(void)state;
	char *p = make_volume("dirty", 16);
	ext2_filsys fs = NULL;
	assert_int_equal(ext2fs_open(p, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	ext2fs_set_feature_journal_needs_recovery(fs->super);
	ext2fs_mark_super_dirty(fs);
	assert_int_equal(ext2fs_close_free(&fs), 0);
	struct disk_spec ro = { p, "/a", true }, rw = { p, "/a", false };
	struct disk_lock *l = NULL;
	char want[400];
	snprintf(want, sizeof(want), "disk %s was not unmounted cleanly (its journal needs replaying, which "
		 "a read-only disk cannot do): attach it read-write once to repair it", p);
	assert_err(disk_lock(&ro, holders, "vm-77777777", &l, E), -EUCLEAN, want);
	struct ml_err e = { 0 };
	assert_int_equal(disk_lock(&rw, holders, "vm-77777777", &l, &e), 0); /* the guest replays it */
	disk_unlock(l);
	free(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/disk-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(vols, sizeof(vols), "%s/volumes", dir);
	snprintf(holders, sizeof(holders), "%s/holders", dir);
	return mkdir(vols, 0700) || mkdir(holders, 0700);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(volume_names_follow_the_reference_rule),
		cmocka_unit_test(create_makes_a_sparse_journaled_ext4_and_refuses_duplicates),
		cmocka_unit_test(concurrent_creates_of_one_name_leave_one_volume),
		cmocka_unit_test(list_is_sorted_and_skips_temps_and_strangers),
		cmocka_unit_test(remove_refuses_missing_and_in_use_volumes),
		cmocka_unit_test(copy_keeps_bytes_holes_mode_owner_and_mtime),
		cmocka_unit_test(copy_errors_come_in_the_reference_order),
		cmocka_unit_test(specs_give_the_reference_messages),
		cmocka_unit_test(specs_refuse_what_the_guest_could_not_use),
		cmocka_unit_test(relative_paths_and_the_workspace_shadow),
		cmocka_unit_test(sets_are_bounded_and_unique),
		cmocka_unit_test(locks_share_readers_and_exclude_writers),
		cmocka_unit_test(a_read_only_disk_needing_journal_replay_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
