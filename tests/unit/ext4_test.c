/* tests/unit/ext4_test.c - the ext4 writer: every entry type keeps its metadata, removal and
 * opaque directories free what they should, hostile paths are refused, big directories are
 * indexed (htree) and built in linear time, and e2fsck agrees the result is a clean filesystem. Images are read back with libext2fs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ext2fs/ext2fs.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ext4/ext4.h"

static char dir[64];

static char *tpath(const char *name)
{
	static char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static int fsck_clean(const char *img)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", img);
	return system(cmd);
}

static ext2_filsys open_ro(const char *img)
{
	ext2_filsys fs = NULL;
	assert_int_equal(ext2fs_open(img, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	return fs;
}

static int stat_path(ext2_filsys fs, const char *path, ext2_ino_t *ino, struct ext2_inode_large *in)
{
	errcode_t rc = ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
	if (rc)
		return -1;
	return ext2fs_read_inode_full(fs, *ino, (struct ext2_inode *)in, sizeof(*in)) ? -1 : 0;
}

struct mem { const char *p; size_t left; };
static ssize_t mem_read(void *ctx, void *buf, size_t len, struct ml_err *e)
{
	(void)e;
	struct mem *m = ctx;
	if (len > m->left)
		len = m->left;
	memcpy(buf, m->p, len);
	m->p += len;
	m->left -= len;
	return (ssize_t)len;
}

static void add_ok(struct ext4_img *img, struct ext4_entry ent)
{
	struct ml_err e = {0};
	int r = ext4_add(img, &ent, &e);
	if (r != 0)
		fail_msg("add %s: %d %s", ent.path, r, e.msg);
}

static void empty_scratch_disk_is_fast_sparse_and_clean(void **state)
{
	(void)state;
	struct ml_err e = {0};
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(ext4_make_empty(tpath("scratch.img"), 5ULL << 30, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	struct stat st;
	assert_int_equal(stat(tpath("scratch.img"), &st), 0);
	assert_int_equal(st.st_size, 5LL << 30);
	assert_true(st.st_blocks * 512 < (16 << 20)); /* sparse */
	assert_true(ms < 1000);
	assert_int_equal(fsck_clean(tpath("scratch.img")), 0);
	print_message("5 GiB empty image: %.1f ms, %lld KiB on disk\n", ms, (long long)st.st_blocks / 2);
}

static void every_entry_type_keeps_its_metadata(void **state)
{
	(void)state;
	struct ml_err e = {0};
	struct ext4_img *img;
	const char *path = tpath("types.img");
	assert_int_equal(ext4_create(path, 64 << 20, 0, &img, &e), 0);
	static char data[70000];
	memset(data, 'a', sizeof(data));
	memset(data + 4096, 0, 8192 * 2); /* two zero blocks: become a hole */
	struct mem m = { data, sizeof(data) };
	struct ext4_xattr xs[] = { { "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20 },
				   { "user.color", "blue", 4 } };
	add_ok(img, (struct ext4_entry){ .path = "usr/bin/", .mode = S_IFDIR | 0755, .mtime = 100 });
	add_ok(img, (struct ext4_entry){ .path = "./usr/bin/ping", .mode = S_IFREG | 04711, .uid = 1000,
					 .gid = 100000, .mtime = 1700000000, .read = mem_read, .read_ctx = &m,
					 .xattrs = xs, .n_xattrs = 2 });
	add_ok(img, (struct ext4_entry){ .path = "tmp", .mode = S_IFDIR | 01777 });
	add_ok(img, (struct ext4_entry){ .path = "bin/sh", .mode = S_IFLNK | 0777, .symlink_target = "/usr/bin/ping" });
	char longt[400];
	memset(longt, 'x', sizeof(longt) - 1);
	longt[sizeof(longt) - 1] = 0;
	add_ok(img, (struct ext4_entry){ .path = "bin/long", .mode = S_IFLNK | 0777, .symlink_target = longt });
	add_ok(img, (struct ext4_entry){ .path = "dev/null", .mode = S_IFCHR | 0666, .rdev_major = 1, .rdev_minor = 3 });
	add_ok(img, (struct ext4_entry){ .path = "dev/nvme", .mode = S_IFBLK | 0660, .gid = 6, .rdev_major = 259, .rdev_minor = 300 });
	add_ok(img, (struct ext4_entry){ .path = "run/fifo", .mode = S_IFIFO | 0600 });
	add_ok(img, (struct ext4_entry){ .path = "run/sock", .mode = S_IFSOCK | 0755 });
	add_ok(img, (struct ext4_entry){ .path = "srv", .mode = S_IFDIR | 02775, .gid = 50 });
	assert_int_equal(ext4_add_hardlink(img, "usr/bin/ping6", "usr/bin/ping", &e), 0);
	assert_int_equal(ext4_finish(img, &e), 0);
	assert_int_equal(fsck_clean(path), 0);

	ext2_filsys fs = open_ro(path);
	ext2_ino_t ino, ino2;
	struct ext2_inode_large in;
	assert_int_equal(stat_path(fs, "usr/bin/ping", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFREG | 04711);
	assert_int_equal(inode_uid(in), 1000);
	assert_int_equal(inode_gid(in), 100000);
	assert_int_equal(in.i_mtime, 1700000000);
	assert_int_equal(EXT2_I_SIZE(&in), sizeof(data));
	assert_int_equal(in.i_links_count, 2);
	assert_true(in.i_blocks * 512 < sizeof(data)); /* the zero blocks are a hole */
	assert_int_equal(stat_path(fs, "usr/bin/ping6", &ino2, &in), 0);
	assert_int_equal(ino, ino2);
	struct ext2_xattr_handle *h;
	void *val;
	size_t vlen;
	assert_int_equal(ext2fs_xattrs_open(fs, ino, &h), 0);
	assert_int_equal(ext2fs_xattrs_read(h), 0);
	assert_int_equal(ext2fs_xattr_get(h, "user.color", &val, &vlen), 0);
	assert_memory_equal(val, "blue", 4);
	free(val);
	assert_int_equal(ext2fs_xattr_get(h, "security.capability", &val, &vlen), 0);
	assert_int_equal(vlen, 20);
	free(val);
	ext2fs_xattrs_close(&h);
	/* file contents round-trip */
	ext2_file_t f;
	static char back[70000];
	unsigned got = 0;
	assert_int_equal(ext2fs_file_open(fs, ino, 0, &f), 0);
	assert_int_equal(ext2fs_file_read(f, back, sizeof(back), &got), 0);
	ext2fs_file_close(f);
	assert_int_equal(got, sizeof(data));
	assert_memory_equal(back, data, sizeof(data));

	assert_int_equal(stat_path(fs, "tmp", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 01777);
	assert_int_equal(stat_path(fs, "srv", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 02775);
	assert_int_equal(stat_path(fs, "dev/null", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFCHR | 0666);
	assert_int_equal(in.i_block[0], 0x103);
	assert_int_equal(stat_path(fs, "dev/nvme", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFBLK | 0660);
	assert_int_equal(in.i_block[1], (300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12));
	assert_int_equal(stat_path(fs, "run/fifo", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFIFO | 0600);
	assert_int_equal(stat_path(fs, "run/sock", &ino, &in), 0);
	assert_int_equal(in.i_mode, S_IFSOCK | 0755);
	char link[512] = {0};
	assert_int_equal(ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "bin/sh", &ino), 0);
	assert_int_equal(ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&in, sizeof(in)), 0);
	assert_int_equal(in.i_mode & S_IFMT, S_IFLNK);
	assert_int_equal(EXT2_I_SIZE(&in), strlen("/usr/bin/ping"));
	memcpy(link, in.i_block, EXT2_I_SIZE(&in)); /* fast symlink: text in the inode */
	assert_string_equal(link, "/usr/bin/ping");
	assert_int_equal(stat_path(fs, "bin/long", &ino, &in), 0);
	assert_int_equal(EXT2_I_SIZE(&in), 399);
	assert_true(in.i_blocks > 0);
	ext2fs_close_free(&fs);
}

static void hostile_paths_are_refused(void **state)
{
	(void)state;
	struct ml_err e = {0};
	struct ext4_img *img;
	assert_int_equal(ext4_create(tpath("hostile.img"), 16 << 20, 0, &img, &e), 0);
	add_ok(img, (struct ext4_entry){ .path = "etc", .mode = S_IFLNK | 0777, .symlink_target = "/host/etc" });
	add_ok(img, (struct ext4_entry){ .path = "a/b/c", .mode = S_IFREG | 0644 });
	add_ok(img, (struct ext4_entry){ .path = "a/../d/./e//f", .mode = S_IFREG | 0644 });
	uint32_t ino, mode;
	assert_int_equal(ext4_lookup(img, "d/e/f", &ino, &mode, &e), 0);
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "../x", .mode = S_IFREG | 0644 }, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "escapes the image root"));
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "a/../../x", .mode = S_IFREG }, &e), -EINVAL);
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "etc/passwd", .mode = S_IFREG | 0644 }, &e), -ELOOP);
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "a/b/c/d", .mode = S_IFREG }, &e), -ENOTDIR);
	assert_int_equal(ext4_add_hardlink(img, "x", "missing", &e), -ENOENT);
	assert_int_equal(ext4_add_hardlink(img, "x", "../a/b/c", &e), -ENOENT);
	assert_int_equal(ext4_add_hardlink(img, "x", "a", &e), -EPERM);
	assert_int_equal(ext4_add_hardlink(img, "x", "etc/passwd", &e), -ENOENT);
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "/", .mode = S_IFREG }, &e), -EINVAL);
	assert_int_equal(ext4_finish(img, &e), 0);
	assert_int_equal(fsck_clean(tpath("hostile.img")), 0);
}

static void removal_and_opaque_dirs_free_space(void **state)
{
	(void)state;
	struct ml_err e = {0};
	struct ext4_img *img;
	const char *path = tpath("remove.img");
	assert_int_equal(ext4_create(path, 64 << 20, 0, &img, &e), 0);
	uint64_t free0, ifree0;
	ext4_free_space(img, &free0, &ifree0);
	static char data[200000];
	memset(data, 'z', sizeof(data));
	for (int i = 0; i < 2000; i++) {
		char p[64];
		snprintf(p, sizeof(p), "big/dir%d/file%04d", i % 3, i);
		struct mem m = { data, i % 50 == 0 ? sizeof(data) : 10 };
		add_ok(img, (struct ext4_entry){ .path = p, .mode = S_IFREG | 0644, .read = mem_read, .read_ctx = &m });
	}
	assert_int_equal(ext4_add_hardlink(img, "keep", "big/dir0/file0000", &e), 0);
	assert_int_equal(ext4_remove(img, "big", &e), 0);
	assert_int_equal(ext4_remove(img, "big", &e), -ENOENT);
	uint32_t ino;
	assert_int_equal(ext4_lookup(img, "keep", &ino, NULL, &e), 0);
	assert_int_equal(ext4_remove(img, "keep", &e), 0);
	uint64_t free1, ifree1;
	ext4_free_space(img, &free1, &ifree1);
	assert_true(free1 + 8 * 4096 >= free0); /* only the root directory may have grown */
	assert_int_equal(ifree1, ifree0);

	/* layer 1: o/old, o/sub/old; layer 2 writes o/new and o/sub/new, then marks o opaque */
	add_ok(img, (struct ext4_entry){ .path = "o/old", .mode = S_IFREG | 0644 });
	add_ok(img, (struct ext4_entry){ .path = "o/sub/old", .mode = S_IFREG | 0644 });
	add_ok(img, (struct ext4_entry){ .path = "o/gone/x", .mode = S_IFREG | 0644 });
	ext4_next_generation(img);
	add_ok(img, (struct ext4_entry){ .path = "o/new", .mode = S_IFREG | 0644 });
	add_ok(img, (struct ext4_entry){ .path = "o/sub/new", .mode = S_IFREG | 0644 });
	assert_int_equal(ext4_clear_dir(img, "o", &e), 0);
	assert_int_equal(ext4_lookup(img, "o/new", &ino, NULL, &e), 0);
	assert_int_equal(ext4_lookup(img, "o/sub/new", &ino, NULL, &e), 0);
	assert_int_equal(ext4_lookup(img, "o/old", &ino, NULL, &e), -ENOENT);
	assert_int_equal(ext4_lookup(img, "o/sub/old", &ino, NULL, &e), -ENOENT);
	assert_int_equal(ext4_lookup(img, "o/gone", &ino, NULL, &e), -ENOENT);
	assert_int_equal(ext4_clear_dir(img, "o/new", &e), -ENOTDIR);
	/* a file replaced by a directory and back */
	add_ok(img, (struct ext4_entry){ .path = "swap", .mode = S_IFREG | 0644 });
	assert_int_equal(ext4_add(img, &(struct ext4_entry){ .path = "swap/in", .mode = S_IFREG }, &e), -ENOTDIR);
	add_ok(img, (struct ext4_entry){ .path = "swap", .mode = S_IFDIR | 0755 });
	add_ok(img, (struct ext4_entry){ .path = "swap/in", .mode = S_IFREG | 0644 });
	add_ok(img, (struct ext4_entry){ .path = "swap", .mode = S_IFLNK | 0777, .symlink_target = "x" });
	assert_int_equal(ext4_finish(img, &e), 0);
	assert_int_equal(fsck_clean(path), 0);
}

static void full_image_reports_enospc(void **state)
{
	(void)state;
	struct ml_err e = {0};
	struct ext4_img *img;
	assert_int_equal(ext4_create(tpath("full.img"), 8 << 20, 0, &img, &e), 0);
	static char data[1 << 20];
	memset(data, 1, sizeof(data));
	int r = 0;
	for (int i = 0; i < 20 && r == 0; i++) {
		char p[32];
		snprintf(p, sizeof(p), "f%d", i);
		struct mem m = { data, sizeof(data) };
		r = ext4_add(img, &(struct ext4_entry){ .path = p, .mode = S_IFREG | 0644, .read = mem_read, .read_ctx = &m }, &e);
	}
	assert_int_equal(r, -ENOSPC);
	ext4_abort(img);
}

/* The three name shapes of a big directory: short ASCII, bytes >= 0x80 (their hash depends on
 * the signedness the superblock declares) and long names (few per block: many leaf splits). */
static void big_name(char *out, size_t n, int i)
{
	if (i % 10 == 9)
		snprintf(out, n, "big/%0200d", i);
	else if (i % 2)
		snprintf(out, n, "big/\xc3\xa9t\xc3\xa9-%05d", i);
	else
		snprintf(out, n, "big/f-%05d", i);
}

struct count_ctx { int n; };
static int count_entry(struct ext2_dir_entry *d, int off, int bs, char *buf, void *priv)
{
	(void)off;
	(void)bs;
	(void)buf;
	struct count_ctx *c = priv;
	int len = ext2fs_dirent_name_len(d);
	if (d->inode && !(len == 1 && d->name[0] == '.') && !(len == 2 && !memcmp(d->name, "..", 2)))
		c->n++;
	return 0;
}

static int dir_count(ext2_filsys fs, const char *path, struct ext2_inode_large *in)
{
	ext2_ino_t ino;
	assert_int_equal(stat_path(fs, path, &ino, in), 0);
	struct count_ctx c = { 0 };
	assert_int_equal(ext2fs_dir_iterate(fs, ino, 0, NULL, count_entry, &c), 0);
	return c.n;
}

static bool name_present(ext2_filsys fs, const char *path)
{
	ext2_ino_t ino;
	return ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino) == 0;
}

/* Plain libext2fs directories cost a scan of every block per insert (a 1M-entry layer took
 * hours); past one block ours are indexed. 30,000 names of three shapes, 66,000 subdirectories
 * (past the 16-bit link count), a third of them removed again, and e2fsck checks the index. */
static void big_directories_are_indexed_and_clean(void **state)
{
	(void)state;
	enum { FILES = 30000, DIRS = 66000 };
	struct ml_err e = {0};
	struct ext4_img *img;
	const char *path = tpath("big.img");
	assert_int_equal(ext4_create(path, 1ULL << 30, 150000, &img, &e), 0);
	char p[256];
	for (int i = 0; i < FILES; i++) {
		big_name(p, sizeof(p), i);
		add_ok(img, (struct ext4_entry){ .path = p, .mode = S_IFREG | 0644 });
	}
	for (int i = 0; i < DIRS; i++) {
		snprintf(p, sizeof(p), "many/d%d", i);
		add_ok(img, (struct ext4_entry){ .path = p, .mode = S_IFDIR | 0755 });
	}
	for (int i = 0; i < FILES; i += 3) {
		big_name(p, sizeof(p), i);
		assert_int_equal(ext4_remove(img, p, &e), 0);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(p, sizeof(p), "many/d%d", i * 7);
		assert_int_equal(ext4_remove(img, p, &e), 0);
	}
	assert_int_equal(ext4_finish(img, &e), 0);
	assert_int_equal(fsck_clean(path), 0);
	ext2_filsys fs = open_ro(path);
	struct ext2_inode_large in;
	assert_int_equal(dir_count(fs, "big", &in), FILES - (FILES + 2) / 3);
	assert_true(in.i_flags & EXT2_INDEX_FL);
	assert_int_equal(dir_count(fs, "many", &in), DIRS - 1000);
	assert_true(in.i_flags & EXT2_INDEX_FL);
	assert_int_equal(in.i_links_count, 1); /* "more than 65000", as ext4's dir_nlink has it */
	for (int i = 0; i < FILES; i += 97) {
		big_name(p, sizeof(p), i);
		if (name_present(fs, p) != (i % 3 != 0))
			fail_msg("%s: present %d, wanted %d", p, name_present(fs, p), i % 3 != 0);
	}
	ext2fs_close_free(&fs);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ext4-test-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
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
		cmocka_unit_test(empty_scratch_disk_is_fast_sparse_and_clean),
		cmocka_unit_test(every_entry_type_keeps_its_metadata),
		cmocka_unit_test(hostile_paths_are_refused),
		cmocka_unit_test(removal_and_opaque_dirs_free_space),
		cmocka_unit_test(full_image_reports_enospc),
		cmocka_unit_test(big_directories_are_indexed_and_clean),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
