/* vmm/chans.c - the guest channels as one table: each is a byte stream whose host end is a unix
 * socket in the VM's state dir, listened on before the engine starts (QEMU is the client: a
 * client chardev that finds no listener fails, a netdev one runs on silently dead) and accepted
 * while the engine initialises. A new channel is a new row here plus its enum value in vmm.h;
 * the listen/accept/cleanup code and the engine arguments (qemu_args.c) follow the table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "vmm/vmm_internal.h"

static bool always(const struct vmm_config *c)
{
	(void)c;
	return true;
}

/* The benchmark's baseline (qemu_user_net: QEMU's own user networking instead of the frame
 * stream) has a NIC without this channel. */
static bool net_wanted(const struct vmm_config *c) { return c->network && !c->qemu_user_net; }

static bool files_wanted(const struct vmm_config *c) { return c->files; }

const struct vmm_chan_def vmm_chans[VMM_CHAN_COUNT] = {
	[VMM_CHAN_CTL] = { .what = "control", .sock = "ctl.sock", .kind = VMM_CHAN_SERIAL,
			   .id = "ctl", .port = PROTO_PORT_CTL, .wanted = always },
	[VMM_CHAN_NET] = { .what = "network", .sock = "net.sock", .kind = VMM_CHAN_NETDEV,
			   .id = "n0", .wanted = net_wanted },
	[VMM_CHAN_FILES] = { .what = "files", .sock = "files.sock", .kind = VMM_CHAN_SERIAL,
			     .id = "files", .port = PROTO_PORT_FILES, .wanted = files_wanted },
};

int vmm_chan_listen(const char *path, const char *what, struct ml_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return ml_err_set(e, -ENAMETOOLONG, "%s socket path too long (%zu bytes, at most "
				  "%zu): %s", what, strlen(path), sizeof(sa.sun_path) - 1, path);
	strcpy(sa.sun_path, path);
	/* a socket left by a crashed run of this VM; the state dir is ours alone */
	unlink(path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ml_err_set(e, -errno, "create %s socket: %s", what, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return ml_err_set(e, -errno, "bind %s socket %s: %s", what, path, strerror(errno));
	if (chmod(path, 0600) < 0 || listen(fd, 1) < 0)
		return ml_err_set(e, -errno, "listen on %s socket %s: %s", what, path, strerror(errno));
	return steal_fd(&fd);
}

/* The peer is not checked by pid: the socket sits in our 0700 state dir, so only our own user
 * (or root) can reach it, and a pid check would refuse a MATCHLOCK_QEMU wrapper that forks. */
int vmm_chan_accept(struct vmm_chan_state *ch, const char *what, struct ml_err *e)
{
	int fd = accept4(ch->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED
			       ? 0 : ml_err_set(e, -errno, "accept %s channel: %s", what, strerror(errno));
	ch->fd = fd;
	close(ch->lfd);
	ch->lfd = -1;
	return 1;
}

int vmm_chans_listen(struct vmm *vm, const struct vmm_config *c, struct ml_err *e)
{
	for (int i = 0; i < VMM_CHAN_COUNT; i++) {
		struct vmm_chan_state *ch = &vm->chan[i];
		if (!vmm_chans[i].wanted(c))
			continue;
		if (asprintf(&ch->path, "%s/%s", c->state_dir, vmm_chans[i].sock) < 0) {
			ch->path = NULL;
			return ml_err_set(e, -ENOMEM, "out of memory");
		}
		ch->lfd = vmm_chan_listen(ch->path, vmm_chans[i].what, e);
		if (ch->lfd < 0)
			return ch->lfd;
	}
	return 0;
}

int vmm_chans_pending(const struct vmm *vm)
{
	for (int i = 0; i < VMM_CHAN_COUNT; i++)
		if (vm->chan[i].lfd >= 0)
			return i;
	return -1;
}

void vmm_chans_init(struct vmm *vm)
{
	for (int i = 0; i < VMM_CHAN_COUNT; i++)
		vm->chan[i] = (struct vmm_chan_state){ .fd = -1, .lfd = -1 };
}

void vmm_chans_close(struct vmm *vm)
{
	for (int i = 0; i < VMM_CHAN_COUNT; i++) {
		struct vmm_chan_state *ch = &vm->chan[i];
		if (ch->fd >= 0)
			close(ch->fd);
		if (ch->lfd >= 0)
			close(ch->lfd);
		if (ch->path)
			unlink(ch->path);
		free(ch->path);
		*ch = (struct vmm_chan_state){ .fd = -1, .lfd = -1 };
	}
}

int vmm_chan_fd(const struct vmm *vm, enum vmm_chan ch)
{
	return ch >= 0 && ch < VMM_CHAN_COUNT ? vm->chan[ch].fd : -1;
}
