/* dnswire/dnswire.h - DNS messages on the wire (RFC 1035 §4): bounds-checked readers and
 * builders shared by the guest's two ways to ask a resolver, UDP (slirpnet answers it
 * in-process) and TCP (a flow mitm serves). Both sides of a lookup are hostile: the guest
 * writes the queries, and whoever answers upstream shapes the replies, so every read goes
 * through base/buf.h and a message that is not exactly well formed is refused as a whole.
 * Pure functions, no state besides the framer's; any thread. */
#ifndef ML_DNSWIRE_H
#define ML_DNSWIRE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define DNSWIRE_HDR 12
#define DNSWIRE_WIRE_MAX 255  /* a name in uncompressed wire form, root label included */
#define DNSWIRE_TEXT_MAX 254  /* the same name as text: at most 253 characters + NUL */
#define DNSWIRE_ADDRS_MAX 32  /* addresses reported per reply; more are left out */
#define DNSWIRE_CHAIN_MAX 8   /* CNAME records followed from the question name */
#define DNSWIRE_JUMPS_MAX 64  /* compression pointers followed while reading one name */
#define DNSWIRE_RRS_MAX 64    /* answer records considered (all are still checked) */
#define DNSWIRE_MSG_MAX 65535 /* the largest message TCP's 2-byte length can carry */

#define DNSWIRE_TYPE_A 1
#define DNSWIRE_TYPE_CNAME 5
#define DNSWIRE_TYPE_AAAA 28
#define DNSWIRE_TYPE_SVCB 64
#define DNSWIRE_TYPE_HTTPS 65
#define DNSWIRE_CLASS_IN 1
#define DNSWIRE_RCODE_NOERROR 0
#define DNSWIRE_RCODE_REFUSED 5

static inline uint16_t dnswire_rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t dnswire_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void dnswire_wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ---- queries (from the guest) ---- */

struct dnswire_query {
	uint16_t id, qtype, qclass;
	/* The question name, lowercase, no trailing dot; "" when it is the root or not a host
	 * name. host_name: every label is letters, digits, '-' or '_' (a label holding '.' or NUL
	 * could pass for another name as text, so such names are never matched against a list). */
	char name[DNSWIRE_TEXT_MAX];
	bool host_name;
	size_t qlen;   /* the question on the wire: name + type + class */
};

/* Reads a query the way a resolver front accepts one: QR 0, opcode QUERY, exactly one
 * question, no answer or authority records, at most one additional record (EDNS, not read),
 * a name of plain labels (no compression pointers) of at most 255 bytes. Returns 0 or
 * -EBADMSG. */
int dnswire_query_parse(const uint8_t *msg, size_t len, struct dnswire_query *q);

/* The answer to query (already accepted by dnswire_query_parse) with no records: same id,
 * QR, opcode QUERY, RD copied, RA, the rcode, the question. Returns its length (12 + qlen),
 * or 0 if cap is too small. */
size_t dnswire_reply_empty(const uint8_t *query, const struct dnswire_query *q, unsigned rcode,
			   uint8_t *out, size_t cap);

/* ---- replies (from upstream) ---- */

/* What a reply to an A/IN question says, following CNAMEs within its answer section. */
struct dnswire_answer {
	char name[DNSWIRE_TEXT_MAX];                 /* the question, lowercase, no trailing dot */
	struct in_addr addrs[DNSWIRE_ADDRS_MAX];     /* network order, duplicates left out */
	size_t n;
	uint32_t ttl_s;                              /* minimum over the records used */
	/* The names the question's CNAMEs lead to, in chain order (host names only; the chain
	 * stops at the first that is not one). Their TTL is the smallest CNAME TTL on the way. */
	char chain[DNSWIRE_CHAIN_MAX][DNSWIRE_TEXT_MAX];
	size_t n_chain;
	uint32_t chain_ttl_s;
};

/* Reads the name at off of msg into out as uncompressed wire labels, ASCII lowercased;
 * *out_len is its length (root label included), *next the offset right after the name where
 * it is stored (after its first compression pointer, if any). Returns 0 or -EBADMSG: out of
 * bounds, a label type other than plain or pointer, a pointer that does not point strictly
 * before the labels that led to it (forward pointers, loops), too many pointers, or a name
 * longer than 255 bytes. */
int dnswire_name(const struct buf *msg, size_t off, uint8_t out[DNSWIRE_WIRE_MAX], size_t *out_len,
		 size_t *next);

/* Reads a whole reply. Returns -EBADMSG if any part of it is malformed (header, exactly one
 * question, every record of every section within bounds and exactly as many as counted, no
 * trailing bytes, A rdata of 4 bytes and CNAME rdata exactly one name, in the answer section).
 * Otherwise returns 0 with a->n addresses: those of A/IN records whose owner is the question
 * name or reached from it through CNAMEs of the answer section, and a->n_chain CNAME targets;
 * both are 0 unless the reply is a NOERROR standard query response to an A/IN question whose
 * name is a host name. */
int dnswire_parse_answer(const uint8_t *msg, size_t len, struct dnswire_answer *a);

/* ---- DNS over TCP (RFC 1035 §4.2.2, RFC 7766) ---- */

/* Each message is preceded by its length, 2 bytes big-endian. The framer is incremental and
 * says how many bytes it wants next, so a reader takes exactly those from its socket and
 * never holds bytes of the following message. Zero it to start. */
struct dnswire_framer {
	uint8_t len_be[2];
	size_t have;      /* bytes of the current (prefix + message) received */
	size_t msg_len;   /* from the prefix, once both bytes are in */
	uint8_t *msg;     /* msg_len bytes, allocated when the prefix is complete */
};

/* Bytes to read next (always > 0). */
size_t dnswire_framer_want(const struct dnswire_framer *f);
/* True while part of a message (or of its prefix) has been received. */
bool dnswire_framer_busy(const struct dnswire_framer *f);
/* Takes n (<= want) bytes. Returns 1 when a whole message is in (take it), 0 when more is
 * needed, -EBADMSG for a length below 12 (no DNS message is that short), -ENOMEM. */
int dnswire_framer_feed(struct dnswire_framer *f, const uint8_t *p, size_t n);
/* The complete message (the caller frees it) and its length; the framer starts over. */
uint8_t *dnswire_framer_take(struct dnswire_framer *f, size_t *len);
/* Frees a partial message and starts over. */
void dnswire_framer_reset(struct dnswire_framer *f);

#endif
