/* mitm/proxy.h - internal to mitm/: the HTTP/1 intercepting proxy's state, shared by
 * proxy.c (the handler: driver, upstream, timers, local replies, events), proxy_req.c (the
 * request side) and proxy_resp.c (the response side). One exchange at a time per guest
 * connection: pipelined requests wait in the guest's buffer until the previous response is
 * complete, so requests and responses can never be mismatched. */
#ifndef ML_MITM_PROXY_H
#define ML_MITM_PROXY_H

#include "mitm/intercept.h"

enum hx_stage { ST_TLS_HELLO, ST_TLS_UPFIRST, ST_TLS_DECIDE, ST_TLS_HANDSHAKE, ST_HTTP };
enum hx_tx { TX_IDLE, TX_HEAD, TX_WAIT, TX_SEND, TX_TUNNEL, TX_CLOSING };
enum hx_rs { RS_HEAD, RS_WAIT, RS_BODY, RS_DONE };
enum hx_up { UP_NONE, UP_RESOLVING, UP_CONNECTING, UP_TLS, UP_READY, UP_FAILED };
enum hx_wait { WAIT_NONE, WAIT_RESOLVE, WAIT_BEFORE_HOOK, WAIT_AFTER_HOOK };
/* How far the request head got: policy (maybe a name lookup), rules (maybe a hook), secrets. */
enum hx_step { STEP_POLICY, STEP_RULES, STEP_SECRETS, STEP_SEND };

struct body_xform;   /* rules.c: a response body rewrite (SSE data: lines, whole-body) */

/* The exchange in progress (one request and its response). */
struct xchg {
	char *method;             /* as the guest sent it */
	char *url;                /* as the guest sent it (events: placeholders, never values) */
	char *target;             /* what goes upstream (rules may rewrite, secrets substitute) */
	char host[NAME_MAX_LEN + 1];
	bool head_req;            /* HEAD: the response has no body */
	bool upgrade;             /* the request asks to switch protocols */
	bool req_chunked;         /* request body re-chunked towards the upstream */
	enum hx_step step;
	int rule_next;            /* the next before-phase rule to run */
	int rule_after_next;      /* the next after-phase rule */
	bool head_sent;           /* the request head is in u.out */
	bool req_done;            /* the whole request went upstream */
	bool out_chunked;         /* response body re-chunked towards the guest */
	bool resp_seen;           /* upstream bytes of this exchange's response arrived */
	bool close;               /* close the guest connection after this exchange */
	int status;
	int64_t start_ms;
	uint64_t req_body, resp_body;
	uint64_t secrets_used;    /* bit i: secret i was substituted */
	char rule[128];           /* the hook rule that blocked or changed it */
	struct body_xform *xf;    /* response body rewrite, or NULL */
};

struct hx {
	struct mitm_flow *f;
	struct ep g, u;
	struct h1 req, resp;
	bool https;               /* TLS towards the guest (a TCP/443 flow) */
	enum hx_stage stage;
	enum hx_tx tx;
	enum hx_rs rs;
	enum hx_up up;
	enum hx_wait wait;
	struct target tgt;        /* where the upstream connection goes */
	char up_host[NAME_MAX_LEN + 1];   /* the policy host the open upstream is for */
	char sni[NAME_MAX_LEN + 1];       /* TLS: the name the guest's ClientHello asked for
					   * (normalized; the dialed address if it named none) */
	char upstream_sni[NAME_MAX_LEN + 1];  /* the name sent upstream and verified ("": tgt.host) */
	bool want_h2_up;          /* offer h2 to the upstream */
	bool u_remembered;        /* the upstream session was kept for resumption */
	bool u_reusable;          /* the upstream is idle after a keep-alive exchange (poolable) */
	bool u_from_pool;         /* the upstream came from the idle pool (a dead one is retried) */
	bool no_pool;             /* this exchange retries on a fresh connection */
	bool u_offered_h2;        /* the upstream's TLS session was offered h2 */
	char up_err[160];         /* why the upstream failed (one line, for the 502) */
	int up_status;            /* 502, or 504 for a timeout */
	bool denied;              /* TLS: the SNI was refused (close after the handshake) */
	bool fatal;               /* mid-response failure: the guest is reset */
	bool resp_eof_fed;        /* the upstream's EOF was given to the response parser */
	const char *deny_reason;
	struct job *job;
	struct h2conn *h2;        /* HTTP/2 both ways (h2.c), or NULL: the HTTP/1 proxy */
	int64_t t0;               /* start of the current timed wait */
	int64_t up_t0;            /* start of the upstream connect (+ TLS handshake) */
	struct xchg x;
};

static inline struct hx *hx_of(const struct mitm_flow *f) { return f->h; }

/* proxy.c */
void hx_local_reply(struct mitm *m, struct hx *hx, int status, const char *body,
		    bool blocked, const char *reason);
void hx_emit(struct mitm *m, struct hx *hx, bool blocked, const char *reason);
int hx_upstream_start(struct mitm *m, struct hx *hx);
void hx_upstream_close(struct hx *hx);
int hx_submit(struct mitm *m, struct hx *hx, struct job *j, enum hx_wait w);
void hx_xchg_clear(struct hx *hx);

/* proxy_req.c */
void req_init(struct hx *hx);
/* Moves the request side on; false if nothing changed. */
bool req_pump(struct mitm *m, struct hx *hx);
/* The upstream for the current request is ready (or failed): send the head or answer. */
void req_upstream_ready(struct mitm *m, struct hx *hx);
void req_resolved(struct mitm *m, struct hx *hx, struct job *j);
/* A reused upstream died before answering a request that can be sent again: send it on a
 * fresh connection. False if it cannot be retried. */
bool req_retry_fresh(struct mitm *m, struct hx *hx);
/* A before-phase hook answered (rules.c applied it): go on with the secrets and the send. */
void req_hook_done(struct mitm *m, struct hx *hx);

/* tlsflow.c: the stages of a TCP/443 flow before HTTP (ClientHello, decision, handshake).
 * tlsflow_step: 1 progress, 0 none, -1 the flow must end (closed quietly). */
int tlsflow_step(struct mitm *m, struct hx *hx);
void tlsflow_resolved(struct mitm *m, struct hx *hx, struct job *j);
void tlsflow_release(struct hx *hx);

/* rules.c: hook rules on an exchange */
void rules_xform_free(struct body_xform *xf);
void rules_hook_done(struct mitm *m, struct hx *hx, struct job *j);

/* proxy_resp.c */
void resp_init(struct hx *hx);
bool resp_pump(struct mitm *m, struct hx *hx);
/* After the after-phase rules (and hooks): frame and write the head, stream the body. */
void resp_head_go(struct mitm *m, struct hx *hx);
/* The response head as it stands (status line, live headers) into the guest's buffer. */
int resp_write_head(struct hx *hx);
/* Body bytes to the guest, in the framing chosen for this response. */
int resp_write_body(struct hx *hx, const uint8_t *p, size_t n);
bool tunnel_pump(struct hx *hx);

#endif
