/* agent/fileop.c - file operations the host asks for (rpc write_file, read_file, list_files),
 * run in the forked child of an exec with EXF_FILEOP, so they reuse everything an exec has:
 * its stream, stdin/stdout pipes, flow control, exit status. argv names the operation:
 *   ["write", path, mode-octal]  stdin -> path (parents made 0755; mode applies on creation)
 *   ["read", path]               path -> stdout (regular files up to PROTO_FILE_READ_MAX)
 *   ["list", path]               one record per entry -> stdout (format in PROTOCOL.md)
 * Exit 0 on success; on failure one line on stderr in the host's wording ("open /x: no such
 * file or directory") and exit 1. Runs as root, like the agent, with no seccomp: the host, not
 * the workload, asked for it. */
#include "agent/agent.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

/* Go's error texts, which the SDKs' users see: strerror with a lower-case first letter. */
static void fail(const char *op, const char *path, int err)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "%s", strerror(err));
	msg[0] = (char)tolower((unsigned char)msg[0]);
	dprintf(2, "%s %s: %s", op, path, msg);
	_exit(1);
}

static void copy_fd(int from, int to, const char *op, const char *path)
{
	char buf[64 * 1024];
	for (;;) {
		ssize_t n = read(from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(op, path, errno);
		if (n == 0)
			return;
		if (write_all(to, buf, (size_t)n) < 0)
			fail(op, path, errno);
	}
}

static void make_parents(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir_p(dir, 0755) < 0)
		fail("mkdir", dir, errno);
}

static void op_write(const char *path, const char *mode_s)
{
	mode_t mode = (mode_t)strtoul(mode_s ? mode_s : "644", NULL, 8) & 07777;
	make_parents(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
	if (fd < 0)
		fail("open", path, errno);
	copy_fd(0, fd, "write", path);
	if (close(fd) < 0)
		fail("close", path, errno);
	_exit(0);
}

static void op_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fail("open", path, errno);
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail("stat", path, errno);
	if (!S_ISREG(st.st_mode)) {
		dprintf(2, "read_file only supports regular files: %s", path);
		_exit(1);
	}
	if (st.st_size > (off_t)PROTO_FILE_READ_MAX) {
		dprintf(2, "read_file exceeds %u bytes: %s", PROTO_FILE_READ_MAX, path);
		_exit(1);
	}
	fcntl(fd, F_SETFL, 0);
	copy_fd(fd, 1, "read", path);
	_exit(0);
}

/* u16 name length, name, u64 size, u32 st_mode, i64 mtime (seconds) - little-endian. */
static void put_entry(int dirfd, const char *name)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* vanished between readdir and stat: not listed */
	size_t nl = strlen(name);
	uint8_t rec[2 + 255 + 8 + 4 + 8];
	if (nl > 255)
		return;
	put_u16(rec, (uint16_t)nl);
	memcpy(rec + 2, name, nl);
	put_u64(rec + 2 + nl, (uint64_t)st.st_size);
	put_u32(rec + 2 + nl + 8, (uint32_t)st.st_mode);
	put_u64(rec + 2 + nl + 12, (uint64_t)st.st_mtim.tv_sec);
	if (write_all(1, rec, 2 + nl + 20) < 0)
		_exit(1);
}

static void op_list(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		fail("open", path, errno);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			put_entry(dirfd(d), de->d_name);
	_exit(0);
}

void child_fileop(const struct proto_exec *x)
{
	const char *op = x->argv[0], *path = x->argv[1];
	if (!path || path[0] != '/') {
		dprintf(2, "%s: path must be absolute", op);
		_exit(1);
	}
	if (!strcmp(op, "write"))
		op_write(path, x->argv[2]);
	if (!strcmp(op, "read"))
		op_read(path);
	if (!strcmp(op, "list"))
		op_list(path);
	dprintf(2, "unknown file operation %s", op);
	_exit(1);
}
