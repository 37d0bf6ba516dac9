/* tests/unit/vfs_fuse_test.c - vfs/ driven the way the guest kernel drives it: FUSE requests
 * written into one end of a socketpair, replies read from it, the real worker pool on the
 * other end. Mounts are real directories under a temp dir; "outside" is a sibling the guest
 * must never reach. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "vfs/vfs.h"
#include "tests/unit/vfs_kernel.h"

/* ---- tests ---- */
static void create_write_read_getattr(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	struct fuse_entry_out e;
	uint64_t fh;
	assert_int_equal(create(&k, 1, "new.txt", O_WRONLY | O_EXCL, 0644, &e, &fh), 0);
	assert_true(e.nodeid > 1);
	assert_int_equal(e.attr.mode, S_IFREG | 0644);
	assert_int_equal(kwrite(&k, fh, 0, "hello world", 11), 11);
	release(&k, fh);
	assert_string_equal(slurp("ws/new.txt"), "hello world");
	/* O_EXCL on an existing name */
	assert_int_equal(create(&k, 1, "new.txt", O_WRONLY | O_EXCL, 0644, NULL, NULL), -EEXIST);
	assert_int_equal(kopen(&k, e.nodeid, O_RDONLY, &fh), 0);
	assert_int_equal(kread(&k, fh, 6, 100), 5);
	assert_memory_equal(rbuf, "world", 5);
	release(&k, fh);
	struct fuse_getattr_in gi = { 0 };
	struct fuse_attr_out ao;
	assert_int_equal(call(&k, FUSE_GETATTR, e.nodeid, &gi, sizeof(gi), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	assert_int_equal(ao.attr.size, 11);
	/* a name that is not there: a negative entry (nodeid 0), cacheable */
	assert_int_equal(lookup(&k, 1, "nope", &e), 0);
	assert_int_equal(e.nodeid, 0);
	assert_true(e.entry_valid > 0);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* Every way out of the mount fails that one request and touches nothing outside. */
static void confinement_holds(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	struct fuse_entry_out e;
	uint64_t fh;
	/* names the kernel never sends */
	assert_int_equal(lookup(&k, 1, "..", &e), -EINVAL);
	assert_int_equal(lookup(&k, 1, ".", &e), -EINVAL);
	assert_int_equal(lookup(&k, 1, "esc/secret", &e), -EINVAL);
	assert_int_equal(create(&k, 1, "../outside/planted", O_WRONLY, 0644, NULL, NULL), -EINVAL);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(lookup(&k, 1, longname, &e), -ENAMETOOLONG);
	/* a symlink is an entry, never followed: the guest kernel resolves it in the guest */
	assert_int_equal(lookup(&k, 1, "esc", &e), 0);
	assert_true(S_ISLNK(e.attr.mode));
	uint64_t esc = e.nodeid;
	int r = lookup(&k, esc, "secret", &e);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	r = create(&k, esc, "planted", O_WRONLY, 0644, NULL, NULL);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	assert_int_equal(kopen(&k, esc, O_RDONLY, &fh), -ELOOP);
	assert_int_equal(lookup(&k, 1, "abs", &e), 0);
	r = lookup(&k, e.nodeid, "passwd", &e);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	/* node ids and handles we never gave out */
	struct fuse_getattr_in gi = { 0 };
	assert_int_equal(call(&k, FUSE_GETATTR, 0xdeadbeef, &gi, sizeof(gi), NULL, NULL, NULL, 0, NULL, 0), -ESTALE);
	assert_int_equal(kread(&k, 0x100000007ull, 0, 10), -EBADF);
	assert_int_equal(kwrite(&k, 42, 0, "x", 1), -EBADF);
	/* sizes and offsets out of range */
	assert_int_equal(create(&k, 1, "big", O_RDWR, 0644, &e, &fh), 0);
	assert_int_equal(kread(&k, fh, 0, (1u << 20) + 1), -EINVAL);
	assert_int_equal(kwrite(&k, fh, INT64_MAX, "x", 1), -EFBIG);
	assert_int_equal(kread(&k, fh, UINT64_MAX - 2, 10), -EINVAL);
	/* > 4 GiB offsets are fine (a sparse file) */
	assert_int_equal(kwrite(&k, fh, 5ull << 30, "far", 3), 3);
	assert_int_equal(kread(&k, fh, 5ull << 30, 3), 3);
	assert_memory_equal(rbuf, "far", 3);
	release(&k, fh);
	/* a directory the host swaps for a symlink to outside: the cached node finds nothing */
	assert_int_equal(lookup(&k, 1, "sub", &e), 0);
	uint64_t sub = e.nodeid;
	sh("cd %s && mv ws/sub ws/sub.moved && ln -s ../outside ws/sub", tmp);
	r = create(&k, sub, "planted", O_WRONLY, 0644, NULL, NULL);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	/* a directory the host moves out of the mount: its node no longer leads anywhere */
	sh("cd %s && rm ws/sub && mv ws/sub.moved ws/sub", tmp);
	assert_int_equal(lookup(&k, 1, "sub", &e), 0);
	sub = e.nodeid;
	sh("cd %s && mv ws/sub outside/sub", tmp);
	assert_int_equal(create(&k, sub, "planted", O_WRONLY, 0644, NULL, NULL), -ENOENT);
	assert_int_equal(access(path_of("outside/planted"), F_OK), -1);
	assert_int_equal(access(path_of("outside/sub/planted"), F_OK), -1);
	assert_string_equal(slurp("outside/secret"), "secret\n");
	sh("cd %s && mv outside/sub ws/sub", tmp);
	/* the ownership xattr is ours: the guest can neither read nor forge it */
	assert_int_equal(lookup(&k, 1, "hello", &e), 0);
	struct { uint32_t size, flags; } sx = { 5, 0 };
	assert_int_equal(call(&k, FUSE_SETXATTR, e.nodeid, &sx, sizeof(sx), "user.matchlock.stat", NULL,
			      "0:0:0", 5, NULL, 0), -EPERM);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

static void malformed_requests_get_errors(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	/* an opcode nobody serves */
	assert_int_equal(call(&k, 9999, 1, NULL, 0, NULL, NULL, NULL, 0, NULL, 0), -ENOSYS);
	/* a write whose payload disagrees with its size */
	struct fuse_write_in wi = { .fh = 1, .size = 100 };
	assert_int_equal(call(&k, FUSE_WRITE, 1, &wi, sizeof(wi), NULL, NULL, "abc", 3, NULL, 0), -EINVAL);
	/* a name without its terminator */
	assert_int_equal(call(&k, FUSE_LOOKUP, 1, NULL, 0, NULL, NULL, "abc", 3, NULL, 0), -EINVAL);
	/* a fixed argument cut short */
	assert_int_equal(call(&k, FUSE_SETATTR, 1, "xx", 2, NULL, NULL, NULL, 0, NULL, 0), -EINVAL);
	/* FLUSH: nothing buffered here, so the kernel may stop sending it */
	struct fuse_flush_in fi = { 0 };
	assert_int_equal(call(&k, FUSE_FLUSH, 1, &fi, sizeof(fi), NULL, NULL, NULL, 0, NULL, 0), -ENOSYS);
	/* the channel is still fine */
	struct fuse_entry_out e;
	assert_int_equal(lookup(&k, 1, "hello", &e), 0);
	/* a frame length out of bounds: the channel is closed for good, the process lives on */
	struct fuse_in_header h = { .len = 0x7fffffff, .opcode = FUSE_LOOKUP, .unique = 7 };
	assert_int_equal(write(k.fd, &h, sizeof(h)), (ssize_t)sizeof(h));
	char b;
	assert_int_equal(read(k.fd, &b, 1), 0);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

static void posix_names_links_rename(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	struct fuse_entry_out e, d;
	uint64_t fh;
	struct fuse_mkdir_in mi = { .mode = 0755 };
	assert_int_equal(call(&k, FUSE_MKDIR, 1, &mi, sizeof(mi), "dir", NULL, NULL, 0, &d, sizeof(d)), 0);
	assert_true(S_ISDIR(d.attr.mode));
	assert_int_equal(create(&k, d.nodeid, "f", O_WRONLY, 0600, &e, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "old", 3), 3);
	release(&k, fh);
	assert_int_equal(create(&k, d.nodeid, "tmp", O_WRONLY, 0600, NULL, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "new", 3), 3);
	release(&k, fh);
	/* rename over an existing file; RENAME_NOREPLACE refuses */
	struct fuse_rename2_in rn = { .newdir = d.nodeid, .flags = 1 /* RENAME_NOREPLACE */ };
	assert_int_equal(call(&k, FUSE_RENAME2, d.nodeid, &rn, sizeof(rn), "tmp", "f", NULL, 0, NULL, 0), -EEXIST);
	rn.flags = 0;
	assert_int_equal(call(&k, FUSE_RENAME2, d.nodeid, &rn, sizeof(rn), "tmp", "f", NULL, 0, NULL, 0), 0);
	assert_string_equal(slurp("ws/dir/f"), "new");
	/* the renamed node follows its new name */
	assert_int_equal(lookup(&k, d.nodeid, "f", &e), 0);
	assert_int_equal(kopen(&k, e.nodeid, O_RDONLY, &fh), 0);
	assert_int_equal(kread(&k, fh, 0, 10), 3);
	release(&k, fh);
	/* a directory renamed: its children's paths follow */
	struct fuse_rename_in r1 = { .newdir = 1 };
	assert_int_equal(call(&k, FUSE_RENAME, 1, &r1, sizeof(r1), "dir", "dir2", NULL, 0, NULL, 0), 0);
	assert_int_equal(kopen(&k, e.nodeid, O_WRONLY | O_TRUNC, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "moved", 5), 5);
	release(&k, fh);
	assert_string_equal(slurp("ws/dir2/f"), "moved");
	/* symlink and readlink; hard link */
	assert_int_equal(call(&k, FUSE_SYMLINK, 1, NULL, 0, "ln", "dir2/f", NULL, 0, &e, sizeof(e)), 0);
	assert_true(S_ISLNK(e.attr.mode));
	assert_int_equal(call(&k, FUSE_READLINK, e.nodeid, NULL, 0, NULL, NULL, NULL, 0, NULL, 0), 0);
	assert_memory_equal(rbuf, "dir2/f", 6);
	assert_int_equal(lookup(&k, 1, "dir2", &d), 0);
	assert_int_equal(lookup(&k, d.nodeid, "f", &e), 0);
	struct fuse_link_in li = { .oldnodeid = e.nodeid };
	struct fuse_entry_out le;
	assert_int_equal(call(&k, FUSE_LINK, 1, &li, sizeof(li), "hard", NULL, NULL, 0, &le, sizeof(le)), 0);
	assert_int_equal(le.attr.nlink, 2);
	assert_int_equal(le.attr.ino, e.attr.ino);
	/* unlink, rmdir (not empty, then empty) */
	assert_int_equal(call(&k, FUSE_RMDIR, 1, NULL, 0, "dir2", NULL, NULL, 0, NULL, 0), -ENOTEMPTY);
	assert_int_equal(call(&k, FUSE_UNLINK, d.nodeid, NULL, 0, "f", NULL, NULL, 0, NULL, 0), 0);
	assert_int_equal(call(&k, FUSE_RMDIR, 1, NULL, 0, "dir2", NULL, NULL, 0, NULL, 0), 0);
	assert_string_equal(slurp("ws/hard"), "moved");
	/* truncate and chmod through SETATTR */
	assert_int_equal(lookup(&k, 1, "hard", &e), 0);
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_MODE, .size = 2, .mode = 0640 };
	struct fuse_attr_out ao;
	assert_int_equal(call(&k, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	assert_int_equal(ao.attr.size, 2);
	assert_int_equal(ao.attr.mode & 07777, 0640);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* chown and modes the host cannot show are kept as the guest set them */
static void ownership_as_the_guest_sees_it(void **state)
{
	(void)state;
	if (setxattr(path_of("ws/hello"), "user.probe", "1", 1, 0) < 0)
		skip(); /* the temp filesystem keeps no user xattrs */
	removexattr(path_of("ws/hello"), "user.probe");
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	/* the agent's hello: files without a guest owner show as 1000:1000 */
	struct { uint32_t ver, uid, gid; } hello = { 1, 1000, 1000 };
	send_req(&k, 0x4d4c0001u, 0, NULL, 0, NULL, NULL, &hello, sizeof(hello));
	struct fuse_entry_out e;
	assert_int_equal(lookup(&k, 1, "hello", &e), 0);
	assert_int_equal(e.attr.uid, 1000);
	assert_int_equal(e.attr.gid, 1000);
	/* created by uid 2000: owned by 2000 */
	k.uid = 2000;
	k.gid = 2000;
	uint64_t fh;
	assert_int_equal(create(&k, 1, "by2000", O_WRONLY, 0400, &e, &fh), 0);
	release(&k, fh);
	assert_int_equal(e.attr.uid, 2000);
	assert_int_equal(e.attr.mode & 07777, 0400);
	struct stat st;
	assert_int_equal(stat(path_of("ws/by2000"), &st), 0);
	assert_int_equal(st.st_mode & 0600, 0600); /* the host keeps its own access */
	/* chown by root, chmod with set-id bits: shown, never given to the host file */
	k.uid = k.gid = 0;
	struct fuse_setattr_in sa = { .valid = FATTR_UID | FATTR_GID | FATTR_MODE, .uid = 5, .gid = 6, .mode = 04755 };
	struct fuse_attr_out ao;
	assert_int_equal(call(&k, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	assert_int_equal(ao.attr.uid, 5);
	assert_int_equal(ao.attr.gid, 6);
	assert_int_equal(ao.attr.mode & 07777, 04755);
	assert_int_equal(stat(path_of("ws/by2000"), &st), 0);
	assert_int_equal(st.st_mode & 07000, 0);
	/* a write by a caller without CAP_FSETID drops set-uid (FUSE_HANDLE_KILLPRIV_V2) */
	assert_int_equal(kopen(&k, e.nodeid, O_WRONLY, &fh), 0);
	struct fuse_write_in wi = { .fh = fh, .size = 1, .write_flags = FUSE_WRITE_KILL_SUIDGID };
	assert_int_equal(call(&k, FUSE_WRITE, 0, &wi, sizeof(wi), NULL, NULL, "x", 1, NULL, 0), 0);
	release(&k, fh);
	struct fuse_getattr_in gi = { 0 };
	assert_int_equal(call(&k, FUSE_GETATTR, e.nodeid, &gi, sizeof(gi), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	assert_int_equal(ao.attr.mode & 07777, 0755);
	/* and a chown drops it too */
	sa = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = 06755 };
	assert_int_equal(call(&k, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	sa = (struct fuse_setattr_in){ .valid = FATTR_UID, .uid = 7 };
	assert_int_equal(call(&k, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), NULL, NULL, NULL, 0, &ao, sizeof(ao)), 0);
	assert_int_equal(ao.attr.mode & 07777, 0755);
	assert_int_equal(ao.attr.uid, 7);
	/* and the guest cannot list our xattr */
	struct fuse_getxattr_in gx = { .size = 0 };
	struct fuse_getxattr_out gxo;
	assert_int_equal(call(&k, FUSE_LISTXATTR, e.nodeid, &gx, sizeof(gx), NULL, NULL, NULL, 0, &gxo, sizeof(gxo)), 0);
	assert_int_equal(gxo.size, 0);
	kstop(&k, NULL);
	vfs_config_free(&c);
	unlink(path_of("ws/by2000"));
}

static void readonly_mount_refuses_writes(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), true);
	struct kern k = kstart(&c);
	struct fuse_entry_out e;
	uint64_t fh;
	assert_int_equal(create(&k, 1, "x", O_WRONLY, 0644, NULL, NULL), -EROFS);
	assert_int_equal(lookup(&k, 1, "hello", &e), 0);
	assert_int_equal(kopen(&k, e.nodeid, O_RDWR, &fh), -EROFS);
	assert_int_equal(kopen(&k, e.nodeid, O_RDONLY, &fh), 0);
	assert_int_equal(kread(&k, fh, 0, 10), 3);
	release(&k, fh);
	struct fuse_setattr_in sa = { .valid = FATTR_MODE, .mode = 0777 };
	assert_int_equal(call(&k, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), NULL, NULL, NULL, 0, NULL, 0), -EROFS);
	assert_int_equal(call(&k, FUSE_UNLINK, 1, NULL, 0, "hello", NULL, NULL, 0, NULL, 0), -EROFS);
	struct fuse_mkdir_in mi = { .mode = 0755 };
	assert_int_equal(call(&k, FUSE_MKDIR, 1, &mi, sizeof(mi), "d", NULL, NULL, 0, NULL, 0), -EROFS);
	assert_int_equal(access(path_of("ws/x"), F_OK), -1);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

static void overlay_copies_and_keeps_the_host(void **state)
{
	(void)state;
	sh("cd %s && mkdir -p ov/d && echo orig > ov/d/f && ln ov/d/f ov/d/f2 && ln -s d/f ov/l", tmp);
	struct vfs_config c = one_mount(VFS_MOUNT_OVERLAY, path_of("ov"), false);
	struct kern k = kstart(&c);
	struct fuse_entry_out d, e;
	uint64_t fh;
	assert_int_equal(lookup(&k, 1, "d", &d), 0);
	assert_int_equal(lookup(&k, d.nodeid, "f", &e), 0);
	assert_int_equal(e.attr.nlink, 2); /* hard links kept in the copy */
	assert_int_equal(kopen(&k, e.nodeid, O_WRONLY | O_TRUNC, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "changed", 7), 7);
	release(&k, fh);
	assert_int_equal(create(&k, 1, "added", O_WRONLY, 0644, NULL, &fh), 0);
	release(&k, fh);
	assert_int_equal(lookup(&k, 1, "l", &e), 0);
	assert_true(S_ISLNK(e.attr.mode));
	assert_string_equal(slurp("ov/d/f"), "orig\n");
	assert_int_equal(access(path_of("ov/added"), F_OK), -1);
	assert_int_equal(access(path_of("state/overlay/mount-000/added"), F_OK), 0);
	kstop(&k, NULL);
	/* the copy goes with the VM */
	assert_int_equal(access(path_of("state/overlay/mount-000"), F_OK), -1);
	vfs_config_free(&c);
}

static void memory_mount_holds_files_within_its_limit(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_MEMORY, NULL, false);
	c.memory_limit = 1 << 20;
	struct kern k = kstart(&c);
	struct fuse_entry_out e;
	uint64_t fh;
	assert_int_equal(create(&k, 1, "m", O_RDWR, 0644, &e, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "memory", 6), 6);
	assert_int_equal(kread(&k, fh, 0, 100), 6);
	assert_memory_equal(rbuf, "memory", 6);
	static uint8_t big[600 << 10];
	assert_int_equal(kwrite(&k, fh, 0, big, sizeof(big)), (int)sizeof(big));
	assert_int_equal(kwrite(&k, fh, sizeof(big), big, sizeof(big)), -ENOSPC);
	release(&k, fh);
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out d;
	assert_int_equal(call(&k, FUSE_MKDIR, 1, &mi, sizeof(mi), "dir", NULL, NULL, 0, &d, sizeof(d)), 0);
	struct fuse_rename_in r1 = { .newdir = d.nodeid };
	assert_int_equal(call(&k, FUSE_RENAME, 1, &r1, sizeof(r1), "m", "m2", NULL, 0, NULL, 0), 0);
	/* a directory cannot move below itself, even by a forged request */
	struct fuse_rename_in r2 = { .newdir = d.nodeid };
	assert_int_equal(call(&k, FUSE_RENAME, 1, &r2, sizeof(r2), "dir", "inner", NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(lookup(&k, d.nodeid, "m2", &e), 0);
	assert_int_equal(e.attr.size, sizeof(big));
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* Mount points below the workspace: missing parents are synthesized, single files shown. */
static void nested_and_single_file_mounts(void **state)
{
	(void)state;
	struct vfs_config c = { .workspace = strdup("/workspace") };
	struct vfs_mount_cfg m1 = { .guest_path = strdup("/workspace/a/b"), .type = VFS_MOUNT_HOST_FS,
				    .host_path = strdup(path_of("ws")) };
	struct vfs_mount_cfg m2 = { .guest_path = strdup("/workspace/one.txt"), .type = VFS_MOUNT_HOST_FS,
				    .host_path = strdup(path_of("ro.txt")), .readonly = true };
	assert_int_equal(vfs_config_add_mount(&c, &m1), 0);
	assert_int_equal(vfs_config_add_mount(&c, &m2), 0);
	struct kern k = kstart(&c);
	struct fuse_open_in oi = { 0 };
	struct fuse_open_out oo;
	assert_int_equal(call(&k, FUSE_OPENDIR, 1, &oi, sizeof(oi), NULL, NULL, NULL, 0, &oo, sizeof(oo)), 0);
	struct fuse_read_in ri = { .fh = oo.fh, .size = 4096 };
	assert_int_equal(call(&k, FUSE_READDIR, 1, &ri, sizeof(ri), NULL, NULL, NULL, 0, NULL, 0), 0);
	bool a = false, one = false;
	for (size_t o = 0; o < 4096;) {
		struct fuse_dirent dd;
		memcpy(&dd, rbuf + o, sizeof(dd));
		if (!dd.namelen)
			break;
		a |= dd.namelen == 1 && !memcmp(rbuf + o + FUSE_NAME_OFFSET, "a", 1);
		one |= dd.namelen == 7 && !memcmp(rbuf + o + FUSE_NAME_OFFSET, "one.txt", 7);
		o += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + dd.namelen);
	}
	assert_true(a);
	assert_true(one);
	struct fuse_entry_out e, f;
	assert_int_equal(lookup(&k, 1, "a", &e), 0);
	assert_int_equal(create(&k, e.nodeid, "x", O_WRONLY, 0644, NULL, NULL), -EROFS); /* synthesized */
	assert_int_equal(lookup(&k, e.nodeid, "b", &e), 0);
	assert_int_equal(lookup(&k, e.nodeid, "hello", &f), 0);
	assert_int_equal(lookup(&k, 1, "one.txt", &e), 0);
	assert_true(S_ISREG(e.attr.mode));
	uint64_t fh;
	assert_int_equal(kopen(&k, e.nodeid, O_RDONLY, &fh), 0);
	assert_int_equal(kread(&k, fh, 0, 100), 8);
	assert_memory_equal(rbuf, "ro-data\n", 8);
	release(&k, fh);
	/* a mount point is not removed or replaced */
	assert_int_equal(call(&k, FUSE_UNLINK, 1, NULL, 0, "one.txt", NULL, NULL, 0, NULL, 0), -EROFS);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* Block rules fail the op with EPERM; events: one write per WRITE, with the full guest path. */
static void rules_and_events(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	c.emit_events = true;
	c.rules = calloc(1, sizeof(*c.rules));
	c.rules[0] = (struct vfs_rule){ .ops = 1u << VFS_OP_CREATE, .path = strdup("/workspace/blocked*"),
					.action = VFS_ACTION_BLOCK };
	c.n_rules = 1;
	struct kern k = kstart(&c);
	assert_true(vfs_events_fd(k.v) >= 0);
	uint64_t fh;
	assert_int_equal(create(&k, 1, "blocked.txt", O_WRONLY, 0644, NULL, NULL), -EPERM);
	assert_int_equal(access(path_of("ws/blocked.txt"), F_OK), -1);
	assert_int_equal(create(&k, 1, "ok.txt", O_WRONLY, 0644, NULL, &fh), 0);
	assert_int_equal(kwrite(&k, fh, 0, "one", 3), 3);
	release(&k, fh);
	struct vfs_event ev;
	int creates = 0, writes = 0, closes = 0;
	while (vfs_event_next(k.v, &ev)) {
		if (ev.op == VFS_OP_CREATE) {
			creates++;
			assert_string_equal(ev.path, "/workspace/ok.txt");
		}
		if (ev.op == VFS_OP_WRITE) {
			writes++;
			assert_int_equal(ev.size, 3);
			assert_true(S_ISREG(ev.mode));
		}
		closes += ev.op == VFS_OP_CLOSE;
	}
	assert_int_equal(creates, 1); /* the blocked create emitted nothing */
	assert_int_equal(writes, 1);
	assert_int_equal(closes, 1);
	kstop(&k, NULL);
	vfs_config_free(&c);
	unlink(path_of("ws/ok.txt"));
}

/* Requests are pipelined: a burst of them is read and answered by several workers, and every
 * one gets its own reply (matched by unique, in whatever order). */
static void many_requests_in_flight(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	c.workers = 8;
	struct kern k = kstart(&c);
	enum { N = 400 };
	static bool seen[N + 16];
	uint64_t first = k.uniq + 1;
	for (int i = 0; i < N; i++)
		send_req(&k, FUSE_LOOKUP, 1, NULL, 0, i % 2 ? "hello" : "nope", NULL, NULL, 0);
	for (int i = 0; i < N; i++) {
		struct fuse_out_header h;
		read_rep(&k, &h);
		assert_true(h.unique >= first && h.unique < first + N);
		assert_false(seen[h.unique - first]);
		seen[h.unique - first] = true;
	}
	struct vfs_stats st;
	vfs_get_stats(k.v, &st);
	assert_true(st.requests >= N);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* A directory of many entries is listed whole, across READDIR calls with offsets. */
static void large_directory_lists_every_entry(void **state)
{
	(void)state;
	sh("mkdir -p %s/many && cd %s/many && seq 1 20000 | xargs touch", tmp, tmp);
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("many"), false);
	struct kern k = kstart(&c);
	struct fuse_open_in oi = { 0 };
	struct fuse_open_out oo;
	assert_int_equal(call(&k, FUSE_OPENDIR, 1, &oi, sizeof(oi), NULL, NULL, NULL, 0, &oo, sizeof(oo)), 0);
	uint64_t off = 0;
	size_t n = 0;
	for (;;) {
		struct fuse_read_in ri = { .fh = oo.fh, .offset = off, .size = 65536 };
		uint64_t u = send_req(&k, FUSE_READDIR, 1, &ri, sizeof(ri), NULL, NULL, NULL, 0);
		struct fuse_out_header h;
		size_t len = read_rep(&k, &h);
		assert_int_equal(h.unique, u);
		assert_int_equal(h.error, 0);
		if (len == 0)
			break;
		for (size_t o = 0; o < len;) {
			struct fuse_dirent dd;
			memcpy(&dd, rbuf + o, sizeof(dd));
			n++;
			off = dd.off;
			o += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + dd.namelen);
		}
	}
	assert_int_equal(n, 20000 + 2);
	struct fuse_release_in rel = { .fh = oo.fh };
	assert_int_equal(call(&k, FUSE_RELEASEDIR, 1, &rel, sizeof(rel), NULL, NULL, NULL, 0, NULL, 0), 0);
	kstop(&k, NULL);
	vfs_config_free(&c);
}

/* The files API goes through the same tree, rules and events. */
static void files_api_write_read_list(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_MEMORY, NULL, false);
	c.emit_events = true;
	c.rules = calloc(1, sizeof(*c.rules));
	c.rules[0] = (struct vfs_rule){ .ops = 1u << VFS_OP_CREATE, .path = strdup("/workspace/blocked.txt"),
					.action = VFS_ACTION_BLOCK };
	c.n_rules = 1;
	struct vfs *v;
	struct ml_err e = { 0 };
	assert_int_equal(vfs_new(&c, path_of("state"), &v, &e), 0);
	assert_true(vfs_covers(v, "/workspace/x"));
	assert_false(vfs_covers(v, "/workspacex"));
	assert_int_equal(vfs_write_file(v, "/workspace/a/b/c.txt", "content", 7, 0600, &e), 0);
	assert_int_equal(vfs_write_file(v, "/workspace/blocked.txt", "x", 1, 0644, &e), -EPERM);
	assert_string_equal(e.msg, "open /workspace/blocked.txt: operation not permitted");
	uint8_t *data;
	size_t len;
	assert_int_equal(vfs_read_file(v, "/workspace/a/b/c.txt", &data, &len, &e), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(data, "content", 7);
	free(data);
	assert_int_equal(vfs_read_file(v, "/workspace/a", &data, &len, &e), -EINVAL);
	assert_string_equal(e.msg, "read_file only supports regular files: /workspace/a");
	assert_int_equal(vfs_read_file(v, "/workspace/none", &data, &len, &e), -ENOENT);
	assert_string_equal(e.msg, "open /workspace/none: no such file or directory");
	struct vfs_file_info *f;
	size_t n;
	assert_int_equal(vfs_write_file(v, "/workspace/a/b/a.txt", "", 0, 0755, &e), 0);
	assert_int_equal(vfs_list_files(v, "/workspace/a/b", &f, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].name, "a.txt");
	assert_int_equal(f[0].mode & 07777, 0755);
	assert_string_equal(f[1].name, "c.txt");
	assert_int_equal(f[1].size, 7);
	vfs_file_infos_free(f, n);
	int writes = 0, mkdirs = 0;
	struct vfs_event ev;
	while (vfs_event_next(v, &ev)) {
		writes += ev.op == VFS_OP_WRITE;
		mkdirs += ev.op == VFS_OP_MKDIR;
	}
	assert_int_equal(writes, 1); /* the empty file is written with no write */
	assert_int_equal(mkdirs, 2);
	assert_int_equal(vfs_go_mode(S_IFDIR | 0755), 2147484141u);
	vfs_free(v);
	vfs_config_free(&c);
}

/* A files API write with the guest connected: the kernel is told to drop the name and the file,
 * then a sync marker follows, and the call returns once the agent has answered it. */
struct api_write {
	struct vfs *v;
	int r;
};
static void *api_write_main(void *arg)
{
	struct api_write *w = arg;
	struct ml_err e = { 0 };
	w->r = vfs_write_file(w->v, "/workspace/from-api.txt", "api", 3, 0644, &e);
	return NULL;
}

static void files_api_invalidates_then_syncs(void **state)
{
	(void)state;
	struct vfs_config c = one_mount(VFS_MOUNT_HOST_FS, path_of("ws"), false);
	struct kern k = kstart(&c);
	struct fuse_entry_out e;
	assert_int_equal(lookup(&k, 1, "from-api.txt", &e), 0); /* a negative entry the guest caches */
	assert_int_equal(e.nodeid, 0);
	struct api_write w = { .v = k.v, .r = 1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, api_write_main, &w), 0);
	bool inval_entry = false;
	for (;;) {
		struct fuse_out_header h;
		size_t n = read_rep(&k, &h);
		assert_int_equal(h.unique, 0); /* notifications only */
		if (h.error == FUSE_NOTIFY_INVAL_ENTRY) {
			struct fuse_notify_inval_entry_out o;
			memcpy(&o, rbuf, sizeof(o));
			inval_entry |= o.parent == 1 && o.namelen == 12 && !memcmp(rbuf + sizeof(o), "from-api.txt", 13);
			continue;
		}
		if (h.error == FUSE_NOTIFY_INVAL_INODE)
			continue;
		assert_int_equal(h.error, 0x4d4c); /* the sync marker, after the invalidations */
		assert_int_equal(n, 8);
		assert_true(inval_entry);
		send_req(&k, 0x4d4c0002u, 0, NULL, 0, NULL, NULL, rbuf, 8);
		break;
	}
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	assert_string_equal(slurp("ws/from-api.txt"), "api");
	kstop(&k, NULL);
	vfs_config_free(&c);
	unlink(path_of("ws/from-api.txt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_write_read_getattr),
		cmocka_unit_test(confinement_holds),
		cmocka_unit_test(malformed_requests_get_errors),
		cmocka_unit_test(posix_names_links_rename),
		cmocka_unit_test(ownership_as_the_guest_sees_it),
		cmocka_unit_test(readonly_mount_refuses_writes),
		cmocka_unit_test(overlay_copies_and_keeps_the_host),
		cmocka_unit_test(memory_mount_holds_files_within_its_limit),
		cmocka_unit_test(nested_and_single_file_mounts),
		cmocka_unit_test(rules_and_events),
		cmocka_unit_test(many_requests_in_flight),
		cmocka_unit_test(large_directory_lists_every_entry),
		cmocka_unit_test(files_api_write_read_list),
		cmocka_unit_test(files_api_invalidates_then_syncs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
