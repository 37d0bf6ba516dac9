/* mitm/ep.c - one end of an intercepted flow: a nonblocking socket, plain or TLS (GnuTLS),
 * with a plaintext buffer each way.
 *
 * GnuTLS reads and writes through our transport functions, so the bytes a handler already
 * read to decide (the ClientHello in e->pre) are handed to the TLS layer first, and every
 * write is MSG_NOSIGNAL | MSG_DONTWAIT. A record GnuTLS could not send whole is repeated with
 * the same length (tls_pending), as its API asks. Buffers hold memory only while they hold
 * bytes: an idle end costs its struct.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mitm/http.h"

#define TLS_RECORD 16384u
#define TLS_BATCH 4u   /* records made per send when there is bulk to write */

static ssize_t read_plain(struct ep *e, uint8_t *to, size_t room)
{
	ssize_t r;

	do
		r = recv(*e->fdp, to, room, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (r < 0)
		return -errno;
	return r;
}

static ssize_t read_tls(struct ep *e, uint8_t *to, size_t room)
{
	for (int tries = 0;; tries++) {
		ssize_t r = gnutls_record_recv(e->tls, to, room);

		if (r >= 0)
			return r;
		/* AGAIN after a post-handshake message (a TLS 1.3 session ticket) while records we
		 * already read ahead wait in e->pre: no poll would ever report those, so go on */
		if (r == GNUTLS_E_AGAIN && e->pre.len && tries < 8)
			continue;
		if (r == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r == GNUTLS_E_REHANDSHAKE) {
			/* A client asking to renegotiate is told no; the session goes on. */
			if (gnutls_alert_send(e->tls, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION) < 0)
				return -EPROTO;
			continue;
		}
		if (r == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;   /* closed without close_notify: an EOF like any other here */
		e->err = (int)r;
		return -EPROTO;
	}
}

enum ep_io ep_read(struct ep *e)
{
	enum ep_io io = EP_IDLE;

	/* (read-ahead ciphertext in e->pre is ours to process: no poll will report it) */
	if (!e->rd_ready && !(e->tls && (gnutls_record_check_pending(e->tls) || e->pre.len)))
		return EP_IDLE;

	while (!e->eof && !e->err && e->in.len < IOB_SOFT_CAP) {
		size_t room = IOB_SOFT_CAP - e->in.len;
		uint8_t *to = iob_space(&e->in, room);
		ssize_t r;

		if (!to) {
			e->err = -ENOMEM;
			break;
		}
		r = e->tls ? read_tls(e, to, room) : read_plain(e, to, room);
		if (r == -EAGAIN) {
			e->rd_ready = false;
			break;
		}
		if (r < 0) {
			if (!e->err)
				e->err = (int)r;
			break;
		}
		io = EP_PROGRESS;
		if (r == 0) {
			e->eof = true;
			break;
		}
		e->in.len += (size_t)r;
		e->bytes_in += (uint64_t)r;
		/* A short plain read means the socket is empty. TLS reads a record at a time: a
		 * full record (bulk data) goes on, a short one ends this turn unless GnuTLS
		 * already holds more; poll reports what is left in the socket. */
		if ((!e->tls && (size_t)r < room) ||
		    (e->tls && r < 16384 && !gnutls_record_check_pending(e->tls) && !e->pre.len)) {
			e->rd_ready = false;
			break;
		}
	}
	if (!e->in.len)
		iob_free(&e->in);
	return io;
}

static ssize_t write_plain(struct ep *e, const uint8_t *p, size_t n)
{
	ssize_t w;

	do
		w = send(*e->fdp, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	return w < 0 ? -errno : w;
}

/* Sends the records made in a batch; 0 when all went, -EAGAIN, or an error. */
static int send_cout(struct ep *e)
{
	while (e->cout.len) {
		ssize_t w = write_plain(e, e->cout.d + e->cout.off, e->cout.len);

		if (w < 0)
			return (int)w;
		iob_consume(&e->cout, (size_t)w);
	}
	return 0;
}

static ssize_t write_tls(struct ep *e, const uint8_t *p, size_t n)
{
	ssize_t w;

	/* Bulk: make up to TLS_BATCH records into e->cout (the push callback buffers while
	 * e->batch is set), sent by one send - a quarter of the syscalls and wake-ups. */
	if (!e->tls_pending && !e->cout.len && n > TLS_RECORD) {
		size_t done = 0;

		e->batch = true;
		for (unsigned k = 0; k < TLS_BATCH && done < n; k++) {
			size_t c = n - done < TLS_RECORD ? n - done : TLS_RECORD;

			do
				w = gnutls_record_send(e->tls, p + done, c);
			while (w == GNUTLS_E_INTERRUPTED);
			if (w < 0) {
				e->batch = false;
				e->err = (int)w;
				return -EPROTO;
			}
			done += (size_t)w;
		}
		e->batch = false;
		return (ssize_t)done;
	}
	if (e->tls_pending)
		n = e->tls_pending;   /* GnuTLS wants the same call again */
	else if (n > TLS_RECORD)
		n = TLS_RECORD;
	do
		w = gnutls_record_send(e->tls, p, n);
	while (w == GNUTLS_E_INTERRUPTED);
	if (w == GNUTLS_E_AGAIN) {
		e->tls_pending = n;
		return -EAGAIN;
	}
	e->tls_pending = 0;
	if (w < 0) {
		e->err = (int)w;
		return -EPROTO;
	}
	return w;
}

static void shut_write(struct ep *e)
{
	if (e->tls) {
		int r = gnutls_bye(e->tls, GNUTLS_SHUT_WR);

		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return;   /* the close_notify goes out on the next flush */
	}
	e->shut = true;
	/* Fails only if the peer is gone; its next read reports that. */
	(void)shutdown(*e->fdp, SHUT_WR);
}

enum ep_io ep_flush(struct ep *e)
{
	enum ep_io io = EP_IDLE;

	while (ep_out_pending(e) && !e->err) {
		ssize_t w;

		if (e->cout.len) {
			int r = send_cout(e);

			if (r == -EAGAIN)
				break;
			if (r < 0) {
				e->err = r;
				break;
			}
			io = EP_PROGRESS;
			continue;
		}
		w = e->tls ? write_tls(e, e->out.d + e->out.off, e->out.len)
				   : write_plain(e, e->out.d + e->out.off, e->out.len);

		if (w == -EAGAIN)
			break;
		if (w < 0) {
			if (!e->err)
				e->err = (int)w;
			break;
		}
		e->bytes_out += (uint64_t)w;
		iob_consume(&e->out, (size_t)w);
		io = EP_PROGRESS;
	}
	if (!ep_out_pending(e) && e->close_after && !e->shut && !e->err)
		shut_write(e);
	return io;
}

short ep_events(const struct ep *e)
{
	short ev = 0;

	if (*e->fdp < 0 || e->err)
		return 0;
	if (e->tls && !e->hs_done)
		return gnutls_record_get_direction(e->tls) ? POLLOUT : POLLIN;
	if (e->want_read && !e->eof && e->in.len < IOB_SOFT_CAP)
		ev |= POLLIN;
	if (ep_out_pending(e) || (e->close_after && !e->shut))
		ev |= POLLOUT;
	return ev;
}

bool ep_out_room(const struct ep *e)
{
	return e->out.len < IOB_SOFT_CAP;
}

void ep_free(struct ep *e)
{
	if (e->tls)
		gnutls_deinit(e->tls);
	e->tls = NULL;
	iob_free(&e->pre);
	iob_free(&e->in);
	iob_free(&e->out);
	iob_free(&e->cout);
}
