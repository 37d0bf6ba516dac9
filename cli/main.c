/* cli/main.c - entry point: dispatches subcommands; the only place that prints an error and
 * picks the exit status. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/proc.h"
#include "cli/cmds.h"

#ifndef ML_VERSION
#define ML_VERSION "dev"
#endif
#ifndef ML_COMMIT
#define ML_COMMIT "unknown"
#endif
#ifndef ML_BUILT
#define ML_BUILT "unknown"
#endif

static struct ml_settings settings;

const struct ml_settings *cli_settings(void) { return &settings; }

/* Every subcommand and its aliases; one line each (keeps merges of new commands trivial). */
static const struct cli_command commands[] = {
	{ "run", NULL, cmd_run },
	{ "exec", NULL, cmd_exec },
	{ "list", "ls", cmd_list },
	{ "get", NULL, cmd_get },
	{ "inspect", "stat", cmd_inspect },
	{ "kill", NULL, cmd_kill },
	{ "rm", "remove", cmd_rm },
	{ "prune", NULL, cmd_prune },
	{ "gc", NULL, cmd_gc },
	{ "log", NULL, cmd_log },
	{ "port-forward", NULL, cmd_port_forward },
	{ "allow-list", NULL, cmd_allow_list },
	{ "pull", NULL, cmd_pull },
	{ "image", NULL, cmd_image },
	{ "rpc", NULL, cmd_rpc },
	{ "volume", NULL, cmd_volume },
	{ "diagnose", NULL, cmd_diagnose },
	{ "completion", NULL, cmd_completion },
	{ "__complete", NULL, cmd_complete },
};

const struct cli_command *cli_commands(size_t *n)
{
	*n = sizeof(commands) / sizeof(commands[0]);
	return commands;
}

const struct cli_command *cli_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name) || (commands[i].alias && !strcmp(name, commands[i].alias)))
			return &commands[i];
	return NULL;
}

static const char *later_cmds[] = { "build", "setup", NULL };

static void root_help(void)
{
	printf("A lightweight micro-VM sandbox for running llm agent securely\n\n"
	       "Usage:\n  matchlock [command]\n\nAvailable Commands:\n"
	       "  run           Run a command in a new sandbox\n"
	       "  exec          Run a command in a running sandbox\n"
	       "  list          List sandboxes (alias: ls)\n"
	       "  get           Show a sandbox as JSON\n"
	       "  inspect       Show a sandbox and its lifecycle (alias: stat)\n"
	       "  kill          Stop a running sandbox\n"
	       "  rm            Remove a stopped sandbox (alias: remove)\n"
	       "  prune         Remove all stopped sandboxes\n"
	       "  gc            Clean up what crashed sandboxes left behind\n"
	       "  log           Show a sandbox's log\n"
	       "  port-forward  Forward local ports to a sandbox\n"
	       "  allow-list    Change a running sandbox's allowed hosts\n"
	       "  build         Build an image from a Dockerfile\n"
	       "  pull          Pull an image from a registry\n"
	       "  image         Manage images (import, ls, rm, gc)\n"
	       "  volume        Manage named volumes\n"
	       "  diagnose      Check this host\n"
	       "  rpc           JSON-RPC server on stdio (for the SDKs)\n"
	       "  completion    Generate the autocompletion script for the specified shell\n"
	       "  version       Print the version\n"
	       "  help          Help about any command\n\n"
	       "Flags:\n  -h, --help      help for matchlock\n  -v, --version   version for matchlock\n\n"
	       "Use \"matchlock [command] --help\" for more information about a command.\n");
}

static int dispatch(int argc, char **argv, struct ml_err *e)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		return root_help(), 0;
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v"))
		return printf("matchlock version %s\n", ML_VERSION), 0;
	if (!strcmp(cmd, "version"))
		return printf("matchlock %s (commit: %s, built: %s)\n", ML_VERSION, ML_COMMIT, ML_BUILT), 0;
	const struct cli_command *c = cli_command_find(cmd);
	if (c)
		return c->fn(argc - 2, argv + 2, e);
	for (const char **c = later_cmds; *c; c++)
		if (!strcmp(cmd, *c))
			return ml_err_set(e, -95, "matchlock %s is not supported yet", cmd);
	if (cmd[0] == '-')
		return ml_err_set(e, -22, "unknown flag: %s", cmd);
	return ml_err_set(e, -22, "unknown command \"%s\" for \"matchlock\"", cmd);
}

int main(int argc, char **argv)
{
	struct ml_err e = { 0 };
	ml_process_init();
	int r = settings_from_env(&settings, &e);
	if (r == 0)
		r = dispatch(argc, argv, &e);
	settings_free(&settings);
	if (r < 0) {
		fprintf(stderr, "%s\n", e.msg[0] ? e.msg : "failed");
		return 1;
	}
	return r;
}
