/* cli/pull.c - `matchlock pull [--force] [-t|--tag TAG] IMAGE`, and the progress display
 * (stderr, only on a terminal: one line per layer plus a total, redrawn in place). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "oci/oci.h"
#include "rpc/sandbox.h"

#define PULL_TIMEOUT_S 600
#define MAX_SHOWN 256u

struct progress {
	FILE *out;
	unsigned layers, drawn;
	uint64_t done[MAX_SHOWN], total[MAX_SHOWN];
	struct timespec last;
};

static void draw(struct progress *p)
{
	uint64_t d = 0, t = 0;
	if (p->drawn)
		fprintf(p->out, "\033[%uA", p->drawn);
	for (unsigned i = 0; i < p->layers && i < MAX_SHOWN; i++) {
		fprintf(p->out, "\r\033[K  layer %u/%u  %7.1f / %.1f MB%s\n", i + 1, p->layers,
			(double)p->done[i] / 1e6, (double)p->total[i] / 1e6,
			p->total[i] && p->done[i] >= p->total[i] ? "  done" : "");
		d += p->done[i];
		t += p->total[i];
	}
	fprintf(p->out, "\r\033[K  total    %7.1f / %.1f MB\n", (double)d / 1e6, (double)t / 1e6);
	p->drawn = (p->layers < MAX_SHOWN ? p->layers : MAX_SHOWN) + 1;
	fflush(p->out);
}

void cli_pull_progress(void *arg, unsigned layer, unsigned layers, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	struct timespec now;
	p->layers = layers;
	if (layer < MAX_SHOWN) {
		p->done[layer] = done;
		p->total[layer] = total;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - p->last.tv_sec) * 1000 + (now.tv_nsec - p->last.tv_nsec) / 1000000;
	if (ms < 100)
		return;
	p->last = now;
	draw(p);
}

int cmd_pull(int argc, char **argv, struct ml_err *e)
{
	bool force = false;
	char *tag = NULL;
	struct flag t[] = {
		{ "force", 0, FLAG_BOOL, &force, "Pull even if the image is cached", NULL, false, false },
		{ "tag", 't', FLAG_STRING, &tag, "Also tag the image locally as TAG", NULL, false, false },
		{ NULL, 0, 0, NULL, NULL, NULL, false, false },
	};
	struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos,
			       "Pull an image from a registry.\n\nUsage:\n  matchlock pull [flags] <image>\n", e);
	if (r != 0)
		return r < 0 ? r : 0;
	if (pos.n != 1) {
		r = ml_err_set(e, -EINVAL, "accepts 1 arg(s), received %zu", pos.n);
		strv_clear(&pos);
		return r;
	}
	const char *ref = pos.v[0];
	struct oci_store *store = NULL;
	if (!oci_ref_pullable(ref, e) || (r = ml_store_open(&store, e)) < 0) {
		r = r < 0 ? r : e->code;
		strv_clear(&pos);
		return r;
	}
	printf("Pulling %s...\n", ref);
	fflush(stdout);
	static struct progress p;
	p.out = stderr;
	struct oci_pull_opts o = { .force = force, .alias_tag = tag && *tag ? tag : NULL,
				   .timeout_s = PULL_TIMEOUT_S };
	if (isatty(STDERR_FILENO)) {
		o.progress = cli_pull_progress;
		o.progress_arg = &p;
	}
	struct oci_image *img = NULL;
	r = oci_pull(store, ref, &o, &img, e);
	if (o.progress && p.layers)
		draw(&p);
	if (r == 0) {
		if (o.alias_tag)
			printf("Tagged: %s\n", o.alias_tag);
		printf("Digest: %s\nSize: %.1f MB\n", img->digest, (double)img->size / 1e6);
	}
	oci_image_free(img);
	oci_store_free(store);
	strv_clear(&pos);
	return r;
}
