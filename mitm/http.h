/* mitm/http.h - internal to mitm/: the pieces the intercepting proxies are built from.
 *   hdrs  a message head's header list in one arena (hdr.c)
 *   h1    an HTTP/1.x message reader over Debian's http_parser (h1.c): collects the head,
 *         stops after it and after each message, streams the body to a callback, and refuses
 *         what a request smuggler would send (400) or a head over 64 KiB (431)
 *   iob   a byte buffer that holds memory only while it holds bytes
 *   ep    one end of an intercepted flow: a socket, plain or TLS, with its in/out buffers (ep.c)
 */
#ifndef ML_MITM_HTTP_H
#define ML_MITM_HTTP_H

#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX (64u * 1024u)   /* request or response head: beyond -> 431 / 502 */
#define IOB_SOFT_CAP (64u * 1024u)    /* stop producing into a buffer that holds this much */

/* ---- hdrs (hdr.c) ---- */
struct hdr {
	uint32_t name, nlen;   /* offsets into the arena; both NUL-terminated there */
	uint32_t value, vlen;  /* value HDR_NO_VALUE: not read yet (only while a head is read) */
	bool dead;             /* deleted */
};
#define HDR_NO_VALUE UINT32_MAX

struct hdrs {
	struct hdr *v;
	uint32_t n, cap;
	char *a;               /* arena */
	uint32_t alen, acap;
};

void hdrs_free(struct hdrs *h);
void hdrs_reset(struct hdrs *h);   /* empty, keeps the memory */
/* val NULL: the value comes later (HDR_NO_VALUE). */
int hdrs_add(struct hdrs *h, const char *name, size_t nlen, const char *val, size_t vlen);
/* Appends n bytes to the string at off, which must be the arena's last one. */
int hdrs_extend(struct hdrs *h, uint32_t off, uint32_t *len, const char *s, size_t n);
/* Copies s into the arena (NUL-terminated); returns its offset, or -ENOMEM. */
int64_t hdrs_intern(struct hdrs *h, const char *s, size_t len);
static inline const char *hdrs_str(const struct hdrs *h, uint32_t off) { return h->a + off; }
static inline const char *hdr_name(const struct hdrs *h, const struct hdr *x) { return h->a + x->name; }
static inline const char *hdr_value(const struct hdrs *h, const struct hdr *x) { return h->a + x->value; }
/* The first live header with this name (case-insensitive), or NULL. */
const char *hdrs_get(const struct hdrs *h, const char *name);
unsigned hdrs_count(const struct hdrs *h, const char *name);
/* Deletes every header with this name; then (set) adds one with the value. */
void hdrs_del(struct hdrs *h, const char *name);
int hdrs_set(struct hdrs *h, const char *name, const char *val);
/* Replaces the value of header i (a new arena string). */
int hdrs_replace_value(struct hdrs *h, uint32_t i, const char *val, size_t vlen);
/* True if a comma-separated header (Connection, Transfer-Encoding) lists token. */
bool hdrs_has_token(const struct hdrs *h, const char *name, const char *token);
/* "x-hook" -> "X-Hook" in place. */
void hdr_canonicalize(char *name);
/* True if s is a valid header name (RFC 9110 token) / value (no CR, LF, NUL). */
bool hdr_name_ok(const char *s, size_t len);
bool hdr_value_ok(const char *s, size_t len);

/* ---- iob ---- */
struct iob {
	uint8_t *d;
	size_t off, len, cap;
};
void iob_free(struct iob *b);
/* Room for at least n more bytes at the end (grows; compacts first). NULL on ENOMEM. */
uint8_t *iob_space(struct iob *b, size_t n);
int iob_put(struct iob *b, const void *p, size_t n);
int iob_printf(struct iob *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void iob_consume(struct iob *b, size_t n);   /* frees the memory when it empties */

/* ---- h1 (h1.c) ---- */
enum h1_err {
	H1_OK = 0,
	H1_BAD = 400,          /* malformed, smuggling (CL+TE, duplicate CL, obs-fold), bad TE */
	H1_TOO_BIG = 431,      /* head over HTTP_HEAD_MAX */
	H1_NOMEM = 500,
};

struct h1;
/* Body bytes of the current message, already de-chunked. Return 0, or an H1 error. */
typedef int (*h1_body_fn)(struct h1 *h, const uint8_t *p, size_t n);

struct h1 {
	http_parser p;
	struct hdrs hd;            /* the head being read / just read */
	int64_t url;               /* request target in hd's arena (-1: none yet) */
	uint32_t url_len;
	int64_t reason;            /* a response's reason phrase in hd's arena (-1: none) */
	uint32_t reason_len;
	uint32_t head_bytes;
	bool in_head;              /* reading a head (header callbacks are not trailers) */
	bool line_start;           /* the next byte starts a head line (obs-fold check) */
	bool bad;                  /* a header line started with SP/HT */
	bool last_value;           /* the last header callback was a value */
	bool head_done;            /* stopped after the head; h1_resume() goes on */
	bool msg_done;             /* stopped after the message */
	bool skip_body;            /* response to HEAD (set before feeding the response head) */
	enum h1_err err;
	h1_body_fn body;
	void *ctx;
};

void h1_init(struct h1 *h, enum http_parser_type type, h1_body_fn body, void *ctx);
void h1_free(struct h1 *h);
/* Feeds bytes (n = 0: the peer closed). Stops after a head (head_done) and after a message
 * (msg_done), returning how much it consumed; -1 with h->err set on a bad message. */
ssize_t h1_feed(struct h1 *h, const uint8_t *p, size_t n);
/* Go on after head_done / msg_done (after msg_done the next message starts, its head empty). */
void h1_resume(struct h1 *h);
static inline bool h1_chunked(const struct h1 *h) { return h->p.flags & F_CHUNKED; }
static inline bool h1_has_length(const struct h1 *h) { return h->p.flags & F_CONTENTLENGTH; }
static inline bool h1_keepalive(const struct h1 *h) { return http_should_keep_alive(&h->p); }
static inline bool h1_upgrade(const struct h1 *h) { return h->p.upgrade; }
const char *h1_url(const struct h1 *h);
const char *h1_reason(const struct h1 *h);

/* ---- ep (ep.c): one end of an intercepted flow ---- */
struct ep {
	int *fdp;                  /* the flow's gfd or ufd */
	gnutls_session_t tls;      /* NULL: plain TCP */
	struct iob pre;            /* TLS: ciphertext read but not yet taken by GnuTLS (first the
				    * ClientHello read before TLS took over; then read-ahead: one
				    * recv serves many records) */
	struct iob in;             /* plaintext read, not yet consumed */
	struct iob out;            /* plaintext to write */
	struct iob cout;           /* TLS: records made but not yet sent (bulk data: up to
				    * TLS_BATCH records leave in one send) */
	bool batch;                /* making such records now: the push callback buffers */
	size_t tls_pending;        /* a gnutls_record_send that returned AGAIN, to repeat */
	bool eof;                  /* the peer closed (or sent close_notify) */
	bool shut;                 /* we closed our write side */
	bool close_after;          /* close our write side once out drains */
	bool want_read;            /* the proxy wants bytes from this end now */
	bool rd_ready;             /* poll said readable and no read has come back empty since
				    * (poll is level-triggered: an end is read only when this is
				    * set or GnuTLS holds decrypted bytes - no EAGAIN round trips) */
	bool hs_done;              /* TLS handshake finished (plain: always) */
	int err;                   /* fatal: negative errno or a GnuTLS error */
	uint64_t bytes_in, bytes_out;
};

enum ep_io { EP_IDLE, EP_PROGRESS };
/* Reads what is there into e->in (at most IOB_SOFT_CAP buffered), if the end is ready (see
 * rd_ready). Sets eof/err. */
enum ep_io ep_read(struct ep *e);
/* Writes e->out; then, if close_after, shuts the write side. Sets err. */
enum ep_io ep_flush(struct ep *e);
short ep_events(const struct ep *e);
void ep_free(struct ep *e);
bool ep_out_room(const struct ep *e);   /* out holds less than IOB_SOFT_CAP */
/* Bytes still to leave through this end (plaintext, a repeated record, or made records). */
static inline bool ep_out_pending(const struct ep *e)
{
	return e->out.len || e->tls_pending || e->cout.len;
}

#endif
