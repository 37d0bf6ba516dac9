/* cli/cmds.h - the subcommands. Each returns a negative errno with e set on failure (main
 * prints e->msg as one line and exits 1), or the exit status to use (0 on success). */
#ifndef ML_CLI_CMDS_H
#define ML_CLI_CMDS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "rpc/settings.h"

/* The environment's settings, read once by main before any command runs. */
const struct ml_settings *cli_settings(void);

/* A subcommand: argv after its name. Names starting with '_' are hidden (not completed). */
struct cli_command {
	const char *name, *alias;
	int (*fn)(int argc, char **argv, struct ml_err *e);
};
/* main.c's table of every subcommand, and the entry for a name or alias (NULL if none). */
const struct cli_command *cli_commands(size_t *n);
const struct cli_command *cli_command_find(const char *name);

int cmd_run(int argc, char **argv, struct ml_err *e);
int cmd_image(int argc, char **argv, struct ml_err *e);
int cmd_gc(int argc, char **argv, struct ml_err *e);
int cmd_pull(int argc, char **argv, struct ml_err *e);
int cmd_rpc(int argc, char **argv, struct ml_err *e);
int cmd_exec(int argc, char **argv, struct ml_err *e);
int cmd_list(int argc, char **argv, struct ml_err *e);
int cmd_get(int argc, char **argv, struct ml_err *e);
int cmd_inspect(int argc, char **argv, struct ml_err *e);
int cmd_kill(int argc, char **argv, struct ml_err *e);
int cmd_rm(int argc, char **argv, struct ml_err *e);
int cmd_prune(int argc, char **argv, struct ml_err *e);
int cmd_log(int argc, char **argv, struct ml_err *e);
int cmd_port_forward(int argc, char **argv, struct ml_err *e);
int cmd_allow_list(int argc, char **argv, struct ml_err *e);
/* `run -d` (detach.c): re-executes the run in the background; argv as given to cmd_run. */
int run_detach(int argc, char **argv, struct ml_err *e);
int cmd_volume(int argc, char **argv, struct ml_err *e);
int cmd_diagnose(int argc, char **argv, struct ml_err *e);
/* `completion bash|zsh|fish` (completion.c) and the hidden `__complete WORD... CURRENT` the
 * scripts call (complete.c): candidates for CURRENT, one per line. */
int cmd_completion(int argc, char **argv, struct ml_err *e);
int cmd_complete(int argc, char **argv, struct ml_err *e);
/* The pull progress display (a struct oci_pull_opts progress callback) for a terminal. */
void cli_pull_progress(void *arg, unsigned layer, unsigned layers, uint64_t done, uint64_t total);

#endif
