/* vmm/console.c - the engine's stdout+stderr: the guest's serial console plus QEMU's own
 * messages, on one pipe.
 *
 * The pipe must be drained all the time: when it is full QEMU blocks writing the serial port and
 * the guest stalls. What we read goes to the VM log (whose logger holds the byte budget of the
 * whole file: a guest printing forever must not fill the disk) and into a fixed 4 KiB ring for
 * error messages (nor grow our memory). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/text.h"
#include "vmm/vmm_internal.h"

/* Bytes read per pump call at most, so a flooding guest cannot starve the caller's event loop;
 * the fd stays readable and the loop comes back. */
#define PUMP_BUDGET (1u << 20)

void vmm_console_init(struct vmm_console *c, int fd, struct ml_logger *log)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->log = log;
}

static void append_ring(struct vmm_console *c, const char *data, size_t len)
{
	if (len >= sizeof(c->ring)) {
		data += len - sizeof(c->ring);
		len = sizeof(c->ring);
	}
	for (size_t i = 0; i < len; i++) {
		c->ring[c->ring_head] = data[i];
		c->ring_head = (c->ring_head + 1) % sizeof(c->ring);
	}
	c->ring_len = c->ring_len + len > sizeof(c->ring) ? sizeof(c->ring) : c->ring_len + len;
}

void vmm_console_feed(struct vmm_console *c, const char *data, size_t len)
{
	ml_logger_write(c->log, data, len);
	append_ring(c, data, len);
}

int vmm_console_read(struct vmm_console *c)
{
	char buf[64 * 1024];
	size_t budget = PUMP_BUDGET;
	while (!c->eof && budget > 0) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			c->eof = true; /* EOF, or an error no retry will fix */
			break;
		}
		vmm_console_feed(c, buf, (size_t)n);
		budget -= (size_t)n < budget ? (size_t)n : budget;
	}
	return c->eof ? -EPIPE : 0;
}

/* The tail ends up in error messages on the user's terminal: guest bytes there must not carry
 * escape sequences (ml_text_clean keeps newlines and tabs, drops carriage returns). */
const char *vmm_console_tail_of(struct vmm_console *c)
{
	char raw[VMM_CONSOLE_TAIL];
	size_t start = (c->ring_head + sizeof(c->ring) - c->ring_len) % sizeof(c->ring);
	for (size_t i = 0; i < c->ring_len; i++)
		raw[i] = c->ring[(start + i) % sizeof(c->ring)];
	ml_text_clean(c->tail, sizeof(c->tail), raw, c->ring_len, ML_TEXT_LINES);
	/* When older output fell off the ring the first line is a fragment: drop it. */
	char *from = c->tail;
	char *nl = c->ring_len == sizeof(c->ring) ? strchr(c->tail, '\n') : NULL;
	if (nl && nl[1])
		from = nl + 1;
	/* and no trailing newline, so callers can put it after "console: " and end the line */
	size_t len = strlen(from);
	while (len > 0 && from[len - 1] == '\n')
		from[--len] = '\0';
	return from;
}
