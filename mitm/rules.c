/* mitm/rules.c - hook rules (not built yet: every exchange goes through unchanged). */
#include <errno.h>

#include "mitm/rules.h"

int rules_before(struct mitm *m, struct hx *hx)
{
	(void)m;
	(void)hx;
	return 1;
}

int rules_after(struct mitm *m, struct hx *hx)
{
	(void)m;
	(void)hx;
	return 1;
}

int rules_xform_head(struct hx *hx)
{
	(void)hx;
	return 0;
}

int rules_xform_feed(struct hx *hx, const uint8_t *p, size_t n)
{
	return resp_write_body(hx, p, n);
}

int rules_xform_end(struct hx *hx)
{
	(void)hx;
	return 0;
}

void rules_xform_free(struct body_xform *xf)
{
	(void)xf;
}

void rules_hook_done(struct mitm *m, struct hx *hx, struct job *j)
{
	(void)j;
	req_hook_done(m, hx);
}
