/* tests/unit/vfs_config_test.c - the workspace's configuration: `-v` specs and the rpc create
 * checks, each message word for word; path cleaning; rule ops and actions. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vfs/vfs.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vfs_config_test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[128];
	snprintf(p, sizeof(p), "%s/file.txt", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void clean(const char *in, const char *want)
{
	char out[PATH_MAX];
	assert_int_equal(vfs_path_clean(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void path_clean_as_go(void **state)
{
	(void)state;
	clean("/workspace/", "/workspace");
	clean("//a/./b/../c/", "/a/c");
	clean("/..", "/");
	clean("/../../x", "/x");
	clean("", ".");
	clean("a/../..", "..");
	clean("../a/b", "../a/b");
	clean(".host/example", ".host/example");
	clean("/", "/");
	char small[4];
	assert_int_equal(vfs_path_clean("/abcdef", small, sizeof(small)), -ENAMETOOLONG);
}

/* One spec, the whole error line wanted (NULL: success). */
static void vol(const char *spec, const char *ws, const char *want, struct vfs_mount_cfg *out)
{
	struct ml_err e = { 0 };
	struct vfs_mount_cfg m = { 0 };
	int r = vfs_volume_parse(spec, ws, &m, &e);
	if (want) {
		assert_true(r < 0);
		assert_string_equal(e.msg, want);
		return;
	}
	if (r < 0)
		fail_msg("%s: %s", spec, e.msg);
	if (out)
		*out = m;
	else
		vfs_mount_cfg_free(&m);
}

static void volume_specs(void **state)
{
	(void)state;
	char spec[256], want[512];
	struct vfs_mount_cfg m;
	snprintf(spec, sizeof(spec), "%s:/workspace/not_exist_folder", dir);
	vol(spec, "/workspace", NULL, &m);
	assert_int_equal(m.type, VFS_MOUNT_OVERLAY); /* the default */
	assert_string_equal(m.guest_path, "/workspace/not_exist_folder");
	assert_string_equal(m.host_path, dir);
	vfs_mount_cfg_free(&m);
	snprintf(spec, sizeof(spec), "%s:.host/example:ro", dir);
	vol(spec, "/workspace", NULL, &m);
	assert_string_equal(m.guest_path, "/workspace/.host/example");
	assert_true(m.readonly);
	assert_int_equal(m.type, VFS_MOUNT_HOST_FS);
	vfs_mount_cfg_free(&m);
	snprintf(spec, sizeof(spec), "%s/file.txt:/workspace/1file.txt:HOST_FS", dir);
	vol(spec, "/workspace", NULL, &m);
	assert_int_equal(m.type, VFS_MOUNT_HOST_FS);
	assert_false(m.readonly);
	vfs_mount_cfg_free(&m);
	snprintf(spec, sizeof(spec), "%s:/workspace:readonly", dir);
	vol(spec, "/workspace", NULL, NULL);

	vol("onlyonepart", "/workspace", "invalid volume mount \"onlyonepart\": expected format host:guest or host:guest:ro", NULL);
	vol("a:b:c:d", "/workspace", "invalid volume mount \"a:b:c:d\": expected format host:guest or host:guest:ro", NULL);
	vol("/no/such/dir:/workspace", "/workspace",
	    "invalid volume mount \"/no/such/dir:/workspace\": host path does not exist: /no/such/dir", NULL);
	snprintf(spec, sizeof(spec), "%s:/workspace:rw", dir);
	snprintf(want, sizeof(want), "invalid volume mount \"%s\": unknown option \"rw\" (use 'ro', 'overlay', or 'host_fs')", spec);
	vol(spec, "/workspace", want, NULL);
	snprintf(spec, sizeof(spec), "%s:/workspace", dir);
	snprintf(want, sizeof(want), "invalid volume mount \"%s\": guest path must be within workspace: "
		 "\"/workspace\" not in \"/workspace/project\"", spec);
	vol(spec, "/workspace/project", want, NULL);
	snprintf(spec, sizeof(spec), "%s:../escape", dir);
	snprintf(want, sizeof(want), "invalid volume mount \"%s\": guest path must be within workspace: "
		 "\"/escape\" not in \"/workspace\"", spec);
	vol(spec, "/workspace", want, NULL);
	/* a relative host path is taken from the working directory */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	vol("file.txt:/workspace/f", "/workspace", NULL, &m);
	snprintf(want, sizeof(want), "%s/file.txt", dir);
	assert_string_equal(m.host_path, want);
	vfs_mount_cfg_free(&m);
	assert_int_equal(chdir(cwd), 0);
}

static void validate(struct vfs_config *c, const char *want)
{
	struct ml_err e = { 0 };
	int r = vfs_config_validate(c, &e);
	if (!want) {
		if (r < 0)
			fail_msg("%s", e.msg);
		return;
	}
	assert_int_equal(r, -EINVAL);
	assert_string_equal(e.msg, want);
}

static void add(struct vfs_config *c, const char *guest)
{
	struct vfs_mount_cfg m = { .guest_path = strdup(guest), .type = VFS_MOUNT_MEMORY };
	assert_int_equal(vfs_config_add_mount(c, &m), 0);
}

static void rpc_create_checks(void **state)
{
	(void)state;
	struct vfs_config c = { .workspace = strdup("/workspace") };
	validate(&c, "invalid configuration: vfs.workspace requires at least one vfs.mounts entry");
	free(c.workspace);
	c.workspace = strdup("  ");
	add(&c, "/workspace");
	validate(&c, "invalid configuration: vfs.workspace is required when vfs.mounts is set");
	vfs_config_free(&c);
	c = (struct vfs_config){ .interception = true };
	validate(&c, "invalid configuration: vfs.interception requires at least one vfs.mounts entry");
	c = (struct vfs_config){ .workspace = strdup("/work space") };
	add(&c, "/work space/x");
	validate(&c, "invalid configuration: vfs.workspace: invalid guest mount path \"/work space\": must be "
		 "absolute and contain only alphanumeric, '/', '_', '.', '-'");
	vfs_config_free(&c);
	c = (struct vfs_config){ .workspace = strdup("/workspace") };
	add(&c, "relative/path");
	validate(&c, "invalid configuration: guest path must be absolute: \"relative/path\"");
	vfs_config_free(&c);
	c = (struct vfs_config){ .workspace = strdup("/workspace") };
	add(&c, "/workspace/../etc");
	validate(&c, "invalid configuration: guest path must be within workspace: \"/etc\" not in \"/workspace\"");
	vfs_config_free(&c);
	c = (struct vfs_config){ .workspace = strdup("/workspace") };
	add(&c, "/workspacex");
	validate(&c, "invalid configuration: guest path must be within workspace: \"/workspacex\" not in \"/workspace\"");
	vfs_config_free(&c);
	/* "/" fails the workspace pattern (it needs a name after the slash): a FUSE mount over the
	 * guest's root would hide the root itself */
	c = (struct vfs_config){ .workspace = strdup("/") };
	add(&c, "/anything/at/all");
	validate(&c, "invalid configuration: vfs.workspace: invalid guest mount path \"/\": must be "
		 "absolute and contain only alphanumeric, '/', '_', '.', '-'");
	vfs_config_free(&c);
	c = (struct vfs_config){ .workspace = strdup("/workspace") };
	add(&c, "/workspace/a");
	add(&c, "/workspace/a"); /* the same point again replaces the first */
	assert_int_equal(c.n_mounts, 1);
	validate(&c, NULL);
	vfs_config_free(&c);
	/* no vfs at all is fine */
	c = (struct vfs_config){ 0 };
	validate(&c, NULL);
}

static void ops_and_actions(void **state)
{
	(void)state;
	assert_int_equal(vfs_op_parse("WRITE"), VFS_OP_WRITE);
	assert_int_equal(vfs_op_parse("read_dir"), VFS_OP_READDIR);
	assert_int_equal(vfs_op_parse("removeall"), VFS_OP_REMOVE_ALL);
	assert_int_equal(vfs_op_parse("remove_all"), VFS_OP_REMOVE_ALL);
	assert_int_equal(vfs_op_parse("chown"), -1);
	assert_string_equal(vfs_op_name(VFS_OP_TRUNCATE), "truncate");
	for (int i = 0; i < VFS_OP_COUNT; i++)
		assert_int_equal(vfs_op_parse(vfs_op_name((enum vfs_op)i)), i);
	const char *ops[] = { "write", "READ_DIR", "frobnicate" }, *none[] = { "frobnicate" };
	assert_int_equal(vfs_ops_mask(ops, 3), (1u << VFS_OP_WRITE) | (1u << VFS_OP_READDIR));
	assert_int_equal(vfs_ops_mask(none, 1), 0); /* all unknown: every op */
	assert_int_equal(vfs_mount_type_parse("host_fs"), VFS_MOUNT_HOST_FS);
	assert_int_equal(vfs_mount_type_parse("overlay"), VFS_MOUNT_OVERLAY);
	assert_int_equal(vfs_mount_type_parse("tmpfs"), VFS_MOUNT_MEMORY);
	assert_int_equal(vfs_action_parse("Block"), VFS_ACTION_BLOCK);
	assert_int_equal(vfs_action_parse("allow"), VFS_ACTION_ALLOW);
	assert_int_equal(vfs_action_parse("mutate_write"), VFS_ACTION_NONE);
	assert_int_equal(vfs_action_parse(NULL), VFS_ACTION_NONE);
	assert_true(vfs_guest_path_valid("/workspace/a-b_c.d"));
	assert_false(vfs_guest_path_valid("workspace"));
	assert_false(vfs_guest_path_valid("/"));
	assert_int_equal(vfs_go_mode(S_IFREG | 0644), 0644);
	assert_int_equal(vfs_go_mode(S_IFLNK | 0777), 0x08000000u | 0777);
	assert_int_equal(vfs_go_mode(S_IFREG | 04755), 0x00800000u | 0755);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(path_clean_as_go),
		cmocka_unit_test(volume_specs),
		cmocka_unit_test(rpc_create_checks),
		cmocka_unit_test(ops_and_actions),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
