/* tests/unit/oci_test.c - the image store and the rootless rootfs builder: imports (OCI layout,
 * docker save, the embedded default image), digest checks, layers applied into ext4 with
 * ownership, modes, links, devices, xattrs and whiteouts intact, hostile layers refused.
 * Layer tars are written here with libarchive; images are read back with libext2fs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/internal.h"
#include "oci/oci.h"

static char dir[64];
static int seq;

struct tentry {
	const char *path;
	mode_t mode;     /* with type bits */
	int uid, gid;
	const char *data;
	const char *link;      /* symlink target */
	const char *hardlink;
	int rmaj, rmin;
	const char *xname, *xval;
};

enum { PLAIN, GZIP, ZSTD, TRUNCATED_GZIP };

static char *tmpname(const char *what)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s-%d", dir, what, seq++) > 0);
	return p;
}

static char *write_tar(const struct tentry *ents, size_t n, int comp)
{
	char *path = tmpname("layer");
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	if (comp == GZIP || comp == TRUNCATED_GZIP)
		archive_write_add_filter_gzip(a);
	if (comp == ZSTD)
		assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		const struct tentry *t = &ents[i];
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, t->path);
		archive_entry_set_mode(ae, t->mode);
		archive_entry_set_uid(ae, t->uid);
		archive_entry_set_gid(ae, t->gid);
		archive_entry_set_mtime(ae, 1600000000 + (time_t)i, 0);
		if (t->link)
			archive_entry_set_symlink(ae, t->link);
		if (t->hardlink)
			archive_entry_set_hardlink(ae, t->hardlink);
		if (t->rmaj || t->rmin) {
			archive_entry_set_rdevmajor(ae, t->rmaj);
			archive_entry_set_rdevminor(ae, t->rmin);
		}
		if (t->xname)
			archive_entry_xattr_add_entry(ae, t->xname, t->xval, strlen(t->xval));
		size_t len = t->data ? strlen(t->data) : 0;
		archive_entry_set_size(ae, S_ISREG(t->mode) && !t->hardlink ? (la_int64_t)len : 0);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (len && !t->hardlink)
			assert_int_equal(archive_write_data(a, t->data, len), (ssize_t)len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
	if (comp == TRUNCATED_GZIP) {
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(truncate(path, st.st_size / 2), 0);
	}
	return path;
}

static void file_hex(const char *path, char hex[65])
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sha256_fd(fd, hex, NULL), 0);
	close(fd);
}

static char *write_mem(const char *text)
{
	char *p = tmpname("json");
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
	return p;
}

/* An outer tar: members name -> file on disk. */
static char *write_outer(const char **names, char **files, size_t n)
{
	char *path = tmpname("image");
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	static char buf[1 << 16];
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		assert_int_equal(stat(files[i], &st), 0);
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, names[i]);
		archive_entry_set_mode(ae, S_IFREG | 0644);
		archive_entry_set_size(ae, st.st_size);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		int fd = open(files[i], O_RDONLY);
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			archive_write_data(a, buf, (size_t)r);
		close(fd);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
	return path;
}

static const char *CONFIG =
	"{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/bin/ep\"],"
	"\"Cmd\":[\"-c\",\"x\"],\"Env\":[\"A=1\"],\"User\":\"1000:1000\",\"WorkingDir\":\"/w\"}}";

/* An OCI layout tar holding these layers; corrupt_layer flips the digest of one. */
static char *oci_layout(char **layers, size_t n, int corrupt_layer)
{
	char cfg_hex[65], man_hex[65], hex[65], *body = NULL, *tmp;
	char *cfg = write_mem(CONFIG);
	file_hex(cfg, cfg_hex);
	char *ls = strdup("");
	const char *names[16];
	char *files[16];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		file_hex(layers[i], hex);
		if ((int)i == corrupt_layer)
			hex[0] = hex[0] == '0' ? '1' : '0';
		assert_true(asprintf(&tmp, "%s%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
				     "\"digest\":\"sha256:%s\",\"size\":1}", ls, i ? "," : "", hex) > 0);
		free(ls);
		ls = tmp;
		assert_true(asprintf((char **)&names[m], "blobs/sha256/%s", hex) > 0);
		files[m++] = layers[i];
	}
	assert_true(asprintf(&body, "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
			     "\"digest\":\"sha256:%s\",\"size\":1},\"layers\":[%s]}", cfg_hex, ls) > 0);
	char *man = write_mem(body);
	file_hex(man, man_hex);
	free(body);
	assert_true(asprintf(&body, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
			     "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":1,"
			     "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}", man_hex) > 0);
	char *idx = write_mem(body);
	assert_true(asprintf((char **)&names[m], "blobs/sha256/%s", cfg_hex) > 0);
	files[m++] = cfg;
	assert_true(asprintf((char **)&names[m], "blobs/sha256/%s", man_hex) > 0);
	files[m++] = man;
	names[m] = strdup("oci-layout");
	files[m++] = write_mem("{\"imageLayoutVersion\":\"1.0.0\"}");
	names[m] = strdup("index.json"); /* last: the importer must cope with JSON after blobs */
	files[m++] = idx;
	char *out = write_outer(names, files, m);
	for (size_t i = 0; i < m; i++) {
		free((char *)names[i]);
		if (i >= n)
			free(files[i]);
	}
	free(body);
	free(ls);
	return out;
}

static struct oci_store *open_store(void)
{
	struct oci_store *s;
	struct ml_err e = {0};
	char *cache = tmpname("cache");
	assert_int_equal(oci_store_open(cache, &s, &e), 0);
	free(cache);
	return s;
}

static int import_file(struct oci_store *s, const char *tag, const char *path, struct ml_err *e)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct oci_import_info info;
	int r = oci_import(s, tag, fd, &info, e);
	close(fd);
	return r;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int fsck_clean(const char *img)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", img);
	return system(cmd);
}

static int istat(ext2_filsys fs, const char *path, struct ext2_inode_large *in, ext2_ino_t *ino)
{
	ext2_ino_t i;
	if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &i))
		return -1;
	if (ino)
		*ino = i;
	return ext2fs_read_inode_full(fs, i, (struct ext2_inode *)in, sizeof(*in)) ? -1 : 0;
}

/* Builds the rootfs of tag; returns its error or 0 and the path. */
static int build(struct oci_store *s, const char *tag, char **path, bool *built, struct ml_err *e)
{
	struct oci_image *img;
	int r = oci_lookup(s, tag, &img, e);
	if (r == 0)
		r = oci_rootfs(s, img, path, built, e);
	oci_image_free(img);
	return r;
}

static void refs_are_normalized(void **state)
{
	(void)state;
	struct ml_err e = {0};
	const char *ok[][2] = { { "alpine", "alpine:latest" }, { "alpine:3.19", "alpine:3.19" },
				{ "localhost:5000/x", "localhost:5000/x:latest" },
				{ "localhost:5000/x:v1", "localhost:5000/x:v1" },
				{ "matchlock/default", "matchlock/default:latest" },
				{ "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				  "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *n = oci_ref_normalize(ok[i][0], &e);
		assert_non_null(n);
		assert_string_equal(n, ok[i][1]);
		free(n);
	}
	const char *bad[] = { "", " ", "Alpine", "a b", "a:", "a:/x", "/a", "a//b", "a@sha256:12", "a:t@g", "a\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = 0;
		assert_null(oci_ref_normalize(bad[i], &e));
		assert_true(e.msg[0] != 0);
	}
}

static void two_layers_keep_metadata_and_apply_whiteouts(void **state)
{
	(void)state;
	struct tentry l1[] = {
		{ .path = "usr/", .mode = S_IFDIR | 0755 },
		{ .path = "usr/bin/", .mode = S_IFDIR | 0755 },
		{ .path = "usr/bin/ping", .mode = S_IFREG | 04755, .data = "ELF ping",
		  .xname = "security.capability", .xval = "capdata" },
		{ .path = "usr/bin/ping4", .mode = S_IFREG | 04755, .hardlink = "usr/bin/ping" },
		{ .path = "home/u/notes", .mode = S_IFREG | 0600, .uid = 1000, .gid = 1001, .data = "hi" },
		{ .path = "tmp/", .mode = S_IFDIR | 01777 },
		{ .path = "srv/", .mode = S_IFDIR | 02770, .gid = 50 },
		{ .path = "bin/sh", .mode = S_IFLNK | 0777, .link = "/usr/bin/ping" },
		{ .path = "dev/null", .mode = S_IFCHR | 0666, .rmaj = 1, .rmin = 3 },
		{ .path = "dev/sda", .mode = S_IFBLK | 0660, .rmaj = 8, .rmin = 0 },
		{ .path = "run/fifo", .mode = S_IFIFO | 0644 },
		{ .path = "etc/x", .mode = S_IFREG | 0644, .data = "x", .xname = "user.k", .xval = "v" },
		{ .path = "o/old", .mode = S_IFREG | 0644, .data = "old" },
		{ .path = "o/sub/old", .mode = S_IFREG | 0644, .data = "old" },
		{ .path = "gone/file", .mode = S_IFREG | 0644, .data = "g" },
		{ .path = "keep/a", .mode = S_IFREG | 0644, .data = "a" },
		{ .path = "keep/b", .mode = S_IFREG | 0644, .data = "b" },
	};
	struct tentry l2[] = {
		{ .path = "o/new", .mode = S_IFREG | 0644, .data = "new" },
		{ .path = "o/.wh..wh..opq", .mode = S_IFREG | 0644 },
		{ .path = ".wh.gone", .mode = S_IFREG | 0644 },
		{ .path = "keep/.wh.a", .mode = S_IFREG | 0644 },
		{ .path = "./etc/y", .mode = S_IFREG | 0640, .uid = 0, .gid = 42, .data = "y" },
	};
	char *layers[2] = { write_tar(l1, sizeof(l1) / sizeof(l1[0]), GZIP),
			    write_tar(l2, sizeof(l2) / sizeof(l2[0]), ZSTD) };
	char *img_tar = oci_layout(layers, 2, -1);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	if (import_file(s, "t/two:1", img_tar, &e) != 0)
		fail_msg("import: %s", e.msg);
	struct oci_image *img;
	assert_int_equal(oci_lookup(s, "t/two:1", &img, &e), 0);
	assert_string_equal(img->config.entrypoint[0], "/bin/ep");
	assert_string_equal(img->config.cmd[1], "x");
	assert_string_equal(img->config.env[0], "A=1");
	assert_string_equal(img->config.user, "1000:1000");
	assert_string_equal(img->config.workdir, "/w");
	oci_image_free(img);
	char *path = NULL;
	bool built = false;
	if (build(s, "t/two:1", &path, &built, &e) != 0)
		fail_msg("rootfs: %s", e.msg);
	assert_true(built);
	assert_int_equal(fsck_clean(path), 0);

	ext2_filsys fs;
	assert_int_equal(ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	struct ext2_inode_large in;
	ext2_ino_t ino = 0, ino2 = 0;
	assert_int_equal(istat(fs, "usr/bin/ping", &in, &ino), 0);
	assert_int_equal(in.i_mode, S_IFREG | 04755);
	assert_int_equal(in.i_links_count, 2);
	assert_int_equal(in.i_mtime, 1600000002);
	assert_int_equal(istat(fs, "usr/bin/ping4", &in, &ino2), 0);
	assert_int_equal(ino, ino2);
	struct ext2_xattr_handle *h;
	void *val;
	size_t vlen;
	assert_int_equal(ext2fs_xattrs_open(fs, ino, &h), 0);
	assert_int_equal(ext2fs_xattrs_read(h), 0);
	assert_int_equal(ext2fs_xattr_get(h, "security.capability", &val, &vlen), 0);
	assert_int_equal(vlen, 7);
	free(val);
	ext2fs_xattrs_close(&h);
	assert_int_equal(istat(fs, "home/u/notes", &in, NULL), 0);
	assert_int_equal(inode_uid(in), 1000);
	assert_int_equal(inode_gid(in), 1001);
	assert_int_equal(in.i_mode, S_IFREG | 0600);
	assert_int_equal(istat(fs, "tmp", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 01777);
	assert_int_equal(istat(fs, "srv", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 02770);
	assert_int_equal(inode_gid(in), 50);
	assert_int_equal(istat(fs, "dev/null", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFCHR | 0666);
	assert_int_equal(in.i_block[0], 0x103);
	assert_int_equal(istat(fs, "dev/sda", &in, NULL), 0);
	assert_int_equal(in.i_block[0], 0x800);
	assert_int_equal(istat(fs, "run/fifo", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFIFO | 0644);
	ext2_ino_t lnk;
	assert_int_equal(ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "bin/sh", &lnk), 0);
	assert_int_equal(ext2fs_read_inode_full(fs, lnk, (struct ext2_inode *)&in, sizeof(in)), 0);
	assert_int_equal(in.i_mode & S_IFMT, S_IFLNK);
	assert_memory_equal(in.i_block, "/usr/bin/ping", 13);
	assert_int_equal(istat(fs, "etc/y", &in, NULL), 0);
	assert_int_equal(inode_gid(in), 42);
	/* whiteouts */
	assert_int_equal(istat(fs, "o/new", &in, NULL), 0);
	assert_int_not_equal(istat(fs, "o/old", &in, NULL), 0);
	assert_int_not_equal(istat(fs, "o/sub", &in, NULL), 0);
	assert_int_not_equal(istat(fs, "gone", &in, NULL), 0);
	assert_int_not_equal(istat(fs, "keep/a", &in, NULL), 0);
	assert_int_equal(istat(fs, "keep/b", &in, NULL), 0);
	ext2fs_close_free(&fs);

	char *again = NULL;
	assert_int_equal(build(s, "t/two:1", &again, &built, &e), 0);
	assert_false(built);
	assert_string_equal(again, path);
	free(again);
	free(path);
	oci_store_free(s);
	free(layers[0]);
	free(layers[1]);
	free(img_tar);
}

/* A one-layer image whose rootfs build must fail with msg; nothing may be left behind. */
static void expect_build_error(const struct tentry *ents, size_t n, int comp, const char *msg)
{
	char *layer = write_tar(ents, n, comp);
	char *img_tar = oci_layout(&layer, 1, -1);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	if (import_file(s, "bad", img_tar, &e) != 0)
		fail_msg("import: %s", e.msg);
	char *path = NULL;
	bool built;
	assert_true(build(s, "bad", &path, &built, &e) < 0);
	print_message("  error: %s\n", e.msg);
	if (!strstr(e.msg, msg))
		fail_msg("error \"%s\" does not say \"%s\"", e.msg, msg);
	assert_non_null(strstr(e.msg, "layer sha256:"));
	char *rootfs = store_path(s, "rootfs");
	DIR *d = opendir(rootfs);
	for (struct dirent *de; (de = readdir(d));)
		assert_null(strstr(de->d_name, ".ext4"));
	closedir(d);
	free(rootfs);
	oci_store_free(s);
	free(layer);
	free(img_tar);
}

static void escaping_entry_rejects_the_layer(void **state)
{
	(void)state;
	struct tentry l[] = { { .path = "ok", .mode = S_IFREG | 0644, .data = "1" },
			      { .path = "../evil", .mode = S_IFREG | 0644, .data = "x" } };
	expect_build_error(l, 2, GZIP, "entry \"../evil\": path escapes the image root");
}

static void hardlink_to_missing_or_outside_target_is_rejected(void **state)
{
	(void)state;
	struct tentry l[] = { { .path = "a", .mode = S_IFREG | 0644, .hardlink = "nothere" } };
	expect_build_error(l, 1, PLAIN, "hard link target \"nothere\"");
	struct tentry l2[] = { { .path = "a", .mode = S_IFREG | 0644, .hardlink = "../../etc/passwd" } };
	expect_build_error(l2, 1, PLAIN, "path escapes the image root");
}

static void write_through_symlink_is_rejected(void **state)
{
	(void)state;
	struct tentry l[] = { { .path = "etc", .mode = S_IFLNK | 0777, .link = "/tmp" },
			      { .path = "etc/passwd", .mode = S_IFREG | 0644, .data = "x" } };
	expect_build_error(l, 2, PLAIN, "is a symlink");
}

static void truncated_gzip_layer_is_an_error(void **state)
{
	(void)state;
	static char big[200000];
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + (i * 7919) % 26);
	struct tentry l[] = { { .path = "f", .mode = S_IFREG | 0644, .data = big },
			      { .path = "g", .mode = S_IFREG | 0644, .data = big } };
	expect_build_error(l, 2, TRUNCATED_GZIP, "layer sha256:");
}

/* 96 MiB that gzip packs ~1000x: the first size guess is too small, the exact retry fits. */
static void highly_compressible_layer_gets_a_second_exact_attempt(void **state)
{
	(void)state;
	size_t n = 96u << 20;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = 0;
	struct tentry l[] = { { .path = "big", .mode = S_IFREG | 0644, .data = big } };
	char *layer = write_tar(l, 1, GZIP);
	free(big);
	char *img_tar = oci_layout(&layer, 1, -1);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	assert_int_equal(import_file(s, "big", img_tar, &e), 0);
	char *path = NULL;
	bool built;
	if (build(s, "big", &path, &built, &e) != 0)
		fail_msg("rootfs: %s", e.msg);
	assert_int_equal(fsck_clean(path), 0);
	free(path);
	oci_store_free(s);
	free(layer);
	free(img_tar);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A zstd layer of n empty files in one directory, streamed (no table of n entries). */
static char *write_flat_layer(int n)
{
	char *path = tmpname("flat");
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	struct archive_entry *ae = archive_entry_new();
	char name[64];
	for (int i = 0; i < n; i++) {
		archive_entry_clear(ae);
		snprintf(name, sizeof(name), "flat/file-%07d", i);
		archive_entry_set_pathname(ae, name);
		archive_entry_set_mode(ae, S_IFREG | 0644);
		archive_entry_set_size(ae, 0);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
	}
	archive_entry_free(ae);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return path;
}

/* Sanitizer builds (make asan) run this code about 15 times slower. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOWDOWN 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOWDOWN 4
#endif
#endif
#ifndef SLOWDOWN
#define SLOWDOWN 1
#endif

/* One layer with 1,000,000 entries in a single directory. With libext2fs's plain directories
 * every insert scanned the whole directory: about two hours. Indexed directories make it a
 * matter of seconds (~10 s here, ~150 s under ASan); the bound is generous for busy hosts. */
static void million_entries_in_one_directory_build_in_bounded_time(void **state)
{
	(void)state;
	enum { N = 1000000 };
	char *layer = write_flat_layer(N);
	char *img_tar = oci_layout(&layer, 1, -1);
	unlink(layer);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	assert_int_equal(import_file(s, "flat", img_tar, &e), 0);
	unlink(img_tar);
	char *path = NULL;
	bool built;
	double t0 = now_s();
	if (build(s, "flat", &path, &built, &e) != 0)
		fail_msg("rootfs: %s", e.msg);
	double secs = now_s() - t0;
	printf("rootfs of a %d-entry directory: %.1f s\n", N, secs);
	if (secs > 300 * SLOWDOWN)
		fail_msg("the build took %.0f s, wanted under %d s", secs, 300 * SLOWDOWN);
	ext2_filsys fs = NULL;
	assert_int_equal(ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	struct ext2_inode_large in;
	ext2_ino_t ino;
	assert_int_equal(istat(fs, "flat/file-0999999", &in, &ino), 0);
	assert_int_equal(istat(fs, "flat", &in, &ino), 0);
	assert_true(in.i_flags & EXT2_INDEX_FL);
	ext2fs_close_free(&fs);
	unlink(path);
	free(path);
	oci_store_free(s);
	free(layer);
	free(img_tar);
}

static void digest_mismatch_fails_import_and_sets_no_tag(void **state)
{
	(void)state;
	struct tentry l[] = { { .path = "f", .mode = S_IFREG | 0644, .data = "x" } };
	char *layer = write_tar(l, 1, GZIP);
	char *img_tar = oci_layout(&layer, 1, 0);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	assert_true(import_file(s, "mm", img_tar, &e) < 0);
	assert_non_null(strstr(e.msg, "invalid image archive"));
	assert_true(strstr(e.msg, "digest mismatch") || strstr(e.msg, "missing"));
	struct oci_image *img;
	assert_int_equal(oci_lookup(s, "mm", &img, &e), -ENOENT);
	assert_string_equal(e.msg, "image not found: mm");
	char *tmp = store_path(s, "tmp"), *blobs = store_path(s, "blobs");
	assert_int_equal(count_dir(tmp), 0);
	assert_int_equal(count_dir(blobs), 0);
	free(tmp);
	free(blobs);
	oci_store_free(s);
	free(layer);
	free(img_tar);
}

static void docker_save_format_imports(void **state)
{
	(void)state;
	struct tentry l[] = { { .path = "hello", .mode = S_IFREG | 0755, .data = "#!/bin/sh\n" } };
	char *layer = write_tar(l, 1, PLAIN);
	char *cfg = write_mem(CONFIG);
	char hex[65], *cfgname, *man;
	file_hex(cfg, hex);
	assert_true(asprintf(&cfgname, "%s.json", hex) > 0);
	assert_true(asprintf(&man, "[{\"Config\":\"%s\",\"RepoTags\":[\"x:1\"],\"Layers\":[\"abc/layer.tar\"]}]", cfgname) > 0);
	char *manf = write_mem(man);
	const char *names[] = { "abc/layer.tar", cfgname, "manifest.json" };
	char *files[] = { layer, cfg, manf };
	char *img_tar = write_outer(names, files, 3);
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	if (import_file(s, "docker/img", img_tar, &e) != 0)
		fail_msg("import: %s", e.msg);
	char *path = NULL;
	bool built;
	if (build(s, "docker/img:latest", &path, &built, &e) != 0)
		fail_msg("rootfs: %s", e.msg);
	assert_int_equal(fsck_clean(path), 0);
	/* a Layers entry that is missing from the archive */
	char *man2;
	assert_true(asprintf(&man2, "[{\"Config\":\"%s\",\"Layers\":[\"nope/layer.tar\"]}]", cfgname) > 0);
	char *manf2 = write_mem(man2);
	char *files2[] = { layer, cfg, manf2 };
	char *bad_tar = write_outer(names, files2, 3);
	assert_true(import_file(s, "docker/bad", bad_tar, &e) < 0);
	assert_string_equal(e.msg, "invalid image archive: nope/layer.tar: missing");
	char *man3 = write_mem("[{\"Config\":\"x.json\"}]");
	char *files3[] = { layer, cfg, man3 };
	char *bad3 = write_outer(names, files3, 3);
	assert_true(import_file(s, "docker/bad", bad3, &e) < 0);
	assert_string_equal(e.msg, "invalid image archive: manifest.json: no Layers");
	free(path); free(man2); free(manf2); free(bad_tar); free(man3); free(bad3);
	oci_store_free(s);
	free(layer); free(cfg); free(cfgname); free(man); free(manf); free(img_tar);
}

static void default_image_imports_and_boots_a_shell(void **state)
{
	(void)state;
	char *out = tmpname("default.tar"), cmd[512];
	snprintf(cmd, sizeof(cmd), "sh scripts/mkdefaultimage.sh %s", out);
	if (system(cmd) != 0)
		skip();
	struct oci_store *s = open_store();
	struct ml_err e = {0};
	if (import_file(s, "matchlock/default:latest", out, &e) != 0)
		fail_msg("import: %s", e.msg);
	struct oci_image *img;
	assert_int_equal(oci_lookup(s, "matchlock/default", &img, &e), 0);
	assert_non_null(img->config.cmd);
	assert_string_equal(img->config.cmd[0], "/bin/sh");
	assert_null(img->config.cmd[1]);
	assert_null(img->config.entrypoint);
	assert_true(strncmp(img->digest, "sha256:", 7) == 0);
	char *path;
	bool built;
	if (oci_rootfs(s, img, &path, &built, &e) != 0)
		fail_msg("rootfs: %s", e.msg);
	assert_int_equal(fsck_clean(path), 0);
	ext2_filsys fs;
	assert_int_equal(ext2fs_open(path, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
	struct ext2_inode_large in;
	assert_int_equal(istat(fs, "bin/busybox", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFREG | 0755);
	assert_int_equal(istat(fs, "etc/shadow", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFREG | 0640);
	assert_int_equal(istat(fs, "tmp", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 01777);
	assert_int_equal(istat(fs, "root", &in, NULL), 0);
	assert_int_equal(in.i_mode, S_IFDIR | 0700);
	ext2_ino_t sh;
	assert_int_equal(ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "bin/sh", &sh), 0);
	ext2fs_close_free(&fs);
	oci_image_free(img);
	free(path);
	oci_store_free(s);
	free(out);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/oci-test-XXXXXX");
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
		cmocka_unit_test(refs_are_normalized),
		cmocka_unit_test(two_layers_keep_metadata_and_apply_whiteouts),
		cmocka_unit_test(escaping_entry_rejects_the_layer),
		cmocka_unit_test(hardlink_to_missing_or_outside_target_is_rejected),
		cmocka_unit_test(write_through_symlink_is_rejected),
		cmocka_unit_test(truncated_gzip_layer_is_an_error),
		cmocka_unit_test(highly_compressible_layer_gets_a_second_exact_attempt),
		cmocka_unit_test(million_entries_in_one_directory_build_in_bounded_time),
		cmocka_unit_test(digest_mismatch_fails_import_and_sets_no_tag),
		cmocka_unit_test(docker_save_format_imports),
		cmocka_unit_test(default_image_imports_and_boots_a_shell),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
