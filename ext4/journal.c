/* ext4/journal.c - a journal for images that outlive a VM (named volumes, --disk files).
 *
 * A scratch disk dies with its VM, so it needs none; a volume does: a guest killed in the middle
 * of a write (the supervisor crashed, a timeout fired) then leaves a filesystem that the next
 * mount repairs by replaying the journal, instead of one that needs e2fsck, which the guest
 * does not have. */
#include <errno.h>

#include "ext4/internal.h"

int ext4_add_journal(struct ext4_img *img, struct ml_err *e)
{
	struct ext2fs_journal_params jp;
	errcode_t rc = ext2fs_get_journal_params(&jp, img->fs);
	/* mke2fs gives filesystems under 2048 blocks (8 MiB) no journal either: it would not fit */
	if (rc == EXT2_ET_JOURNAL_TOO_SMALL)
		return 0;
	if (rc)
		return ext4_errcode(rc, e, "journal size", img->path);
	/* LAZYINIT: the file is new and sparse, so the journal's blocks already read as zeros and
	 * need no zeroing pass (that pass would also make a sparse 10 GiB volume 64 MiB fatter). */
	rc = ext2fs_add_journal_inode3(img->fs, &jp, ~0ULL,
				       EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK);
	return rc ? ext4_errcode(rc, e, "create journal", img->path) : 0;
}
