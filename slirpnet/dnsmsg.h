/* slirpnet/dnsmsg.h - internal: a bounds-checked reader of upstream DNS replies, for learning
 * which addresses the guest's resolver was told a name has (not part of the API). */
#ifndef ML_SLIRPNET_DNSMSG_H
#define ML_SLIRPNET_DNSMSG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define DNSMSG_WIRE_MAX 255  /* a name in uncompressed wire form, root label included */
#define DNSMSG_TEXT_MAX 254  /* the same name as text: at most 253 characters + NUL */
#define DNSMSG_ADDRS_MAX 32  /* addresses reported per reply; more are left out */
#define DNSMSG_CHAIN_MAX 8   /* CNAME records followed from the question name */
#define DNSMSG_JUMPS_MAX 64  /* compression pointers followed while reading one name */
#define DNSMSG_RRS_MAX 64    /* answer records considered (all are still checked) */

/* What a reply to an A/IN question says, following CNAMEs within its answer section. */
struct dnsmsg_a {
	char name[DNSMSG_TEXT_MAX];               /* the question, lowercase, no trailing dot */
	struct in_addr addrs[DNSMSG_ADDRS_MAX];   /* network order, duplicates left out */
	size_t n;
	uint32_t ttl_s;                           /* minimum over the records used */
};

/* Reads the name at off of msg into out as uncompressed wire labels, ASCII lowercased;
 * *out_len is its length (root label included), *next the offset right after the name where
 * it is stored (after its first compression pointer, if any). Returns 0 or -EBADMSG: out of
 * bounds, a label type other than plain or pointer, a pointer that does not point strictly
 * before the labels that led to it (forward pointers, loops), too many pointers, or a name
 * longer than 255 bytes. */
int dnsmsg_name(const struct buf *msg, size_t off, uint8_t out[DNSMSG_WIRE_MAX], size_t *out_len,
		size_t *next);

/* Reads a whole reply. Returns -EBADMSG if any part of it is malformed (header, exactly one
 * question, every record of every section within bounds and exactly as many as counted, no
 * trailing bytes, A rdata of 4 bytes and CNAME rdata exactly one name, in the answer section).
 * Otherwise returns 0 with a->n addresses: those of A/IN records whose owner is the question
 * name or reached from it through CNAMEs of the answer section; a->n is 0 unless the reply is a
 * NOERROR standard query response to an A/IN question whose name is a host name (letters,
 * digits, '-', '_'; a label holding '.', NUL or other bytes could pass for another name). */
int dnsmsg_parse_a(const uint8_t *msg, size_t len, struct dnsmsg_a *a);

#endif
