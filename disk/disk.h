/* disk/disk.h - persistent ext4 disks: the user's named volumes (one directory of
 * <name>.ext4 files) and the disks a sandbox attaches (`run --disk`, rpc `extra_disks`):
 * spec parsing and checks, and the lock that keeps a disk from being written by two sandboxes.
 *
 * Nothing here knows where the user's directories are: callers pass the volumes directory
 * (<cache>/volumes) and the holders directory (<state>/disks, where the owner of a lock leaves
 * its VM id so that a refused caller can say who holds the disk). See disk/README.md. */
#ifndef ML_DISK_H
#define ML_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define VOLUME_DEFAULT_MB 10240
/* A VM's virtio-mmio slots are limited (microvm has 24, five are ours); 16 extra disks is more
 * than any use we know of and leaves room for later devices. */
#define DISK_MAX_EXTRA 16

/* ---- named volumes ---- */
struct volume_info {
	char *name;
	char *path;      /* absolute */
	uint64_t size;   /* file size in bytes (the volume's capacity; it is sparse on disk) */
};

#define VOLUME_NAME_MAX 200
/* The reference's rule, on the trimmed name: ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (and at most
 * VOLUME_NAME_MAX bytes); out gets the trimmed name. "invalid volume name: ..." otherwise. */
int volume_name_check(const char *name, char out[VOLUME_NAME_MAX + 1], struct ml_err *e);
/* Path of an existing volume (malloc'd); "named volume not found: <name>" (-ENOENT). */
int volume_find(const char *dir, const char *name, char **path, struct ml_err *e);
/* A new sparse ext4 volume of size_mb MiB with a journal, made under a temp name in dir,
 * fsynced and renamed without replacing anything: a crash leaves no half-made volume, and of
 * two concurrent creates of one name exactly one wins. Errors: "create named volume: size must
 * be > 0 MB", the name rule, "named volume already exists: <name>" (-EEXIST). */
int volume_create(const char *dir, const char *name, long size_mb, char **path, struct ml_err *e);
/* Every <name>.ext4 regular file in dir, sorted by name (temp files are skipped). A missing dir
 * is an empty list. */
int volume_list(const char *dir, struct volume_info **out, size_t *n, struct ml_err *e);
void volume_list_free(struct volume_info *v, size_t n);
/* Removes a volume unless a sandbox has it attached ("named volume <name> is in use by VM
 * <id>", -EBUSY). "named volume not found: <name>" (-ENOENT). */
int volume_remove(const char *dir, const char *holders_dir, const char *name, struct ml_err *e);
/* Byte copy keeping holes, permission bits, owner and mtime; atomic like create. Refused while
 * a sandbox writes the source. Errors in the reference's order: "copy named volume: source and
 * destination must be different", not found (src), the name rule (dst), already exists (dst). */
int volume_copy(const char *dir, const char *holders_dir, const char *src, const char *dst,
		struct ml_err *e);

/* ---- a sandbox's extra disks ---- */
struct disk_spec {
	char *host_path;    /* absolute */
	char *guest_mount;  /* absolute, matches ^/[a-zA-Z0-9/_.-]+$, no "." or ".." component */
	bool readonly;
};
void disk_spec_clear(struct disk_spec *d);

/* `--disk host_path:guest_mount[:ro]` or `@volume:guest_mount[:ro]`, checked completely
 * (disk_spec_check). Errors are the reference's, wrapped as `invalid disk mount "<spec>": ...`.
 * volumes_dir resolves @names; workspace (NULL or "" = none) is the VFS mount point a disk
 * must not be under (it would be shadowed). */
int disk_spec_parse(const char *spec, const char *volumes_dir, const char *workspace,
		    struct disk_spec *out, struct ml_err *e);
/* The checks behind a spec, for callers with the parts already apart (rpc extra_disks):
 * d->host_path is made absolute (relative to the cwd) and must be an existing regular file
 * holding an ext4 filesystem (read-only probe: nothing is written); the guest mount must be
 * valid and not under workspace. Messages without the "invalid disk mount" prefix. */
int disk_spec_check(struct disk_spec *d, const char *workspace, struct ml_err *e);
/* Checks a whole set: at most DISK_MAX_EXTRA, no guest mount twice, no file twice. */
int disk_specs_check_set(const struct disk_spec *d, size_t n, struct ml_err *e);

/* ---- attaching ---- */
struct disk_lock;
/* Locks d->host_path for the VM holder (shared for a read-only disk, exclusive otherwise),
 * records holder in holders_dir, and checks the filesystem again under the lock (it may have
 * changed since it was parsed). A read-only disk whose journal still needs replaying is refused
 * (the guest could not replay it). -EBUSY: "disk <path> is in use by VM <id>". The lock lasts
 * until disk_unlock or the process's death, whichever comes first. */
int disk_lock(const struct disk_spec *d, const char *holders_dir, const char *holder,
	      struct disk_lock **out, struct ml_err *e);
void disk_unlock(struct disk_lock *l);  /* NULL-safe */

#endif
