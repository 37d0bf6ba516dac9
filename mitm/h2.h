/* mitm/h2.h - internal to mitm/: HTTP/2 on an intercepted TLS flow (h2.c, nghttp2). */
#ifndef ML_MITM_H2_H
#define ML_MITM_H2_H

#include <stdbool.h>

struct mitm;
struct hx;
struct h2conn;

/* Both ends agreed on h2 (their TLS sessions are up): the bridge takes over the flow. */
int h2_start(struct mitm *m, struct hx *hx);
void h2_free(struct h2conn *c);
/* Moves bytes and frames both ways; true on progress. */
bool h2_pump(struct mitm *m, struct hx *hx);
/* The flow is over (*failed: reset the guest). */
bool h2_finished(const struct hx *hx, bool *failed);
/* No stream is open (the keep-alive timer runs). */
bool h2_idle(const struct hx *hx);

#endif
