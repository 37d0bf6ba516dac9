#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ml_err_set(struct ml_err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

int ml_err_wrap(struct ml_err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char prefix[256], old[sizeof(e->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	size_t n = strlen(prefix);
	if (n > sizeof(e->msg) - 3)
		n = sizeof(e->msg) - 3;
	memcpy(e->msg, prefix, n);
	memcpy(e->msg + n, ": ", 2);
	size_t rest = sizeof(e->msg) - n - 3;
	size_t olen = strnlen(old, rest);
	memcpy(e->msg + n + 2, old, olen);
	e->msg[n + 2 + olen] = '\0';
	return e->code;
}
