/* tests/unit/base_text_test.c - ml_text_clean: guest text that reaches the terminal keeps its
 * words and loses every way to steer the terminal (C0/C1 controls, escape and control
 * sequences, bidi overrides, malformed UTF-8), in one-line and multi-line mode, and never
 * overruns its buffer or splits a character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "base/text.h"

static const char *clean(const char *in, size_t len, enum ml_text_mode mode)
{
	static char out[256];
	ml_text_clean(out, sizeof(out), in, len, mode);
	return out;
}
#define LINE(s) clean(s, sizeof(s) - 1, ML_TEXT_LINE)
#define LINES(s) clean(s, sizeof(s) - 1, ML_TEXT_LINES)

static void plain_text_is_kept(void **state)
{
	(void)state;
	assert_string_equal(LINE("exec: foo: No such file or directory"), "exec: foo: No such file or directory");
	assert_string_equal(LINE(""), "");
}

static void escape_sequences_lose_their_escape(void **state)
{
	(void)state;
	assert_string_equal(LINE("\x1b[31mred\x1b[0m"), "?[31mred?[0m");
	assert_string_equal(LINE("\x1b]0;new title\x07rest"), "?]0;new title?rest");
	assert_string_equal(LINE("\x1bP+q544e\x1b\\"), "?P+q544e?\\");   /* DCS query: could answer back */
	assert_string_equal(LINE("a\bb\x7f" "c"), "a?b?c");
	assert_string_equal(clean("a\0b", 3, ML_TEXT_LINE), "a?b");
}

static void c1_controls_raw_or_encoded_are_replaced(void **state)
{
	(void)state;
	assert_string_equal(LINE("\x9b" "2J"), "?2J");        /* 8-bit CSI, a raw byte */
	assert_string_equal(LINE("\xc2\x9b" "2J"), "?2J");    /* U+009B in UTF-8: one '?' */
	assert_string_equal(LINE("\xc2\x9d" "0;t\xc2\x9c"), "?0;t?");
	assert_string_equal(LINE("\xc2\xa0nbsp"), "\xc2\xa0nbsp"); /* U+00A0 is text */
}

static void newlines_tabs_and_returns_follow_the_mode(void **state)
{
	(void)state;
	assert_string_equal(LINE("a\nb\tc\r\n"), "a b c  ");
	assert_string_equal(LINES("a\r\nb\tc\rd\n"), "a\nb\tcd\n");
	assert_string_equal(LINES("\x1b[2K\rpanic\n"), "?[2Kpanic\n");
}

static void valid_utf8_is_kept(void **state)
{
	(void)state;
	const char *s = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80";
	assert_string_equal(clean(s, strlen(s), ML_TEXT_LINE), s);
}

static void malformed_utf8_is_one_mark_per_byte(void **state)
{
	(void)state;
	assert_string_equal(LINE("\xc0\xaf"), "??");              /* overlong '/' */
	assert_string_equal(LINE("\xed\xa0\x80"), "???");         /* a surrogate */
	assert_string_equal(LINE("\xf4\x90\x80\x80"), "????");    /* past U+10FFFF */
	assert_string_equal(LINE("ab\xe6\x97"), "ab??");          /* cut short at the end */
	assert_string_equal(LINE("\xe6x"), "?x");                 /* continuation missing */
	assert_string_equal(LINE("\x80\xbf\xff\xfe"), "????");
}

static void bidi_overrides_are_replaced(void **state)
{
	(void)state;
	assert_string_equal(LINE("ok \xe2\x80\xae" "txt.exe"), "ok ?txt.exe");
	assert_string_equal(LINE("\xe2\x81\xa6" "x\xe2\x81\xa9"), "?x?");
}

static void output_is_bounded_and_never_splits_a_character(void **state)
{
	(void)state;
	char out[5];
	assert_int_equal(ml_text_clean(out, sizeof(out), "abcdef", 6, ML_TEXT_LINE), 4);
	assert_string_equal(out, "abcd");
	assert_int_equal(ml_text_clean(out, sizeof(out), "abc\xc3\xa9", 5, ML_TEXT_LINE), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(ml_text_clean(out, 1, "abc", 3, ML_TEXT_LINE), 0);
	assert_string_equal(out, "");
	out[0] = 'x';
	assert_int_equal(ml_text_clean(out, 0, "abc", 3, ML_TEXT_LINE), 0);
	assert_int_equal(out[0], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_text_is_kept),
		cmocka_unit_test(escape_sequences_lose_their_escape),
		cmocka_unit_test(c1_controls_raw_or_encoded_are_replaced),
		cmocka_unit_test(newlines_tabs_and_returns_follow_the_mode),
		cmocka_unit_test(valid_utf8_is_kept),
		cmocka_unit_test(malformed_utf8_is_one_mark_per_byte),
		cmocka_unit_test(bidi_overrides_are_replaced),
		cmocka_unit_test(output_is_bounded_and_never_splits_a_character),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
