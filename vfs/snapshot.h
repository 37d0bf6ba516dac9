/* vfs/snapshot.h - the copy an overlay mount serves (snapshot.c). Internal to vfs/. */
#ifndef ML_VFS_SNAPSHOT_H
#define ML_VFS_SNAPSHOT_H

#include <stdint.h>

#include "base/err.h"

struct snapshot_stats {
	uint64_t files, bytes;                /* entries copied, file bytes */
	uint64_t reflinked, ranged, copied;   /* files by method: FICLONE, copy_file_range, read+write */
	double seconds;
};
/* Copies host_path (a directory: its contents; a file: the file, under its own name) into the
 * new directory dest. The host is only read; symlinks are copied, never followed. */
int snapshot_take(const char *host_path, const char *dest, struct snapshot_stats *st, struct ml_err *e);
/* rm -rf dest (never follows symlinks). */
int snapshot_remove(const char *dest);

#endif
