/* ext4/data.c - streams a regular file's bytes into its inode; all-zero blocks become holes so
 * sparse files (and zero-filled ones) cost no space in the image. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "ext4/internal.h"

#define DATA_CHUNK (256 * 1024)

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Fills buf from the reader until it is full or the data ends. */
static ssize_t fill(const struct ext4_entry *ent, unsigned char *buf, size_t cap, struct ml_err *e)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t n = ent->read(ent->read_ctx, buf + got, cap - got, e);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Writes the non-zero runs of buf (whole blocks) at pos and seeks over the zero ones. */
static errcode_t put_chunk(ext2_file_t f, const unsigned char *buf, size_t n, uint64_t pos,
			   unsigned bs)
{
	size_t off = 0;
	while (off < n) {
		size_t run = 0;
		bool zero = all_zero(buf + off, n - off < bs ? n - off : bs);
		while (off + run < n) {
			size_t blk = n - off - run < bs ? n - off - run : bs;
			if (all_zero(buf + off + run, blk) != zero)
				break;
			run += blk;
		}
		if (!zero) {
			errcode_t rc = ext2fs_file_llseek(f, pos + off, EXT2_SEEK_SET, NULL);
			unsigned int wrote = 0;
			if (!rc)
				rc = ext2fs_file_write(f, buf + off, (unsigned int)run, &wrote);
			if (!rc && wrote != run)
				rc = EXT2_ET_SHORT_WRITE;
			if (rc)
				return rc;
		}
		off += run;
	}
	return 0;
}

int inode_write_data(struct ext4_img *img, uint32_t ino, const struct ext4_entry *ent,
		     struct ml_err *e)
{
	if (!ent->read)
		return 0;
	_cleanup_free_ unsigned char *buf = malloc(DATA_CHUNK);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	ext2_file_t f;
	errcode_t rc = ext2fs_file_open(img->fs, ino, EXT2_FILE_WRITE, &f);
	if (rc)
		return ext4_errcode(rc, e, "open", ent->path);
	uint64_t pos = 0;
	int r = 0;
	for (;;) {
		ssize_t n = fill(ent, buf, DATA_CHUNK, e);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0)
			break;
		rc = put_chunk(f, buf, (size_t)n, pos, img->fs->blocksize);
		if (rc)
			break;
		pos += (uint64_t)n;
		if ((size_t)n < DATA_CHUNK)
			break;
	}
	if (!rc && r == 0)
		rc = ext2fs_file_set_size2(f, pos);
	errcode_t rc2 = ext2fs_file_close(f);
	if (r < 0)
		return r;
	if (rc || rc2)
		return ext4_errcode(rc ? rc : rc2, e, "write", ent->path);
	return 0;
}
