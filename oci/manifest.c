/* oci/manifest.c - image manifests and indexes from a registry (Docker schema2, OCI). Every
 * field is type-checked; digests must be sha256, sizes non-negative and in range; layer media
 * types are the ones the rootfs builder can read (tar, gzip, zstd). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"

static json_t *load(const char *buf, size_t len, struct ml_err *e)
{
	if (len > OCI_JSON_MAX) {
		ml_err_set(e, -EFBIG, "manifest larger than 4 MiB");
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		ml_err_set(e, -EINVAL, "bad manifest JSON: %s", je.text);
	else if (!json_is_object(j)) {
		json_decref(j);
		j = NULL;
		ml_err_set(e, -EINVAL, "bad manifest: not a JSON object");
	}
	return j;
}

int manifest_is_index(const char *buf, size_t len, const char *content_type, bool *index,
		      struct ml_err *e)
{
	json_t *j = load(buf, len, e);
	if (!j)
		return e ? e->code : -EINVAL;
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	if (!mt && content_type && *content_type)
		mt = content_type;
	int r = 0;
	if (mt && (!strncmp(mt, MT_OCI_INDEX, strlen(MT_OCI_INDEX)) ||
		   !strncmp(mt, MT_DOCKER_LIST, strlen(MT_DOCKER_LIST))))
		*index = true;
	else if (mt && (!strncmp(mt, MT_OCI_MANIFEST, strlen(MT_OCI_MANIFEST)) ||
			!strncmp(mt, MT_DOCKER_MANIFEST, strlen(MT_DOCKER_MANIFEST))))
		*index = false;
	else if (mt && strstr(mt, "manifest.v1"))
		r = ml_err_set(e, -ENOTSUP, "unsupported manifest: Docker schema 1 (push the image again with a current client)");
	else if (json_is_array(json_object_get(j, "manifests")) && !json_object_get(j, "config"))
		*index = true;
	else if (json_is_object(json_object_get(j, "config")))
		*index = false;
	else
		r = ml_err_set(e, -EINVAL, "unsupported manifest media type \"%.100s\"", mt ? mt : "");
	json_decref(j);
	return r;
}

static int desc_read(json_t *d, struct mf_desc *out, const char *what, struct ml_err *e)
{
	const char *dg = json_string_value(json_object_get(d, "digest"));
	json_t *sz = json_object_get(d, "size");
	if (!json_is_object(d) || !digest_valid(dg))
		return ml_err_set(e, -EINVAL, "bad manifest: %s: bad or unsupported digest", what);
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return ml_err_set(e, -EINVAL, "bad manifest: %s: bad size", what);
	memcpy(out->digest, dg, 72);
	out->size = (uint64_t)json_integer_value(sz);
	return 0;
}

bool oci_layer_media_ok(const char *mt)
{
	static const char *ok[] = {
		"application/vnd.oci.image.layer.v1.tar",
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.oci.image.layer.v1.tar+zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.docker.image.rootfs.diff.tar.zstd",
	};
	if (!mt)
		return true; /* the content is sniffed when the rootfs is built */
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(mt, ok[i]) == 0)
			return true;
	return false;
}

int manifest_parse(const char *buf, size_t len, struct manifest *m, struct ml_err *e)
{
	memset(m, 0, sizeof(*m));
	json_t *j = load(buf, len, e);
	if (!j)
		return e ? e->code : -EINVAL;
	json_t *layers = json_object_get(j, "layers");
	int r = desc_read(json_object_get(j, "config"), &m->config, "config", e);
	size_t n = json_array_size(layers);
	if (r == 0 && m->config.size > OCI_JSON_MAX)
		r = ml_err_set(e, -EFBIG, "bad manifest: image config larger than 4 MiB");
	else if (r == 0 && (!json_is_array(layers) || n == 0))
		r = ml_err_set(e, -EINVAL, "bad manifest: no layers");
	else if (r == 0 && n > OCI_MAX_LAYERS)
		r = ml_err_set(e, -EINVAL, "bad manifest: more than %u layers", OCI_MAX_LAYERS);
	else if (r == 0 && !(m->layers = calloc(n, sizeof(*m->layers))))
		r = ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		json_t *l = json_array_get(layers, i);
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		char what[32];
		snprintf(what, sizeof(what), "layer %zu", i);
		r = desc_read(l, &m->layers[i], what, e);
		if (r == 0 && !oci_layer_media_ok(mt))
			r = ml_err_set(e, -ENOTSUP, "layer %s: unsupported media type %.100s", m->layers[i].digest, mt);
		m->n_layers = i + 1;
	}
	json_decref(j);
	if (r < 0)
		manifest_clear(m);
	return r;
}

void manifest_clear(struct manifest *m)
{
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

/* Lower is better; -1 = not runnable here. amd64 variants v1..v3 are compatibility levels;
 * an entry without one runs on any amd64. */
static int platform_rank(json_t *plat)
{
	const char *os = json_string_value(json_object_get(plat, "os"));
	const char *arch = json_string_value(json_object_get(plat, "architecture"));
	json_t *vj = json_object_get(plat, "variant");
	const char *variant = json_string_value(vj);
	if (!os || !arch || strcmp(os, "linux") != 0 || strcmp(arch, "amd64") != 0)
		return -1;
	if (!vj || (variant && !*variant))
		return 0;
	if (!variant)
		return -1;
	if (!strcmp(variant, "v1"))
		return 1;
	if (!strcmp(variant, "v2"))
		return 2;
	if (!strcmp(variant, "v3"))
		return 3;
	return -1;
}

int index_pick(const char *buf, size_t len, char digest[72], struct ml_err *e)
{
	json_t *j = load(buf, len, e);
	if (!j)
		return e ? e->code : -EINVAL;
	json_t *ms = json_object_get(j, "manifests"), *m, *best = NULL;
	int best_rank = -1, r = 0;
	size_t i;
	if (!json_is_array(ms))
		r = ml_err_set(e, -EINVAL, "bad manifest list: no manifests");
	json_array_foreach(ms, i, m) {
		int rank = platform_rank(json_object_get(m, "platform"));
		if (rank >= 0 && (best_rank < 0 || rank < best_rank)) {
			best = m;
			best_rank = rank;
		}
	}
	const char *dg = best ? json_string_value(json_object_get(best, "digest")) : NULL;
	if (r == 0 && !best)
		r = ml_err_set(e, -ENOENT, "no matching manifest for linux/amd64 in the manifest list entries");
	else if (r == 0 && !digest_valid(dg))
		r = ml_err_set(e, -EINVAL, "bad manifest list: linux/amd64 entry has a bad digest");
	if (r == 0)
		memcpy(digest, dg, 72);
	json_decref(j);
	return r;
}
