/* base/err.h - error carried with a message, returned up to main, printed once. */
#ifndef ML_BASE_ERR_H
#define ML_BASE_ERR_H

struct ml_err {
	int code;        /* negative errno (or -EINVAL for bad input) */
	char msg[512];
};

/* Sets e (if not NULL) and returns code, so callers write `return ml_err_set(e, -errno, ...)`.
 * The message should read as one line for the user; no trailing newline. */
int ml_err_set(struct ml_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "<fmt>: " (error chain, like "building rootfs: ..."). */
int ml_err_wrap(struct ml_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
