/* mitm/callback.h - internal to mitm/: the SDK hook callback exchange:
 * connect to the SDK's Unix socket, write one JSON line, read one JSON object back. Runs on a
 * worker thread (worker.c); the JSON in and out is built and read by rules.c. */
#ifndef ML_MITM_CALLBACK_H
#define ML_MITM_CALLBACK_H

#define CALLBACK_REPLY_MAX (32u << 20)   /* a reply may carry a whole body (set_body_base64) */

/* One exchange: dial path, write request (one line, '\n' added), read until '\n' or EOF.
 * timeout_ms bounds the whole exchange (0: none); stopfd readable = give up. Returns 0 with
 * *reply malloc'd (NUL-terminated), or a negative errno (-ETIMEDOUT, -ECANCELED, ...). */
int callback_exchange(const char *path, const char *request, unsigned timeout_ms, int stopfd,
		      char **reply);

#endif
