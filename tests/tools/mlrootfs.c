/* tests/tools/mlrootfs.c - times building one image's rootfs from its layers (for make bench):
 *   mlrootfs TAG   -> prints "rootfs_build_s=<seconds> size_bytes=<n>"
 * Any cached rootfs of TAG is removed first so the build really happens. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "oci/oci.h"
#include "rpc/sandbox.h"

int main(int argc, char **argv)
{
	if (argc != 2)
		return fprintf(stderr, "usage: mlrootfs TAG\n"), 2;
	struct ml_err e = { 0 };
	struct oci_store *s = NULL;
	struct oci_image *img = NULL;
	char *cache = ml_cache_dir(), *path = NULL;
	bool built = false;
	if (oci_store_open(cache, &s, &e) < 0 || oci_lookup(s, argv[1], &img, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	if (oci_rootfs(s, img, &path, &built, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	unlink(path);
	free(path);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (oci_rootfs(s, img, &path, &built, &e) < 0)
		return fprintf(stderr, "%s\n", e.msg), 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	struct stat st;
	stat(path, &st);
	printf("rootfs_build_s=%.3f size_bytes=%lld\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
	       (long long)st.st_size);
	free(path);
	oci_image_free(img);
	oci_store_free(s);
	free(cache);
	return 0;
}
