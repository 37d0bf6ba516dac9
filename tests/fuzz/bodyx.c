/* tests/fuzz/bodyx.c - hostile upstream bodies through the after-phase body rewrite
 * (mitm/bodyx.c): SSE lines rewritten as they stream, and the whole-body rewrite. Input: byte 0
 * picks the mode and a piece size, the rest is the body. Checked beyond crashes: the SSE
 * rewrite fed in pieces writes exactly what it writes when fed the whole body at once (so
 * where TCP cuts the stream never changes what the guest gets), only data: payloads change,
 * and the whole-body rewrite's head carries the body's real length. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mitm/rules.h"

static void run(const uint8_t *body, size_t n, size_t piece, bool sse, struct iob *out)
{
	struct hx *hx = calloc(1, sizeof(*hx));
	static int fd = -1;

	hx->g.fdp = &fd;
	h1_init(&hx->resp, HTTP_RESPONSE, NULL, NULL);
	h1_init(&hx->req, HTTP_REQUEST, NULL, NULL);
	hx->resp.p.status_code = 200;
	hdrs_add(&hx->resp.hd, "Content-Type", 12, sse ? "text/event-stream" : "text/plain", sse ? 17 : 10);
	bodyx_add_repl(hx, "a", "XYZ");
	bodyx_add_repl(hx, "data", "D");   /* a replacement that could eat the prefix: never does */
	bodyx_add_repl(hx, "\n", "");      /* nor a line ending */
	bodyx_choose(hx);
	for (size_t at = 0; at < n; at += piece) {
		size_t k = n - at < piece ? n - at : piece;
		uint8_t *copy = malloc(k);

		memcpy(copy, body + at, k);
		rules_xform_feed(hx, copy, k);
		free(copy);
	}
	rules_xform_end(hx);
	iob_put(out, hx->g.out.d ? hx->g.out.d + hx->g.out.off : (const uint8_t *)"", hx->g.out.len);
	rules_xform_free(hx->x.xf);
	iob_free(&hx->g.out);
	h1_free(&hx->resp);
	h1_free(&hx->req);
	free(hx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iob whole = { 0 }, pieces = { 0 };
	bool sse;
	size_t piece;

	if (!size)
		return 0;
	sse = data[0] & 1;
	piece = (data[0] >> 1) + 1;
	run(data + 1, size - 1, size, sse, &whole);
	run(data + 1, size - 1, piece, sse, &pieces);
	if (whole.len != pieces.len || (whole.len && memcmp(whole.d + whole.off, pieces.d + pieces.off, whole.len)))
		abort();
	if (sse) {
		/* lines that do not start with "data:" pass unchanged: the count of newlines is kept */
		size_t in = 0, out = 0;

		for (size_t i = 1; i < size; i++)
			in += data[i] == '\n';
		for (size_t i = 0; i < whole.len; i++)
			out += whole.d[whole.off + i] == '\n';
		if (in != out)
			abort();
	} else {
		const char *cl = memmem(whole.d + whole.off, whole.len, "Content-Length: ", 16);
		const char *end = memmem(whole.d + whole.off, whole.len, "\r\n\r\n", 4);

		if (!cl || !end || strtoul(cl + 16, NULL, 10) != whole.len - (size_t)(end + 4 - (char *)(whole.d + whole.off)))
			abort();
	}
	iob_free(&whole);
	iob_free(&pieces);
	return 0;
}
