/* agent/proto.h - the control protocol between the supervisor (host) and the guest agent.
 * Shared by both ends; the wire is described in agent/PROTOCOL.md. Every decoder here treats
 * its input as hostile: lengths are checked before use, and a bad frame is an error that ends
 * the channel (the caller closes it), never a crash. */
#ifndef ML_AGENT_PROTO_H
#define ML_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION      1
#define PROTO_HDR_LEN      12u
#define PROTO_MAX_PAYLOAD  (1u << 20)    /* 1 MiB: exec requests carry argv+env */
#define PROTO_DATA_CHUNK   (32u << 10)   /* data frames are cut to this size */
#define PROTO_WINDOW       (256u << 10)  /* unacknowledged data bytes allowed per stream and direction */
#define PROTO_MAX_STREAMS  1024u         /* concurrent execs per VM */
#define PROTO_FILE_READ_MAX (16u << 20)  /* EXF_FILEOP "read": larger files are refused */

enum proto_type {
	/* host -> guest */
	PT_CONFIG = 1,   /* stream 0: TLV boot config; agent answers PT_READY or PT_ERROR */
	PT_EXEC = 2,     /* TLV exec request; answers PT_STARTED or PT_ERROR on that stream */
	PT_STDIN = 3,    /* data; empty payload = EOF */
	PT_RESIZE = 4,   /* u16 rows, u16 cols */
	PT_SIGNAL = 5,   /* u32 signo, sent to the exec's process group */
	PT_CANCEL = 6,   /* SIGTERM to the group, SIGKILL 5 s later if still alive */
	PT_PING = 7,     /* stream 0: payload echoed back in PT_PONG */
	PT_SHUTDOWN = 8, /* stream 0: sync and power off */
	/* guest -> host */
	PT_HELLO = 32,   /* stream 0: u32 version, then free text (agent/kernel info) */
	PT_READY = 33,   /* stream 0: config applied, execs may start */
	PT_STARTED = 34, /* u32 pid */
	PT_STDOUT = 35,  /* data; empty = EOF */
	PT_STDERR = 36,  /* data; empty = EOF */
	PT_EXIT = 37,    /* i32 exit code, u32 signal (0 when it exited normally) */
	PT_PONG = 38,
	PT_LOG = 39,     /* stream 0: a line for the VM log */
	PT_ERROR = 40,   /* text; on stream 0: config failed; on a stream: exec could not start */
	/* both ways */
	PT_CREDIT = 64,  /* u32 bytes consumed on this stream (re-opens the sender's window) */
};

/* TLV tags inside PT_CONFIG */
enum proto_cfg_tag {
	CFG_HOSTNAME = 1,   /* str */
	CFG_HOSTS = 2,      /* str: whole /etc/hosts */
	CFG_RESOLV = 3,     /* str: whole /etc/resolv.conf */
	CFG_TIME_NS = 4,    /* u64: host CLOCK_REALTIME in ns */
	CFG_CPU_QUOTA = 5,  /* u32: cgroup cpu.max quota (us per 100000 us); 0 = unlimited */
	CFG_MTU = 6,        /* u32 (0 = no network) */
	CFG_NETWORK = 7,    /* u32: 1 = configure eth0 */
	CFG_DISK = 8,       /* repeated: u32 flags (PROTO_DISK_*), u8 serial length, serial, guest mount
			     * path (the rest of the value) */
	CFG_WORKSPACE = 9,  /* nested TLV (WS_*): mount the workspace over the files channel */
	CFG_CA_PEM = 10,    /* str: the interception CA (PEM): written and added to the trust bundles */
};

#define PROTO_MAX_DISKS       32u  /* CFG_DISK entries in one CONFIG */
#define PROTO_DISK_SERIAL_MAX 20u  /* what virtio-blk can carry */
#define PROTO_DISK_PATH_MAX   4095u
enum proto_disk_flags {
	PROTO_DISK_RO = 1u << 0,  /* mount read-only (the engine attached it read-only too) */
};

/* TLV tags inside CFG_WORKSPACE */
enum proto_ws_tag {
	WS_PATH = 1,        /* str: absolute guest path to mount the workspace at */
	WS_OWNER = 2,       /* str: user spec (uid, uid:gid, name) owning the workspace's files */
};

/* The files channel (virtio-serial port PROTO_PORT_FILES) carries FUSE's own messages between
 * the guest kernel's /dev/fuse and the supervisor's vfs/, plus these of ours: */
#define PROTO_PORT_CTL     "org.matchlock.ctl"
#define PROTO_PORT_FILES   "org.matchlock.files"
#define FILES_AGENT_HELLO    0x4d4c0001u /* agent -> host, fuse_in_header opcode; payload u32 version,
					  * u32 owner uid, u32 owner gid (sent before the mount) */
#define FILES_AGENT_SYNC_ACK 0x4d4c0002u /* agent -> host; payload u64: the FILES_NOTIFY_SYNC answered */
#define FILES_NOTIFY_SYNC    0x4d4c      /* host -> agent, fuse_out_header error with unique 0; payload u64
					  * sequence; answered once every earlier message is in /dev/fuse */
#define FILES_AGENT_VERSION  1u

/* TLV tags inside PT_EXEC */
enum proto_exec_tag {
	EX_ARGV = 1,     /* str, repeated in order */
	EX_ENV = 2,      /* str "KEY=VALUE", repeated; the full environment */
	EX_CWD = 3,      /* str */
	EX_USER = 4,     /* str: "uid", "uid:gid" or a name from the guest's /etc/passwd */
	EX_FLAGS = 5,    /* u32: EXF_* */
	EX_WINSIZE = 6,  /* u16 rows, u16 cols */
};

enum proto_exec_flags {
	EXF_TTY = 1u << 0,        /* run on a PTY (stdout carries both streams) */
	EXF_STDIN = 1u << 1,      /* stdin comes from PT_STDIN; else /dev/null */
	EXF_PRIVILEGED = 1u << 2, /* no seccomp, no cap drop, no no_new_privs */
	EXF_FILEOP = 1u << 3,     /* argv is a file operation for the agent itself (PROTOCOL.md) */
};

struct proto_frame {
	uint16_t type;
	uint16_t flags;
	uint32_t stream;
	const uint8_t *payload; /* points into the reader's buffer; valid until the next read */
	uint32_t len;
};

/* --- incremental reader: feed bytes from the channel, take complete frames out --- */
struct proto_reader {
	uint8_t *buf;
	size_t len, cap, off;
};
void proto_reader_init(struct proto_reader *r);
void proto_reader_free(struct proto_reader *r);
/* Space to read() into: returns a pointer and sets *room (grows the buffer as needed). */
uint8_t *proto_reader_space(struct proto_reader *r, size_t *room);
void proto_reader_commit(struct proto_reader *r, size_t n);
/* 1 = frame filled in, 0 = need more bytes, -EPROTO = malformed (oversized or unknown type). */
int proto_reader_next(struct proto_reader *r, struct proto_frame *f);

/* --- message building: a growable byte buffer holding one or more whole frames --- */
struct proto_msg {
	uint8_t *data;
	size_t len, cap;
	size_t frame_start; /* offset of the frame being built */
};
void proto_msg_init(struct proto_msg *m);
void proto_msg_free(struct proto_msg *m);
/* Starts a frame; fill its payload with the put_* calls, then proto_msg_end(). */
int proto_msg_begin(struct proto_msg *m, uint16_t type, uint32_t stream);
int proto_put_bytes(struct proto_msg *m, const void *p, size_t n);
int proto_put_u16(struct proto_msg *m, uint16_t v);
int proto_put_u32(struct proto_msg *m, uint32_t v);
int proto_put_u64(struct proto_msg *m, uint64_t v);
int proto_put_tlv(struct proto_msg *m, uint16_t tag, const void *p, uint32_t n);
int proto_put_tlv_str(struct proto_msg *m, uint16_t tag, const char *s);
int proto_put_tlv_u32(struct proto_msg *m, uint16_t tag, uint32_t v);
int proto_put_tlv_u64(struct proto_msg *m, uint16_t tag, uint64_t v);
/* Returns 0, or -EMSGSIZE if the payload passed PROTO_MAX_PAYLOAD. */
int proto_msg_end(struct proto_msg *m);
/* One-shot: a whole frame with a raw payload. */
int proto_msg_frame(struct proto_msg *m, uint16_t type, uint32_t stream, const void *p, size_t n);

/* --- TLV iteration over a payload --- */
struct proto_tlv_iter {
	const uint8_t *p;
	size_t len, off;
};
struct proto_tlv {
	uint16_t tag;
	uint32_t len;
	const uint8_t *val;
};
void proto_tlv_iter_init(struct proto_tlv_iter *it, const uint8_t *p, size_t len);
/* 1 = next TLV, 0 = end, -EPROTO = truncated. */
int proto_tlv_next(struct proto_tlv_iter *it, struct proto_tlv *t);

/* --- decoded requests (both own their strings; free with the *_free functions) --- */
/* An extra disk to mount before READY: the block device whose virtio serial is `serial`,
 * ext4, at `path` (absolute). */
struct proto_disk {
	char *serial, *path;
	uint32_t flags;
};

struct proto_config {
	char *hostname, *hosts, *resolv;
	char *ca_pem;           /* NULL: no interception CA */
	uint64_t time_ns;
	uint32_t cpu_quota_us, mtu, network;
	struct proto_disk *disks;
	uint32_t n_disks;
	char *ws_path;   /* CFG_WORKSPACE: NULL = no workspace */
	char *ws_owner;  /* NULL = root */
};
/* Appends a disk to c (copies the strings). -EINVAL on a bad serial/path, -E2BIG past
 * PROTO_MAX_DISKS, -ENOMEM. */
int proto_config_add_disk(struct proto_config *c, const char *serial, const char *path, uint32_t flags);
int proto_config_decode(const uint8_t *p, size_t len, struct proto_config *c);
void proto_config_free(struct proto_config *c);
int proto_config_encode(struct proto_msg *m, const struct proto_config *c);

struct proto_exec {
	char **argv;  /* NULL-terminated, at least one element */
	char **env;   /* NULL-terminated */
	char *cwd, *user;
	uint32_t flags;
	uint16_t rows, cols;
};
/* Rejects: no argv, empty argv[0], strings with NUL bytes, too many elements. */
int proto_exec_decode(const uint8_t *p, size_t len, struct proto_exec *x);
void proto_exec_free(struct proto_exec *x);
int proto_exec_encode(struct proto_msg *m, uint32_t stream, const struct proto_exec *x);

const char *proto_type_name(uint16_t type);

#endif
