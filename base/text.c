/* base/text.c - see text.h. A small UTF-8 validator: what it does not recognize as a whole,
 * harmless character is one '?' per byte. */
#include "base/text.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most len bytes), or 0 if it is not one;
 * *cp gets its code point. Overlong forms, surrogates and values past U+10FFFF are refused. */
static size_t utf8_seq(const uint8_t *p, size_t len, uint32_t *cp)
{
	uint8_t b = p[0];
	size_t need;
	uint32_t v, min;
	if (b >= 0xc2 && b <= 0xdf)
		need = 2, v = b & 0x1f, min = 0x80;
	else if (b >= 0xe0 && b <= 0xef)
		need = 3, v = b & 0x0f, min = 0x800;
	else if (b >= 0xf0 && b <= 0xf4)
		need = 4, v = b & 0x07, min = 0x10000;
	else
		return 0;
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return need;
}

/* C1 controls (U+0080..U+009F: CSI, OSC, ... in their 8-bit form) and the bidirectional
 * embeddings, overrides and isolates, which reorder how the rest of the line reads. */
static int harmful_code_point(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* What replaces an ASCII byte: itself, a space, '?', or nothing (0). */
static char ascii_out(uint8_t b, enum ml_text_mode mode)
{
	if (b == '\n' || b == '\t')
		return mode == ML_TEXT_LINES ? (char)b : ' ';
	if (b == '\r')
		return mode == ML_TEXT_LINES ? 0 : ' ';
	return b < 0x20 || b == 0x7f ? '?' : (char)b;
}

size_t ml_text_clean(char *dst, size_t n, const void *src, size_t len, enum ml_text_mode mode)
{
	const uint8_t *p = src;
	size_t out = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t seq = p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i, &cp);
		if (seq > 1 && !harmful_code_point(cp)) {
			if (out + seq >= n)
				break;
			memcpy(dst + out, p + i, seq);
			out += seq;
			i += seq;
			continue;
		}
		char c = p[i] < 0x80 ? ascii_out(p[i], mode) : '?';
		if (seq > 1)
			c = '?', i += seq - 1; /* a harmful character: one '?' for all of it */
		i++;
		if (!c)
			continue;
		if (out + 1 >= n)
			break;
		dst[out++] = c;
	}
	dst[out] = '\0';
	return out;
}

const char *ml_trim_span(const char *s, size_t *n)
{
	while (*n && isspace((unsigned char)*s))
		s++, (*n)--;
	while (*n && isspace((unsigned char)s[*n - 1]))
		(*n)--;
	return s;
}

char *ml_trim(char *s)
{
	size_t n = strlen(s);
	char *t = (char *)ml_trim_span(s, &n);
	t[n] = '\0';
	return t;
}

char *ml_trim_dup(const char *s, size_t n)
{
	s = ml_trim_span(s, &n);
	return strndup(s, n);
}
