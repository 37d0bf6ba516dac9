/* base/text.h - text helpers: untrusted text (from the guest) made safe to print on a
 * terminal, and whitespace trimming for the specs users type ("a , b", "NAME = v").
 *
 * Guest bytes that reach the user's terminal (an exec's error line, the console tail in a boot
 * error, the agent's hello) must not be able to drive it: an escape sequence can retitle the
 * window, rewrite what is on screen, or on some terminals answer back into our input. Every
 * such text goes through ml_text_clean() once, where it enters the host. */
#ifndef ML_BASE_TEXT_H
#define ML_BASE_TEXT_H

#include <stddef.h>

enum ml_text_mode {
	ML_TEXT_LINE,  /* one line: newline, carriage return and tab become spaces */
	ML_TEXT_LINES, /* several lines: newline and tab kept, carriage returns dropped */
};

/* Copies up to len bytes of src into dst (size n > 0; always NUL-terminated), replacing with
 * '?' every byte that could steer a terminal: C0 controls (but see the mode), NUL, DEL, C1
 * controls (raw 0x80-0x9f or UTF-8 encoded U+0080..U+009F), Unicode bidirectional overrides,
 * and every byte that is not part of well-formed UTF-8. Valid UTF-8 text is kept as it is. A
 * character that does not fit whole is left out. Returns the length written to dst. */
size_t ml_text_clean(char *dst, size_t n, const void *src, size_t len, enum ml_text_mode mode);

/* The part of s[0..*n) without leading and trailing whitespace (isspace): returns its start
 * and sets *n to its length. */
const char *ml_trim_span(const char *s, size_t *n);
/* s trimmed in place (trailing whitespace cut with a NUL); returns its first non-space. */
char *ml_trim(char *s);
/* A malloc'd, NUL-terminated copy of s[0..n) trimmed; NULL when out of memory. */
char *ml_trim_dup(const char *s, size_t n);

#endif
