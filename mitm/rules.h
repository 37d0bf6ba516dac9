/* mitm/rules.h - internal to mitm/: hook rules on an exchange (reference/rpc.md §8). */
#ifndef ML_MITM_RULES_H
#define ML_MITM_RULES_H

#include "mitm/proxy.h"

/* Before phase, on the request head: 1 = go on, 0 = waiting for an SDK hook, -1 = answered. */
int rules_before(struct mitm *m, struct hx *hx);
/* After phase, on the response head: the same. */
int rules_after(struct mitm *m, struct hx *hx);
/* A body rewrite chose the framing: adjust the response head (length, chunked). */
int rules_xform_head(struct hx *hx);
int rules_xform_feed(struct hx *hx, const uint8_t *p, size_t n);
int rules_xform_end(struct hx *hx);

#endif
