/* cli/diagnose.h - `matchlock diagnose`: the checks and the report they fill. Internal to cli/
 * (diagnose.c runs and prints them, diagnose_checks.c holds the host checks). */
#ifndef ML_CLI_DIAGNOSE_H
#define ML_CLI_DIAGNOSE_H

#include <stddef.h>

enum diag_status { DIAG_PASS, DIAG_WARN, DIAG_FAIL };

struct diag_check {
	const char *name;
	enum diag_status status;
	char message[512];
	char fix[384];      /* "" = no hint */
};

#define DIAG_MAX 16
struct diag_report {
	struct diag_check c[DIAG_MAX];
	size_t n;
};

/* Sets one check's outcome; fix may be NULL. */
void diag_set(struct diag_check *c, enum diag_status st, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A new check in r named name (pass until set otherwise). */
struct diag_check *diag_add(struct diag_report *r, const char *name);
/* Runs argv with stdout+stderr into out (NUL-terminated, at most n-1 bytes kept), killed after
 * timeout_ms. Returns the wait status, or -errno if it could not start. */
int diag_run(char *const argv[], int timeout_ms, char *out, size_t n);

/* diagnose_checks.c: everything but the boot, in the order they are shown. */
void diag_engine(struct diag_report *r);
void diag_kvm(struct diag_report *r);
void diag_assets(struct diag_report *r);
void diag_dirs(struct diag_report *r);
void diag_libslirp(struct diag_report *r);
void diag_limits(struct diag_report *r);

#endif
