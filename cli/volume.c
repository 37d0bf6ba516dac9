/* cli/volume.c - `matchlock volume create|ls|rm|cp`: named ext4 volumes in the user's cache
 * (<cache>/volumes/<name>.ext4), attached to sandboxes with `run --disk @name:/path`. Output
 * lines and the --json shapes are the ones the SDKs parse. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "disk/disk.h"
#include "rpc/sandbox.h"

#define END_FLAGS { NULL, 0, 0, NULL, NULL, NULL, false, false }

static int want_args(const struct strv *pos, size_t n, struct ml_err *e)
{
	if (pos->n != n)
		return ml_err_set(e, -EINVAL, "accepts %zu arg(s), received %zu", n, pos->n);
	return 0;
}

/* The volumes directory (from the settings), created 0700 like the cache it lives in when make
 * is set. */
static const char *volumes_dir(bool make, struct ml_err *e)
{
	const char *dir = cli_settings()->volumes_dir;
	int r = make ? ml_mkdir_p(dir, 0700) : 0;
	if (r < 0) {
		ml_err_set(e, r, "create volume directory: %s: %s", dir, strerror(-r));
		return NULL;
	}
	return dir;
}

static void print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	printf("%s\n", s ? s : "null");
	free(s);
	json_decref(j);
}

static json_t *volume_json(const char *name, double mb, const char *path)
{
	char size[64];
	snprintf(size, sizeof(size), "%.1f MB", mb);
	return json_pack("{s:s, s:s, s:s}", "name", name, "size", size, "path", path);
}

static int volume_create_cmd(int argc, char **argv, struct ml_err *e)
{
	long size = VOLUME_DEFAULT_MB;
	bool json = false;
	struct flag t[] = {
		{ "size", 0, FLAG_INT, &size, "Volume size in MB", "10240", false, false },
		{ "json", 0, FLAG_BOOL, &json, "Output machine-readable JSON", NULL, false, false },
		END_FLAGS,
	};
	_cleanup_strv_clear_ struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Create a named ext4 volume (sparse: it takes disk "
			       "space only as it fills).\n\nUsage:\n  matchlock volume create <name> [flags]\n", e);
	if (r != 0 || (r = want_args(&pos, 1, e)) < 0)
		return r < 0 ? r : 0;
	const char *dir = volumes_dir(true, e);
	_cleanup_free_ char *path = NULL;
	if (!dir)
		return e->code;
	if ((r = volume_create(dir, pos.v[0], size, &path, e)) < 0)
		return r;
	if (json)
		print_json(volume_json(pos.v[0], (double)size, path));
	else
		printf("Created volume %s (%ld MB)\n", pos.v[0], size);
	return 0;
}

static void print_table(const struct volume_info *v, size_t n)
{
	int w = 4;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(v[i].name) > w)
			w = (int)strlen(v[i].name);
	printf("%-*s  %s\n", w, "NAME", "SIZE");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %.1f MB\n", w, v[i].name, (double)v[i].size / (1024.0 * 1024.0));
}

static int volume_ls_cmd(int argc, char **argv, struct ml_err *e)
{
	bool json = false;
	struct flag t[] = {
		{ "json", 0, FLAG_BOOL, &json, "Output machine-readable JSON", NULL, false, false },
		END_FLAGS,
	};
	_cleanup_strv_clear_ struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "List named volumes.\n\nUsage:\n  matchlock volume ls [flags]\n", e);
	if (r != 0 || (r = want_args(&pos, 0, e)) < 0)
		return r < 0 ? r : 0;
	const char *dir = volumes_dir(false, e);
	struct volume_info *v = NULL;
	size_t n = 0;
	if (!dir || (r = volume_list(dir, &v, &n, e)) < 0)
		return dir ? r : e->code;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			json_array_append_new(a, volume_json(v[i].name, (double)v[i].size / (1024.0 * 1024.0), v[i].path));
		print_json(a);
	} else {
		print_table(v, n);
	}
	volume_list_free(v, n);
	return 0;
}

static int volume_rm_cmd(int argc, char **argv, struct ml_err *e)
{
	struct flag t[] = { END_FLAGS };
	_cleanup_strv_clear_ struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Remove a named volume (refused while a sandbox uses "
			       "it).\n\nUsage:\n  matchlock volume rm <name>\n", e);
	if (r != 0 || (r = want_args(&pos, 1, e)) < 0)
		return r < 0 ? r : 0;
	const char *dir = volumes_dir(false, e);
	if (!dir)
		return e->code;
	if ((r = volume_remove(dir, cli_settings()->holders_dir, pos.v[0], e)) < 0)
		return r;
	printf("Removed volume %s\n", pos.v[0]);
	return 0;
}

static int volume_cp_cmd(int argc, char **argv, struct ml_err *e)
{
	struct flag t[] = { END_FLAGS };
	_cleanup_strv_clear_ struct strv pos = { 0 };
	int r = args_parse_cmd(t, argc, argv, &pos, "Copy a named volume (holes, mode, owner and mtime "
			       "kept).\n\nUsage:\n  matchlock volume cp <src> <dest>\n", e);
	if (r != 0 || (r = want_args(&pos, 2, e)) < 0)
		return r < 0 ? r : 0;
	const char *dir = volumes_dir(true, e);
	if (!dir)
		return e->code;
	if ((r = volume_copy(dir, cli_settings()->holders_dir, pos.v[0], pos.v[1], e)) < 0)
		return r;
	printf("Copied volume %s to %s\n", pos.v[0], pos.v[1]);
	return 0;
}

int cmd_volume(int argc, char **argv, struct ml_err *e)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		printf("Manage named raw disk volumes (ext4 images attached with run --disk @name:/path).\n\n"
		       "Usage:\n  matchlock volume [command]\n\nAvailable Commands:\n"
		       "  create      Create a named ext4 volume\n"
		       "  ls          List named volumes (alias: list)\n"
		       "  rm          Remove a named volume (alias: remove)\n"
		       "  cp          Copy a named volume (alias: copy)\n");
		return 0;
	}
	if (!strcmp(argv[0], "create"))
		return volume_create_cmd(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
		return volume_ls_cmd(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "rm") || !strcmp(argv[0], "remove"))
		return volume_rm_cmd(argc - 1, argv + 1, e);
	if (!strcmp(argv[0], "cp") || !strcmp(argv[0], "copy"))
		return volume_cp_cmd(argc - 1, argv + 1, e);
	return ml_err_set(e, -EINVAL, "unknown command \"%s\" for \"matchlock volume\"", argv[0]);
}
