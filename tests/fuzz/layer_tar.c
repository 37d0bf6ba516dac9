/* tests/fuzz/layer_tar.c - arbitrary bytes as an OCI layer (tar, gzip or zstd) applied to a
 * small ext4 image through the rootfs builder's path. Must never crash or leak; the image,
 * when the layer is accepted, is finished like a real one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ext4/ext4.h"
#include "oci/internal.h"

/* $TMPDIR when it is short enough (run-fuzz.sh points it at a tmpfs: an image per input is
 * much cheaper there), else /tmp. */
static const char *tmp_dir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t && strlen(t) < 100 ? t : "/tmp";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char img_path[160];
	if (!img_path[0])
		snprintf(img_path, sizeof(img_path), "%s/fuzz-layer-%d.img", tmp_dir(), (int)getpid());
	int fd = memfd_create("layer", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return 0;
	}
	struct ml_err e = {0};
	struct ext4_img *img;
	if (ext4_create(img_path, 16 << 20, 0, &img, &e) == 0) {
		uint64_t budget = 64ULL << 20;
		ext4_next_generation(img);
		if (layer_apply(img, fd, "sha256:fuzz", &budget, &e) == 0)
			ext4_finish(img, &e);
		else
			ext4_abort(img);
	}
	unlink(img_path);
	close(fd);
	return 0;
}
