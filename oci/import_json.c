/* oci/import_json.c - reads an archive's index/manifest JSON into an import plan: which
 * members hold the config and the layers, and which digests they must have. Both `docker save`
 * (manifest.json) and OCI image layouts (index.json -> [index ->] manifest). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "oci/import_plan.h"

#define MT_INDEX_OCI "application/vnd.oci.image.index.v1+json"
#define MT_LIST_DOCKER "application/vnd.docker.distribution.manifest.list.v2+json"

void plan_clear(struct import_plan *p)
{
	free(p->config_member);
	free(p->config_digest);
	for (size_t i = 0; i < p->n_layers; i++) {
		free(p->layer_member[i]);
		free(p->layer_digest[i]);
	}
	free(p->layer_member);
	free(p->layer_digest);
	free(p->manifest_member);
	free(p->manifest_digest);
	memset(p, 0, sizeof(*p));
}

static json_t *load(const struct plan_reader *rd, const char *name, const char *digest,
		    struct ml_err *e)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	if (rd->read(rd->ctx, name, digest, &buf, &len, e) < 0)
		return NULL;
	json_error_t je;
	json_t *j = json_loadb(buf, len, 0, &je);
	if (!j)
		ml_err_set(e, -EINVAL, "invalid image archive: %s: %s", name, je.text);
	return j;
}

static char *blob_member(const char *digest)
{
	char *m = NULL;
	if (asprintf(&m, "blobs/sha256/%s", digest + 7) < 0)
		return NULL;
	return m;
}

static int alloc_layers(struct import_plan *p, size_t n, struct ml_err *e)
{
	if (n == 0)
		return ml_err_set(e, -EINVAL, "invalid image archive: manifest has no layers");
	if (n > OCI_MAX_LAYERS)
		return ml_err_set(e, -EINVAL, "invalid image archive: more than %u layers", OCI_MAX_LAYERS);
	p->layer_member = calloc(n, sizeof(char *));
	p->layer_digest = calloc(n, sizeof(char *));
	if (!p->layer_member || !p->layer_digest)
		return ml_err_set(e, -ENOMEM, "out of memory");
	p->n_layers = n;
	return 0;
}

static int plan_manifest(json_t *m, struct import_plan *p, struct ml_err *e)
{
	json_t *cfg = json_object_get(m, "config"), *layers = json_object_get(m, "layers");
	const char *cd = json_string_value(json_object_get(cfg, "digest"));
	if (!digest_valid(cd))
		return ml_err_set(e, -EINVAL, "invalid image archive: manifest: bad config digest");
	if (!json_is_array(layers))
		return ml_err_set(e, -EINVAL, "invalid image archive: manifest: no layers");
	int r = alloc_layers(p, json_array_size(layers), e);
	if (r < 0)
		return r;
	if (!(p->config_digest = strdup(cd)) || !(p->config_member = blob_member(cd)))
		return ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < p->n_layers; i++) {
		json_t *l = json_array_get(layers, i);
		const char *d = json_string_value(json_object_get(l, "digest"));
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		if (!digest_valid(d))
			return ml_err_set(e, -EINVAL, "invalid image archive: manifest: layer %zu: bad digest", i);
		if (!oci_layer_media_ok(mt))
			return ml_err_set(e, -EINVAL, "invalid image archive: layer %s: unsupported media type %s", d, mt);
		if (!(p->layer_digest[i] = strdup(d)) || !(p->layer_member[i] = blob_member(d)))
			return ml_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* An index may list several platforms; linux/amd64 is what our guests run. */
static json_t *pick_manifest(json_t *index, struct ml_err *e)
{
	json_t *ms = json_object_get(index, "manifests"), *m, *first = NULL;
	size_t i;
	if (!json_is_array(ms) || json_array_size(ms) == 0) {
		ml_err_set(e, -EINVAL, "invalid image archive: index.json: no manifests");
		return NULL;
	}
	json_array_foreach(ms, i, m) {
		json_t *plat = json_object_get(m, "platform");
		const char *os = json_string_value(json_object_get(plat, "os"));
		const char *arch = json_string_value(json_object_get(plat, "architecture"));
		if (!plat && !first)
			first = m;
		if (os && arch && strcmp(os, "linux") == 0 && strcmp(arch, "amd64") == 0)
			return m;
	}
	if (first || json_array_size(ms) == 1)
		return first ? first : json_array_get(ms, 0);
	ml_err_set(e, -EINVAL, "invalid image archive: no linux/amd64 manifest");
	return NULL;
}

int plan_oci(const struct plan_reader *rd, struct import_plan *p, struct ml_err *e)
{
	json_t *cur = load(rd, "index.json", NULL, e);
	for (int depth = 0; cur && depth < 4; depth++) {
		json_t *d = pick_manifest(cur, e);
		const char *dgv = d ? json_string_value(json_object_get(d, "digest")) : NULL;
		const char *mtv = d ? json_string_value(json_object_get(d, "mediaType")) : NULL;
		if (d && !digest_valid(dgv)) {
			ml_err_set(e, -EINVAL, "invalid image archive: index: bad manifest digest");
			d = NULL;
		}
		/* copies: the strings live in cur, which goes before they are used */
		_cleanup_free_ char *dg = d ? strdup(dgv) : NULL;
		_cleanup_free_ char *mt = mtv ? strdup(mtv) : NULL;
		_cleanup_free_ char *member = dg ? blob_member(dg) : NULL;
		json_t *next = member ? load(rd, member, dg, e) : NULL;
		json_decref(cur);
		cur = next;
		if (!cur)
			return e->code ? e->code : -ENOMEM;
		const char *kind = mt ? mt : json_string_value(json_object_get(cur, "mediaType"));
		if (kind && (strcmp(kind, MT_INDEX_OCI) == 0 || strcmp(kind, MT_LIST_DOCKER) == 0))
			continue;
		if (!json_object_get(cur, "config") && json_object_get(cur, "manifests"))
			continue; /* an index without a mediaType */
		p->manifest_member = steal_ptr(&member);
		p->manifest_digest = steal_ptr(&dg);
		int r = plan_manifest(cur, p, e);
		json_decref(cur);
		return r;
	}
	json_decref(cur);
	return e->code ? e->code : ml_err_set(e, -EINVAL, "invalid image archive: index nesting too deep");
}

int plan_docker(const struct plan_reader *rd, struct import_plan *p, struct ml_err *e)
{
	json_t *root = load(rd, "manifest.json", NULL, e);
	if (!root)
		return e->code;
	int r = 0;
	json_t *m = json_array_get(root, 0);
	const char *cfg = json_string_value(json_object_get(m, "Config"));
	json_t *layers = json_object_get(m, "Layers");
	if (!json_is_array(root) || !json_is_object(m))
		r = ml_err_set(e, -EINVAL, "invalid image archive: manifest.json: not a list of images");
	else if (!cfg)
		r = ml_err_set(e, -EINVAL, "invalid image archive: manifest.json: no Config");
	else if (!json_is_array(layers))
		r = ml_err_set(e, -EINVAL, "invalid image archive: manifest.json: no Layers");
	else if ((r = alloc_layers(p, json_array_size(layers), e)) == 0 &&
		 !(p->config_member = strdup(cfg)))
		r = ml_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < p->n_layers; i++) {
		const char *l = json_string_value(json_array_get(layers, i));
		if (!l)
			r = ml_err_set(e, -EINVAL, "invalid image archive: manifest.json: Layers[%zu] is not a string", i);
		else if (!(p->layer_member[i] = strdup(l)))
			r = ml_err_set(e, -ENOMEM, "out of memory");
	}
	json_decref(root);
	return r;
}
