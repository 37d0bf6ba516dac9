/* tests/fuzz/ext4_probe.c - arbitrary bytes as the start of a disk image checked by ext4_probe.
 * A volume's bytes are written by a guest, and the next `run --disk` probes them on the host
 * (libext2fs reads the superblock and group descriptors): a hostile image must give an error,
 * never a crash. The input is the image's first bytes; the file is padded (sparse) to 1 MiB or
 * to the input's size so a superblock's size claims can be met. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ext4/ext4.h"

/* $TMPDIR when it is short enough (run-fuzz.sh points it at a tmpfs: an image per input is
 * much cheaper there), else /tmp. */
static const char *tmp_dir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t && strlen(t) < 100 ? t : "/tmp";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[160];
	if (!path[0])
		snprintf(path, sizeof(path), "%s/fuzz-probe-%d.img", tmp_dir(), (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	size_t len = size > (1u << 20) ? size : (1u << 20);
	if (write(fd, data, size) != (ssize_t)size || ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		return 0;
	}
	close(fd);
	struct ext4_probe_info pi;
	struct ml_err e = { 0 };
	int r = ext4_probe(path, &pi, &e);
	/* the probe's promise: on success the filesystem fits its file */
	if (r == 0 && pi.fs_bytes > len)
		abort();
	unlink(path);
	return 0;
}
