/* vmm/cpio.c - writes the "newc" cpio format, the one the kernel unpacks as an initramfs.
 *
 * Each entry: a 110-byte ASCII header ("070701" then 13 fields of 8 hex digits), the name with
 * its NUL, padding to 4 bytes, the data, padding to 4 bytes. The archive ends with an entry named
 * "TRAILER!!!". Owner 0:0 and mtime 0 always: the guest's files belong to its root, and the
 * same inputs give the same bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "vmm/vmm_internal.h"

#define CPIO_HDR_LEN 110u

struct cpio_entry {
	const char *name;
	unsigned mode;    /* type bits included */
	uint32_t nlink;
	uint64_t size;
	unsigned rmaj, rmin;
};

void cpio_writer_init(struct cpio_writer *w, FILE *f)
{
	w->f = f;
	w->next_ino = 1;
}

static int write_bytes(struct cpio_writer *w, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, w->f) != n)
		return errno ? -errno : -EIO;
	return 0;
}

static int write_pad(struct cpio_writer *w, uint64_t written)
{
	static const char zeros[4];
	return write_bytes(w, zeros, (size_t)((4 - written % 4) % 4));
}

static int write_header(struct cpio_writer *w, const struct cpio_entry *en)
{
	size_t namesize = strlen(en->name) + 1;
	if (en->size > 0xffffffffu || namesize > 4096)
		return -EFBIG;
	char hdr[CPIO_HDR_LEN + 1];
	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 w->next_ino++, en->mode, 0u, 0u, en->nlink, 0u, (unsigned)en->size, 0u, 0u,
		 en->rmaj, en->rmin, (unsigned)namesize, 0u);
	int r = write_bytes(w, hdr, CPIO_HDR_LEN);
	if (r == 0)
		r = write_bytes(w, en->name, namesize);
	if (r == 0)
		r = write_pad(w, CPIO_HDR_LEN + namesize);
	return r;
}

int cpio_add_dir(struct cpio_writer *w, const char *name, unsigned mode)
{
	struct cpio_entry en = { .name = name, .mode = S_IFDIR | (mode & 07777), .nlink = 2 };
	return write_header(w, &en);
}

int cpio_add_chardev(struct cpio_writer *w, const char *name, unsigned mode, unsigned maj,
		     unsigned min)
{
	struct cpio_entry en = { .name = name, .mode = S_IFCHR | (mode & 07777), .nlink = 1,
				 .rmaj = maj, .rmin = min };
	return write_header(w, &en);
}

int cpio_add_data(struct cpio_writer *w, const char *name, unsigned mode, const void *data,
		  size_t len)
{
	struct cpio_entry en = { .name = name, .mode = S_IFREG | (mode & 07777), .nlink = 1,
				 .size = len };
	int r = write_header(w, &en);
	if (r == 0)
		r = write_bytes(w, data, len);
	if (r == 0)
		r = write_pad(w, len);
	return r;
}

/* Streams exactly st_size bytes; a file that shrinks while we copy is an error rather than a
 * silently short entry (the header already promised the size). */
static int copy_exact(struct cpio_writer *w, int fd, uint64_t size)
{
	char chunk[64 * 1024];
	uint64_t left = size;
	while (left > 0) {
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ssize_t n = read(fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		int r = write_bytes(w, chunk, (size_t)n);
		if (r < 0)
			return r;
		left -= (uint64_t)n;
	}
	return write_pad(w, size);
}

int cpio_add_file(struct cpio_writer *w, const char *name, unsigned mode, const char *src,
		  struct ml_err *e)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "open %s: %s", src, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ml_err_set(e, -errno, "stat %s: %s", src, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ml_err_set(e, -EINVAL, "%s is not a regular file", src);
	struct cpio_entry en = { .name = name, .mode = S_IFREG | (mode & 07777), .nlink = 1,
				 .size = (uint64_t)st.st_size };
	int r = write_header(w, &en);
	if (r == 0)
		r = copy_exact(w, fd, en.size);
	if (r < 0)
		return ml_err_set(e, r, "add %s to the initramfs: %s", src, strerror(-r));
	return 0;
}

int cpio_finish(struct cpio_writer *w)
{
	struct cpio_entry en = { .name = "TRAILER!!!", .mode = 0, .nlink = 1 };
	w->next_ino = 0;
	int r = write_header(w, &en);
	if (r < 0)
		return r;
	/* Round the archive to 512 bytes like the cpio tool does; the kernel skips zero padding. */
	long pos = ftell(w->f);
	if (pos < 0)
		return -errno;
	static const char zeros[512];
	return write_bytes(w, zeros, (size_t)((512 - pos % 512) % 512));
}
