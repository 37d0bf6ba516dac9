/* tests/fuzz/text_clean.c - ml_text_clean on any bytes, in both modes and with a buffer size
 * the input picks. What comes out must be safe on a terminal: no C0 control but newline and
 * tab (multi-line mode only), no DEL, no C1 control in either form, well-formed UTF-8 only,
 * NUL-terminated inside the buffer, never longer than the input. A violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"

static size_t seq_len(const uint8_t *p, size_t left)
{
	size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || n > left || p[0] > 0xf4)
		abort(); /* a stray continuation byte or a cut sequence */
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			abort();
	if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		abort(); /* U+0080..U+009F */
	return n;
}

static void check(const uint8_t *out, size_t len, enum ml_text_mode mode)
{
	for (size_t i = 0; i < len;) {
		uint8_t b = out[i];
		if (b == 0x7f || (b < 0x20 && !(mode == ML_TEXT_LINES && (b == '\n' || b == '\t'))))
			abort();
		i += seq_len(out + i, len - i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum ml_text_mode mode = data[0] & 1 ? ML_TEXT_LINES : ML_TEXT_LINE;
	size_t cap = (size_t)(data[0] >> 1) + 1; /* 1..128: the buffer-end cases */
	if (data[0] & 0x80)
		cap = size + 1; /* and the whole input */
	data++, size--;
	char *out = malloc(cap + 1);
	if (!out)
		return 0;
	out[cap] = 0x55; /* a guard byte just past the buffer */
	size_t n = ml_text_clean(out, cap, data, size, mode);
	if (n >= cap || out[n] != '\0' || strlen(out) != n || n > size || (uint8_t)out[cap] != 0x55)
		abort();
	check((const uint8_t *)out, n, mode);
	free(out);
	return 0;
}
