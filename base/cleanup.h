/* base/cleanup.h - scope-bound cleanup so early returns do not leak. */
#ifndef ML_BASE_CLEANUP_H
#define ML_BASE_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}
/* Frees a NULL-terminated array of strings and the array. */
static inline void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
static inline void strv_freep(char ***v) { strv_free(*v); }

#define _cleanup_free_     __attribute__((cleanup(freep)))
#define _cleanup_close_    __attribute__((cleanup(closep)))
#define _cleanup_fclose_   __attribute__((cleanup(fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(closedirp)))
#define _cleanup_strv_     __attribute__((cleanup(strv_freep)))

static inline void *steal_ptr_(void **p)
{
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_ptr(pp) steal_ptr_((void **)(pp))
static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

#endif
