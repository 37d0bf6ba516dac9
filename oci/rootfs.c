/* oci/rootfs.c - one read-only ext4 per image, built on first use under a lock and shared.
 *
 * Sizing: libext2fs cannot grow an image while writing it, and a counting pass costs a second
 * decompression of every layer. So the first attempt guesses (blob size, x5 for compressed
 * blobs, +30%, +64 MiB: the file is sparse, so a generous guess costs nothing on disk), and only
 * if that runs out of space does a counting pass size the second, exact attempt. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/internal.h"

struct layers {
	char **digests;
	int *fds;
	size_t n;
};

static void layers_close(struct layers *l)
{
	for (size_t i = 0; l->fds && i < l->n; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	free(l->fds);
	strv_free(l->digests);
}

static int layers_open(struct oci_store *s, const char *digest, struct layers *l, struct ml_err *e)
{
	memset(l, 0, sizeof(*l));
	int r = store_layers(s, digest, &l->digests, e);
	if (r < 0)
		return r;
	while (l->digests[l->n])
		l->n++;
	l->fds = malloc(l->n * sizeof(int));
	if (!l->fds)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n; i++)
		l->fds[i] = -1;
	for (size_t i = 0; i < l->n; i++) {
		_cleanup_free_ char *p = store_path(s, "blobs/sha256_%s.tar", l->digests[i] + 7);
		if (!p)
			return ml_err_set(e, -ENOMEM, "out of memory");
		l->fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (l->fds[i] < 0)
			return ml_err_set(e, -errno, "layer %s: blob missing from the store: %m", l->digests[i]);
	}
	return 0;
}

static uint64_t guess_size(const struct layers *l)
{
	uint64_t total = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct stat st;
		unsigned char magic[4] = {0};
		if (fstat(l->fds[i], &st) < 0)
			continue;
		bool packed = pread(l->fds[i], magic, 4, 0) == 4 &&
			      ((magic[0] == 0x1f && magic[1] == 0x8b) ||
			       (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd));
		total += (uint64_t)st.st_size * (packed ? 5 : 1);
	}
	uint64_t size = total + total * 3 / 10 + (64ULL << 20);
	return size > expand_limit() ? expand_limit() : size;
}

/* A layer that inflates a thousandfold is a bomb, not an image; real images stay far below
 * the default, and users with huge ones raise it explicitly. */
uint64_t expand_limit(void)
{
	unsigned long long mb = oci_settings_get()->max_rootfs_mb;
	if (mb == 0)
		mb = OCI_EXPAND_DEFAULT_MB;
	uint64_t bytes = mb > (OCI_EXPAND_MAX >> 20) ? OCI_EXPAND_MAX : (uint64_t)mb << 20;
	return bytes;
}

static int measure(const struct layers *l, uint64_t *size, uint64_t *inodes, struct ml_err *e)
{
	uint64_t bytes = 0, entries = 0, budget = expand_limit();
	for (size_t i = 0; i < l->n; i++) {
		if (lseek(l->fds[i], 0, SEEK_SET) < 0)
			return ml_err_set(e, -errno, "layer %s: %m", l->digests[i]);
		int r = layer_measure(l->fds[i], l->digests[i], &bytes, &entries, &budget, e);
		if (r < 0)
			return r;
	}
	/* Per entry: its 256-byte inode (a quarter spare), and up to 2 x 272 bytes of directory
	 * entry (a 255-byte name; the leaves of an indexed directory are half full after a split). */
	*inodes = entries + entries / 4 + 4096;
	*size = bytes + bytes / 5 + *inodes * 256 + entries * 544 + (64ULL << 20);
	return 0;
}

static int build(const char *tmp, const struct layers *l, uint64_t size, uint64_t inodes,
		 struct ml_err *e)
{
	struct ext4_img *img;
	int r = ext4_create(tmp, size, inodes, &img, e);
	if (r < 0)
		return r;
	uint64_t budget = expand_limit();
	for (size_t i = 0; r == 0 && i < l->n; i++) {
		ext4_next_generation(img);
		if (lseek(l->fds[i], 0, SEEK_SET) < 0)
			r = ml_err_set(e, -errno, "layer %s: %m", l->digests[i]);
		else
			r = layer_apply(img, l->fds[i], l->digests[i], &budget, e);
	}
	if (r < 0) {
		ext4_abort(img);
		return r;
	}
	return ext4_finish(img, e);
}

static int build_locked(struct oci_store *s, const struct oci_image *img, const char *final,
			struct ml_err *e)
{
	struct layers l;
	int r = layers_open(s, img->digest, &l, e);
	_cleanup_free_ char *tmp = NULL;
	if (r == 0 && asprintf(&tmp, "%s.tmp.%d", final, (int)getpid()) < 0)
		r = ml_err_set(e, -ENOMEM, "out of memory");
	if (r == 0) {
		r = build(tmp, &l, guess_size(&l), 0, e);
		uint64_t size = 0, inodes = 0;
		if (r == -ENOSPC && (r = measure(&l, &size, &inodes, e)) == 0)
			r = build(tmp, &l, size, inodes, e);
	}
	if (r == 0 && rename(tmp, final) < 0)
		r = ml_err_set(e, -errno, "rename %s: %m", final);
	if (r < 0 && tmp)
		unlink(tmp);
	layers_close(&l);
	return r;
}

int oci_rootfs(struct oci_store *s, const struct oci_image *img, char **path, bool *built,
	       struct ml_err *e)
{
	if (!digest_valid(img->digest))
		return ml_err_set(e, -EINVAL, "image %s: bad digest", img->tag ? img->tag : "?");
	_cleanup_free_ char *final = store_path(s, "rootfs/%s.ext4", img->digest + 7);
	_cleanup_free_ char *lock = store_path(s, "rootfs/%s.lock", img->digest + 7);
	if (!final || !lock)
		return ml_err_set(e, -ENOMEM, "out of memory");
	*built = false;
	if (access(final, F_OK) == 0) {
		*path = steal_ptr(&final);
		return 0;
	}
	_cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return ml_err_set(e, -errno, "open %s: %m", lock);
	while (flock(lfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ml_err_set(e, -errno, "lock %s: %m", lock);
	if (access(final, F_OK) != 0) {
		int r = build_locked(s, img, final, e);
		if (r < 0)
			return ml_err_wrap(e, "building rootfs for %s", img->tag ? img->tag : img->digest);
		_cleanup_free_ char *dir = store_path(s, "rootfs");
		_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd >= 0)
			fsync(dfd);
		*built = true;
	}
	*path = steal_ptr(&final);
	return 0;
}
