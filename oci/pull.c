/* oci/pull.c - `pull`: reference -> manifest (through an index if need be) -> blobs -> tag.
 * Order matters for consistency: blobs land (verified) first, the manifest blob next, the tag
 * last in one transaction; a pull that dies anywhere leaves only temp files and unreferenced
 * blobs, which the next pull reuses or gc removes. The store lock is held shared throughout
 * so gc never collects blobs between "in place" and "tagged". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "oci/registry.h"

bool oci_ref_pullable(const char *ref, struct ml_err *e)
{
	struct oci_ref r;
	if (oci_ref_parse(ref, &r, e) < 0)
		return false;
	oci_ref_clear(&r);
	return true;
}

/* sha256 of a manifest's bytes, checked against what we asked for (a digest) and against
 * what the registry says it is (Docker-Content-Digest). */
static int verify_manifest(const struct reg_resp *m, const char *want, char out[72], struct ml_err *e)
{
	struct sha256 *h = sha256_new();
	char hex[65];
	if (!h)
		return ml_err_set(e, -ENOMEM, "out of memory");
	sha256_update(h, m->body ? m->body : "", m->len);
	sha256_done(h, hex);
	snprintf(out, 72, "sha256:%s", hex);
	if (want && strcmp(want, out) != 0)
		return ml_err_set(e, -EINVAL, "manifest digest mismatch: expected %s, got %s", want, out);
	if (m->digest && digest_valid(m->digest) && strcmp(m->digest, out) != 0)
		return ml_err_set(e, -EINVAL, "manifest digest mismatch: expected %s (Docker-Content-Digest), got %s",
				  m->digest, out);
	return 0;
}

/* The image manifest for linux/amd64: *m holds its bytes, digest its sha256. */
static int fetch_manifest(struct reg_conn *c, const struct oci_ref *ref, struct reg_resp *m,
			  char digest[72], struct ml_err *e)
{
	int r = reg_get_manifest(c, oci_ref_object(ref), m, e);
	if (r == 0)
		r = verify_manifest(m, ref->digest, digest, e);
	bool index = false;
	if (r == 0)
		r = manifest_is_index(m->body, m->len, m->content_type, &index, e);
	if (r < 0 || !index)
		return r;
	char child[72];
	r = index_pick(m->body, m->len, child, e);
	if (r == 0)
		r = reg_get_manifest(c, child, m, e);
	if (r == 0)
		r = verify_manifest(m, child, digest, e);
	if (r == 0)
		r = manifest_is_index(m->body, m->len, m->content_type, &index, e);
	if (r == 0 && index)
		r = ml_err_set(e, -EINVAL, "bad manifest list: nested manifest lists are not supported");
	return r;
}

static int read_config(struct oci_store *s, const struct mf_desc *d, char **json, size_t *len,
		       struct ml_err *e)
{
	_cleanup_free_ char *p = store_path(s, "blobs/sha256_%s.json", d->digest + 7);
	_cleanup_close_ int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return ml_err_set(e, -errno, "image config %s: %m", d->digest);
	if (st.st_size > OCI_JSON_MAX)
		return ml_err_set(e, -EFBIG, "image config larger than 4 MiB");
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return ml_err_set(e, -ENOMEM, "out of memory");
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(buf);
		return ml_err_set(e, -EIO, "image config %s: short read", d->digest);
	}
	buf[n] = '\0';
	struct oci_config cfg;
	int r = config_parse(buf, (size_t)n, &cfg, e);
	if (r < 0) {
		free(buf);
		return r;
	}
	config_clear(&cfg);
	*json = buf;
	*len = (size_t)n;
	return 0;
}

struct progress_ctx {
	const struct oci_pull_opts *o;
	unsigned layers;
};

static void on_progress(void *arg, unsigned layer, uint64_t done, uint64_t total)
{
	struct progress_ctx *p = arg;
	p->o->progress(p->o->progress_arg, layer, p->layers, done, total);
}

static int fetch_blobs(struct reg_conn *c, struct oci_store *s, const struct manifest *m,
		       const struct oci_pull_opts *o, struct ml_err *e)
{
	struct blob_job *jobs = calloc(m->n_layers + 1, sizeof(*jobs));
	if (!jobs)
		return ml_err_set(e, -ENOMEM, "out of memory");
	jobs[0] = (struct blob_job){ .digest = m->config.digest, .size = m->config.size, .ext = "json",
				     .index = ~0u };
	for (size_t i = 0; i < m->n_layers; i++)
		jobs[i + 1] = (struct blob_job){ .digest = m->layers[i].digest, .size = m->layers[i].size,
						 .ext = "tar", .index = (unsigned)i };
	struct progress_ctx pc = { o, (unsigned)m->n_layers };
	int r = blobs_fetch(c, s, jobs, m->n_layers + 1, o->progress ? on_progress : NULL, &pc, e);
	free(jobs);
	return r;
}

static int record(struct oci_store *s, const char *tag, const char *alias, const char *digest,
		  const struct manifest *m, const char *cfg, size_t cfg_len, struct ml_err *e)
{
	const char **ld = calloc(m->n_layers, sizeof(*ld));
	uint64_t *ls = calloc(m->n_layers, sizeof(*ls));
	struct store_record rec = { "registry", tag, "registry", digest, 0, cfg, cfg_len, ld, ls, m->n_layers };
	int r = ld && ls ? 0 : ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < m->n_layers; i++) {
		ld[i] = m->layers[i].digest;
		ls[i] = m->layers[i].size;
		rec.size += ls[i];
	}
	if (r == 0)
		r = store_record(s, &rec, e);
	if (r == 0 && alias) {
		rec.scope = "local";
		rec.tag = alias;
		rec.source = "tag";
		r = store_record(s, &rec, e);
	}
	free(ld);
	free(ls);
	return r;
}

static int pull_locked(struct oci_store *s, const struct oci_ref *ref, const char *tag,
		       const char *alias, const struct oci_pull_opts *o, struct ml_err *e)
{
	struct reg_conn c;
	struct reg_resp resp = {0};
	struct manifest m = {0};
	char digest[72];
	_cleanup_free_ char *cfg = NULL;
	size_t cfg_len = 0;
	int r = reg_open(&c, ref, o->timeout_s > 0 ? time(NULL) + o->timeout_s : 0, e);
	c.cancel = o->cancel;
	if (r == 0)
		r = fetch_manifest(&c, ref, &resp, digest, e);
	if (r == 0)
		r = manifest_parse(resp.body, resp.len, &m, e);
	if (r == 0)
		r = fetch_blobs(&c, s, &m, o, e);
	if (r == 0)
		r = read_config(s, &m.config, &cfg, &cfg_len, e);
	if (r == 0)
		r = blob_write(s, digest + 7, "json", resp.body, resp.len, e);
	if (r == 0)
		r = record(s, tag, alias, digest, &m, cfg, cfg_len, e);
	manifest_clear(&m);
	reg_resp_clear(&resp);
	reg_close(&c);
	return r;
}

/* A failed pull leaves blobs nothing references: take them back out, unless another pull is
 * running (it may be about to tag them; gc collects them later then). */
static void drop_partial(struct oci_store *s)
{
	struct oci_gc_info info = {0};
	int lk = store_lock(s, true, true, NULL);
	if (lk < 0)
		return;
	store_prune(s, &info, false, NULL);
	close(lk);
}

int oci_pull(struct oci_store *s, const char *ref, const struct oci_pull_opts *o,
	     struct oci_image **out, struct ml_err *e)
{
	struct ml_err local = {0};
	static const struct oci_pull_opts none = {0};
	if (!e)
		e = &local;
	if (!o)
		o = &none;
	struct oci_ref pr;
	int r = oci_ref_parse(ref, &pr, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *tag = oci_ref_normalize(ref, e);
	_cleanup_free_ char *alias = o->alias_tag ? oci_ref_normalize(o->alias_tag, e) : NULL;
	if (!tag || (o->alias_tag && !alias)) {
		oci_ref_clear(&pr);
		return e->code ? e->code : -EINVAL;
	}
	if (alias && strchr(alias, '@')) {
		oci_ref_clear(&pr);
		return ml_err_set(e, -EINVAL, "invalid tag \"%s\": give a tag, not a digest", o->alias_tag);
	}
	struct oci_image *img = NULL;
	bool cached = !o->force && oci_lookup(s, tag, &img, NULL) == 0;
	if (cached && alias) {
		oci_image_free(img);
		img = NULL;
		cached = false; /* the alias needs the manifest's layers: pull (blobs are reused) */
	}
	if (!cached) {
		int lk = store_lock(s, false, false, e);
		r = lk < 0 ? lk : pull_locked(s, &pr, tag, alias, o, e);
		if (lk >= 0)
			close(lk);
		if (r < 0) {
			ml_err_wrap(e, "pull %s", ref);
			drop_partial(s);
		}
		if (r == 0)
			r = store_lookup(s, tag, "registry", &img, e);
	}
	oci_ref_clear(&pr);
	if (r < 0)
		return r;
	if (out)
		*out = img;
	else
		oci_image_free(img);
	return 0;
}
