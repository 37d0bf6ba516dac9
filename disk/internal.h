/* disk/internal.h - shared by the disk/ files only. */
#ifndef ML_DISK_INTERNAL_H
#define ML_DISK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "disk/disk.h"

/* lock.c: the lock on an open image file. OFD locks belong to the open file, not the process:
 * a second open in the same process conflicts too, and closing another fd of the file does not
 * drop it (a POSIX lock would be lost the moment libext2fs closed its own fd). They sit on one
 * byte far past QEMU's own lock bytes (100+ and 200+), which QEMU takes on the same file. */
/* 0, or -EBUSY with who ("VM vm-1234abcd" or "another sandbox") filled in. */
int lock_take(int fd, bool shared, const char *holders_dir, char *who, size_t who_len);
/* The note "<holders_dir>/<dev>-<ino>" naming the VM that holds fd's file (best effort). */
/* -EBUSY (who filled in) if anyone holds fd's file, without taking anything; works on a
 * read-only fd. */
int lock_probe(int fd, const char *holders_dir, char *who, size_t who_len);
void note_write(const char *holders_dir, int fd, const char *holder);
void note_clear(const char *holders_dir, int fd, const char *holder);

/* volume.c */
/* "<dir>/<name>.ext4" of a checked name (malloc'd), or NULL with e set. */
char *volume_path(const char *dir, const char *name, struct ml_err *e);
/* A temp file in dir that `ls` never shows and that a later create or copy removes if the
 * process that made it is gone: ".tmp-<pid>-<name>.ext4". */
char *volume_temp_path(const char *dir, const char *name);
void volume_sweep_temps(const char *dir);
/* rename(tmp, path) that never replaces an existing volume, then fsync of dir. */
int volume_publish(const char *dir, const char *tmp, const char *path, const char *name,
		   struct ml_err *e);

#endif
