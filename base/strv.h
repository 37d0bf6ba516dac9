/* base/strv.h - NULL-terminated string vectors (char **), the form argv, env and host lists
 * travel in. Free with strv_free (base/cleanup.h). */
#ifndef ML_BASE_STRV_H
#define ML_BASE_STRV_H

#include <stdbool.h>
#include <stddef.h>

size_t strv_len(char *const *v);
/* Appends a copy of s; *v may be NULL (a new vector). 0 or -ENOMEM (v unchanged). */
int strv_append(char ***v, const char *s);
/* A deep copy (NULL for NULL); NULL on ENOMEM sets *oom. */
char **strv_copy(char *const *v, bool *oom);
/* KEY=VALUE lists: sets (replaces or appends) KEY's entry. 0 or -ENOMEM. */
int strv_env_set(char ***v, const char *entry);
bool strv_contains(char *const *v, const char *s);

#endif
