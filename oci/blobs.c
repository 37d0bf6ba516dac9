/* oci/blobs.c - downloading blobs into the store (see registry.h for the contract).
 *
 * Locking without deadlock: a transfer holds its blob's lock while it runs, so a lock another
 * process holds is only ever waited for (blocking) when this process holds none; otherwise the
 * job is retried with LOCK_NB on the next turn of the loop. Whoever gets the lock second finds
 * the blob in place and reuses it. Temp files of a blob whose lock we hold belong to a dead
 * process (kill -9) and are removed. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/registry.h"

#define PARALLEL 4
#define DISCARD_MAX (64u << 10)

enum { J_PENDING, J_RUNNING, J_DONE };

static void fsync_dir(struct oci_store *s, const char *sub)
{
	_cleanup_free_ char *dir = store_path(s, "%s", sub);
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd >= 0)
		fsync(dfd);
}

int blob_write(struct oci_store *s, const char *hex, const char *ext, const void *buf, size_t len,
	       struct ml_err *e)
{
	_cleanup_free_ char *final = store_path(s, "blobs/sha256_%s.%s", hex, ext);
	_cleanup_free_ char *tmp = store_path(s, "tmp/blob-%s.XXXXXX", hex);
	if (!final || !tmp)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (access(final, F_OK) == 0)
		return 0;
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s: %m", tmp);
	int r = oci_write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, final) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return ml_err_set(e, r, "writing blob sha256:%.12s: %s", hex, strerror(-r));
	}
	fsync_dir(s, "blobs");
	return 0;
}

static size_t job_write(char *p, size_t sz, size_t n, void *arg)
{
	struct blob_job *j = arg;
	size_t len = sz * n;
	long status = 0;
	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		/* an error page: keep none of it, and not much of it */
		j->got += len;
		return j->got > DISCARD_MAX ? 0 : len;
	}
	if (j->got + len > j->size) {
		j->too_big = true;
		return 0;
	}
	int r = oci_write_all(j->fd, p, len);
	if (r < 0) {
		j->err = r;
		return 0;
	}
	sha256_update(j->hash, p, len);
	j->got += len;
	return len;
}

static size_t job_header(char *p, size_t sz, size_t n, void *arg)
{
	struct blob_job *j = arg;
	size_t len = sz * n;
	static const char name[] = "www-authenticate:";
	if (len > sizeof(name) - 1 && len < 4096 && !strncasecmp(p, name, sizeof(name) - 1)) {
		const char *v = p + sizeof(name) - 1;
		size_t vn = len - (sizeof(name) - 1);
		while (vn && (*v == ' '))
			v++, vn--;
		while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n'))
			vn--;
		free(j->challenge);
		j->challenge = strndup(v, vn);
	}
	return len;
}

static void remove_stale_temps(struct oci_store *s, const char *hex)
{
	_cleanup_free_ char *pat = store_path(s, "tmp/blob-%s.*", hex);
	glob_t g;
	if (!pat || glob(pat, GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		unlink(g.gl_pathv[i]);
	globfree(&g);
}

static void job_release(struct blob_job *j)
{
	if (j->h)
		curl_easy_cleanup(j->h);
	curl_slist_free_all(j->hdrs);
	if (j->hash) {
		char hex[65];
		sha256_done(j->hash, hex);
	}
	if (j->fd >= 0)
		close(j->fd);
	if (j->tmp) {
		unlink(j->tmp);
		free(j->tmp);
	}
	if (j->lockfd >= 0)
		close(j->lockfd); /* drops the flock */
	free(j->challenge);
	j->challenge = NULL;
	j->h = NULL;
	j->hdrs = NULL;
	j->hash = NULL;
	j->tmp = NULL;
	j->fd = j->lockfd = -1;
}

/* Takes the blob's lock (blocking or not). 1 = locked, 0 = busy. */
static int job_lock(struct oci_store *s, struct blob_job *j, bool block, struct ml_err *e)
{
	_cleanup_free_ char *lock = store_path(s, "locks/%s.lock", j->digest + 7);
	if (!lock)
		return ml_err_set(e, -ENOMEM, "out of memory");
	j->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lockfd < 0)
		return ml_err_set(e, -errno, "open %s: %m", lock);
	while (flock(j->lockfd, LOCK_EX | (block ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		int err = errno;
		close(j->lockfd);
		j->lockfd = -1;
		return err == EWOULDBLOCK ? 0 : ml_err_set(e, -err, "lock %s: %s", lock, strerror(err));
	}
	return 1;
}

/* Under the lock: reuse the blob if present, else start its transfer. */
static int job_start(struct reg_conn *c, struct oci_store *s, CURLM *m, struct blob_job *j,
		     struct ml_err *e)
{
	_cleanup_free_ char *final = store_path(s, "blobs/sha256_%s.%s", j->digest + 7, j->ext);
	_cleanup_free_ char *url = reg_blob_url(c, j->digest);
	if (!final || !url)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (access(final, F_OK) == 0) {
		j->got = j->size;
		j->state = J_DONE;
		job_release(j);
		return 0;
	}
	remove_stale_temps(s, j->digest + 7);
	j->tmp = store_path(s, "tmp/blob-%s.XXXXXX", j->digest + 7);
	if (!j->tmp)
		return ml_err_set(e, -ENOMEM, "out of memory");
	j->fd = mkostemp(j->tmp, O_CLOEXEC);
	if (j->fd < 0) {
		int err = errno;
		free(j->tmp);
		j->tmp = NULL;
		return ml_err_set(e, -err, "create a temp file in the image store: %s", strerror(err));
	}
	j->hash = sha256_new();
	j->h = curl_easy_init();
	j->got = 0;
	j->too_big = false;
	j->err = 0;
	if (!j->hash || !j->h)
		return ml_err_set(e, -ENOMEM, "out of memory");
	int r = reg_easy_setup(c, j->h, url, NULL, &j->hdrs, e);
	if (r < 0)
		return r;
	curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, job_write);
	curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, job_header);
	curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
	if (curl_multi_add_handle(m, j->h) != CURLM_OK)
		return ml_err_set(e, -ENOMEM, "out of memory");
	j->state = J_RUNNING;
	return 0;
}

/* A transfer ended: check everything about it, then move it into place. -EAGAIN = retry. */
static int job_finish(struct reg_conn *c, struct oci_store *s, struct blob_job *j, CURLcode rc,
		      struct ml_err *e)
{
	long status = 0;
	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
	char hex[65];
	if (j->err)
		return ml_err_set(e, j->err, "writing blob %s into the image store: %s", j->digest, strerror(-j->err));
	if (j->too_big)
		return ml_err_set(e, -EFBIG, "blob %s: larger than its manifest says (%llu bytes)", j->digest,
				  (unsigned long long)j->size);
	if (rc == CURLE_OK && status == 401 && j->auth_retries++ == 0) {
		/* a token that expired mid-pull, or a blob store with its own scope */
		int r = reg_answer_challenge(c, j->challenge, e);
		return r < 0 ? r : -EAGAIN;
	}
	if (rc != CURLE_OK && rc != CURLE_PARTIAL_FILE)
		return reg_curl_error(c, rc, NULL, e);
	if (status != 200)
		return reg_status_error(c, status, j->digest, e);
	if (rc == CURLE_PARTIAL_FILE || j->got != j->size)
		return ml_err_set(e, -EPROTO, "blob %s: truncated: got %llu of %llu bytes", j->digest,
				  (unsigned long long)j->got, (unsigned long long)j->size);
	sha256_done(j->hash, hex);
	j->hash = NULL;
	if (strcmp(hex, j->digest + 7) != 0)
		return ml_err_set(e, -EINVAL, "blob digest mismatch: expected %s, got sha256:%s", j->digest, hex);
	_cleanup_free_ char *final = store_path(s, "blobs/sha256_%s.%s", j->digest + 7, j->ext);
	if (!final)
		return ml_err_set(e, -ENOMEM, "out of memory");
	if (fsync(j->fd) < 0)
		return ml_err_set(e, -errno, "writing blob %s into the image store: %m", j->digest);
	if (rename(j->tmp, final) < 0)
		return ml_err_set(e, -errno, "rename %s: %m", final);
	free(j->tmp);
	j->tmp = NULL;
	return 0;
}

struct blobs_run {
	struct reg_conn *c;
	struct oci_store *s;
	CURLM *m;
	struct blob_job *jobs;
	size_t n;
	unsigned running;
};

/* Starts what can start now; blocks on a lock only when nothing of ours is running. */
static int start_more(struct blobs_run *b, struct ml_err *e)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->n && b->running < PARALLEL; i++) {
			struct blob_job *j = &b->jobs[i];
			if (j->state != J_PENDING)
				continue;
			int got = job_lock(b->s, j, pass == 1, e);
			if (got < 0)
				return got;
			if (got == 0)
				continue;
			int r = job_start(b->c, b->s, b->m, j, e);
			if (r < 0)
				return r;
			if (j->state == J_RUNNING)
				b->running++;
			if (pass == 1)
				return 0;
		}
		if (b->running > 0)
			return 0;
		bool pending = false;
		for (size_t i = 0; i < b->n; i++)
			pending |= b->jobs[i].state == J_PENDING;
		if (!pending)
			return 0;
	}
	return 0;
}

static int reap(struct blobs_run *b, struct ml_err *e)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(b->m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct blob_job *j = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(b->m, j->h);
		b->running--;
		int r = job_finish(b->c, b->s, j, rc, e);
		job_release(j);
		j->state = r == -EAGAIN ? J_PENDING : J_DONE;
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;
}

static bool all_done(const struct blobs_run *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->jobs[i].state != J_DONE)
			return false;
	return true;
}

int blobs_fetch(struct reg_conn *c, struct oci_store *s, struct blob_job *jobs, size_t n,
		oci_progress_fn progress, void *arg, struct ml_err *e)
{
	struct blobs_run b = { c, s, curl_multi_init(), jobs, n, 0 };
	if (!b.m)
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		jobs[i].fd = jobs[i].lockfd = -1;
		jobs[i].state = J_PENDING;
		jobs[i].run = &b;
	}
	int r = 0;
	while (r == 0 && !all_done(&b)) {
		r = start_more(&b, e);
		int still = 0;
		if (r == 0 && curl_multi_perform(b.m, &still) != CURLM_OK)
			r = ml_err_set(e, -EIO, "transfer engine failed");
		if (r == 0)
			r = reap(&b, e);
		if (progress)
			for (size_t i = 0; i < n; i++)
				if (jobs[i].index != ~0u)
					progress(arg, jobs[i].index, jobs[i].state == J_DONE ? jobs[i].size : jobs[i].got,
						 jobs[i].size);
		if (r == 0 && b.running > 0)
			curl_multi_poll(b.m, NULL, 0, 200, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].h)
			curl_multi_remove_handle(b.m, jobs[i].h);
		job_release(&jobs[i]);
	}
	curl_multi_cleanup(b.m);
	fsync_dir(s, "blobs");
	return r;
}
