/* cli/image.c - `matchlock image import|ls|rm|gc`. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "oci/oci.h"
#include "rpc/sandbox.h"

static int image_import(int argc, char **argv, struct ml_err *e)
{
	struct flag t[] = { { NULL, 0, 0, NULL, NULL, NULL, false, false } };
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos,
			       "Import an image from a `docker save` tarball or an OCI image layout tar.\n\n"
			       "Usage:\n  matchlock image import <tag> [file]   (reads stdin without a file)\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n < 1 || pos.n > 2)
		return ml_err_set(e, -EINVAL, "accepts between 1 and 2 arg(s), received %zu", pos.n);
	const char *tag = pos.v[0];
	_cleanup_close_ int fd = -1;
	if (pos.n == 2) {
		fd = open(pos.v[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ml_err_set(e, -errno, "open %s: %s", pos.v[1], strerror(errno));
		fprintf(stderr, "Importing %s from %s...\n", tag, pos.v[1]);
	} else {
		fprintf(stderr, "Importing %s from stdin...\n", tag);
	}
	struct oci_store *store = NULL;
	if ((r = ml_store_open(&store, e)) < 0)
		return r;
	struct oci_import_info info = { 0 };
	r = oci_import(store, tag, fd >= 0 ? fd : STDIN_FILENO, &info, e);
	oci_store_free(store);
	if (r < 0)
		return r;
	printf("Imported: %s\nLayers: %u\nSize: %.1f MB\n", tag, info.layers, (double)info.size / 1e6);
	strv_clear(&pos);
	return 0;
}

/* A subcommand without flags of its own. 1 = help was shown. */
static int simple_args(int argc, char **argv, struct strv *pos, const char *help_text, struct ml_err *e)
{
	struct flag t[] = { { NULL, 0, 0, NULL, NULL, NULL, false, false } };
	return args_parse_cmd(t, argc, argv, pos, help_text, e);
}

/* SOURCE column: registry-cache rows say "registry"; local rows their stored source. */
static const char *row_source(const struct oci_image_row *row)
{
	if (!strcmp(row->scope, "registry"))
		return "registry";
	return *row->source ? row->source : "local";
}

static void print_table(const struct oci_image_row *rows, size_t n)
{
	size_t w[3] = { 3, 6, 4 };
	char (*sz)[32] = calloc(n ? n : 1, sizeof(*sz));
	if (!sz)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *src = row_source(&rows[i]);
		snprintf(sz[i], sizeof(sz[i]), "%.1f MB", (double)rows[i].size / 1e6);
		w[0] = strlen(rows[i].tag) > w[0] ? strlen(rows[i].tag) : w[0];
		w[1] = strlen(src) > w[1] ? strlen(src) : w[1];
		w[2] = strlen(sz[i]) > w[2] ? strlen(sz[i]) : w[2];
	}
	printf("%-*s  %-*s  %-*s  %s\n", (int)w[0], "TAG", (int)w[1], "SOURCE", (int)w[2], "SIZE", "CREATED");
	for (size_t i = 0; i < n; i++) {
		const char *src = row_source(&rows[i]);
		char when[32] = "";
		time_t c = (time_t)rows[i].created;
		struct tm tm;
		if (localtime_r(&c, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%-*s  %-*s  %-*s  %s\n", (int)w[0], rows[i].tag, (int)w[1], src, (int)w[2], sz[i], when);
	}
	free(sz);
}

static int image_ls(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = simple_args(argc, argv, &pos, "List images.\n\nUsage:\n  matchlock image ls\n", e);
	if (r != 0 || (pos.n && (r = ml_err_set(e, -EINVAL, "accepts 0 arg(s), received %zu", pos.n)))) {
		strv_clear(&pos);
		return r < 0 ? r : 0;
	}
	struct oci_store *store = NULL;
	struct oci_image_row *rows = NULL;
	size_t n = 0;
	if ((r = ml_store_open(&store, e)) == 0 && (r = oci_list(store, &rows, &n, e)) == 0)
		print_table(rows, n);
	oci_rows_free(rows, n);
	oci_store_free(store);
	return r;
}

static int image_rm(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = simple_args(argc, argv, &pos, "Remove an image.\n\nUsage:\n  matchlock image rm <tag>\n", e);
	if (r != 0 || (pos.n != 1 && (r = ml_err_set(e, -EINVAL, "accepts 1 arg(s), received %zu", pos.n)))) {
		strv_clear(&pos);
		return r < 0 ? r : 0;
	}
	struct oci_store *store = NULL;
	if ((r = ml_store_open(&store, e)) == 0 && (r = oci_remove(store, pos.v[0], e)) == 0)
		printf("Removed %s\n", pos.v[0]);
	oci_store_free(store);
	strv_clear(&pos);
	return r;
}

static int image_gc(int argc, char **argv, struct ml_err *e)
{
	struct strv pos = { 0 };
	int r = simple_args(argc, argv, &pos, "Remove unreferenced blobs, rootfs images and stale temp files.\n\n"
			    "Usage:\n  matchlock image gc\n", e);
	if (r != 0 || (pos.n && (r = ml_err_set(e, -EINVAL, "accepts 0 arg(s), received %zu", pos.n)))) {
		strv_clear(&pos);
		return r < 0 ? r : 0;
	}
	struct oci_store *store = NULL;
	struct oci_gc_info info = { 0 };
	if ((r = ml_store_open(&store, e)) == 0 && (r = oci_gc(store, &info, e)) == 0) {
		printf("Removed %u unreferenced blobs\n", info.blobs);
		if (info.rootfs)
			printf("Removed %u unreferenced rootfs images\n", info.rootfs);
		if (info.temps)
			printf("Removed %u stale temp files\n", info.temps);
		printf("Freed %.1f MB\n", (double)info.bytes / 1e6);
	}
	oci_store_free(store);
	return r;
}

int cmd_image(int argc, char **argv, struct ml_err *e)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		printf("Manage images.\n\nUsage:\n  matchlock image [command]\n\nAvailable Commands:\n"
		       "  import      Import an image from a docker save or OCI layout tarball\n"
		       "  ls          List images (alias: list)\n  rm          Remove an image (alias: remove)\n"
		       "  gc          Remove unreferenced blobs\n");
		return 0;
	}
	if (!strcmp(argv[0], "import"))
		return image_import(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
		return image_ls(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "rm") || !strcmp(argv[0], "remove"))
		return image_rm(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "gc"))
		return image_gc(argc - 1, argv + 1, e);
	return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock image\"", argv[0]);
}
