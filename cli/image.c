/* cli/image.c - `matchlock image import` (ls/rm/gc arrive with the registry work). */
#include <errno.h>
#include <fcntl.h>
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
	int dd;
	bool help;
	int r = args_parse(t, argc, argv, &pos, &dd, &help, e);
	if (r < 0)
		return r;
	if (help) {
		printf("Import an image from a `docker save` tarball or an OCI image layout tar.\n\n"
		       "Usage:\n  matchlock image import <tag> [file]   (reads stdin without a file)\n\nFlags:\n");
		args_print_flags(t);
		return 0;
	}
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
	_cleanup_free_ char *cache = ml_cache_dir();
	if (!cache)
		return -ENOMEM;
	if ((r = ml_mkdir_p(cache, 0700)) < 0)
		return ml_err_set(e, r, "creating %s: %s", cache, strerror(-r));
	struct oci_store *store = NULL;
	if ((r = oci_store_open(cache, &store, e)) < 0)
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

int cmd_image(int argc, char **argv, struct ml_err *e)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		printf("Manage images.\n\nUsage:\n  matchlock image [command]\n\nAvailable Commands:\n"
		       "  import      Import an image from a docker save or OCI layout tarball\n"
		       "  ls          List images (not supported yet)\n  rm          Remove an image (not supported yet)\n"
		       "  gc          Remove unreferenced blobs (not supported yet)\n");
		return argc < 1 ? 0 : 0;
	}
	if (!strcmp(argv[0], "import"))
		return image_import(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list") || !strcmp(argv[0], "rm") ||
	    !strcmp(argv[0], "remove") || !strcmp(argv[0], "gc"))
		return ml_err_set(e, -ENOTSUP, "image %s is not supported yet", argv[0]);
	return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock image\"", argv[0]);
}
